"""Sandboxed runners: same answers as the runtimes, and survival of hostile models."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from tests.runtime.reference import assert_same, direct_onnx, direct_tflite

from cleanroom.errors import (
    Conflict,
    InferenceFailed,
    InvalidTensor,
    ModelRejected,
    NotFound,
    ServiceUnavailable,
)
from cleanroom.runtime import RuntimeLimits, Supervisor
from cleanroom.runtime.sandbox import SandboxedRunner
from cleanroom.runtime.sandbox.process import WorkerProcess, reported_run_ns
from cleanroom.runtime.sandbox.protocol import PeerClosed, recv_header, send_frame
from cleanroom.wire.formats import ModelFormat

RNG = np.random.default_rng(11)


def mixed_inputs(batch: int) -> dict[str, Any]:
    return {
        "x": RNG.standard_normal((batch, 4)).astype(np.float32),
        "scale": np.array([0.5], np.float32),
        "ids": np.arange(batch, dtype=np.int64),
    }


@pytest.fixture(scope="module")
def onnx_instance(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> Iterator[SandboxedRunner]:
    instance = f"mixed-{uuid.uuid4()}"
    runner = supervisor.load(
        instance, ModelFormat.ONNX, model_bytes("mixed_io.onnx"), replace(limits, workers=2)
    )
    yield runner
    supervisor.unload(instance)


def wait_for(predicate: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_onnx_in_the_sandbox_equals_direct_onnxruntime(
    onnx_instance: SandboxedRunner, model_bytes: Callable[[str], bytes]
) -> None:
    for batch in (1, 5):
        inputs = mixed_inputs(batch)
        assert_same(onnx_instance.run(inputs), direct_onnx(model_bytes("mixed_io.onnx"), inputs))


def test_the_worker_reports_the_models_own_run_time(
    onnx_instance: SandboxedRunner, model_bytes: Callable[[str], bytes]
) -> None:
    inputs = mixed_inputs(3)
    start = time.perf_counter_ns()
    outputs, run_ns = onnx_instance.run_timed(inputs)
    whole_ns = time.perf_counter_ns() - start
    assert_same(outputs, direct_onnx(model_bytes("mixed_io.onnx"), inputs))
    # Measured inside the worker: part of the round trip, never all of it.
    assert isinstance(run_ns, int)
    assert 0 < run_ns < whole_ns


@pytest.mark.parametrize("fixture", ["add_mul.tflite", "dense_cast.tflite"])
def test_tflite_end_to_end_equals_direct_litert(
    supervisor: Supervisor,
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    fixture: str,
) -> None:
    instance = f"tfl-{uuid.uuid4()}"
    runner = supervisor.load(instance, ModelFormat.TFLITE, model_bytes(fixture), limits)
    try:
        inputs = {
            spec.name: RNG.standard_normal([d or 1 for d in spec.shape]).astype(np.float32)
            for spec in runner.signature.inputs
        }
        assert_same(runner.run(inputs), direct_tflite(model_bytes(fixture), inputs))
        with pytest.raises(InvalidTensor):
            runner.run({name: value.astype(np.float64) for name, value in inputs.items()})
    finally:
        supervisor.unload(instance)


def test_concurrent_requests_share_the_workers_without_reloading(
    onnx_instance: SandboxedRunner, model_bytes: Callable[[str], bytes]
) -> None:
    pids_before = sorted(onnx_instance.worker_pids)
    assert len(pids_before) == 2  # limits.workers: the model is loaded twice, no more
    batches = [mixed_inputs(b) for b in range(1, 17)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(onnx_instance.run, batches))
    for inputs, got in zip(batches, results, strict=True):
        assert_same(got, direct_onnx(model_bytes("mixed_io.onnx"), inputs))
    assert sorted(onnx_instance.worker_pids) == pids_before


def test_tensors_larger_than_the_slot_travel_inline(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    small_slot = replace(limits, extra={"sandbox.slot_bytes": "4096"})
    instance = f"inline-{uuid.uuid4()}"
    runner = supervisor.load(instance, ModelFormat.ONNX, model_bytes("mixed_io.onnx"), small_slot)
    try:
        inputs = mixed_inputs(2000)  # about 40 KB in, 40 KB out
        assert_same(runner.run(inputs), direct_onnx(model_bytes("mixed_io.onnx"), inputs))
    finally:
        supervisor.unload(instance)


def test_string_tensors_cross_the_sandbox(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    instance = f"str-{uuid.uuid4()}"
    runner = supervisor.load(
        instance, ModelFormat.ONNX, model_bytes("string_identity.onnx"), limits
    )
    try:
        assert runner.run({"words": np.array(["a", "é", ""])})["same"].tolist() == ["a", "é", ""]
    finally:
        supervisor.unload(instance)


@pytest.mark.parametrize(
    ("fmt", "fixture", "expected"),
    [
        (ModelFormat.ONNX, "hostile_external_data_etc_passwd.onnx", "external data"),
        (ModelFormat.ONNX, "hostile_custom_domain_op.onnx", "custom operator domain"),
        (ModelFormat.TFLITE, "hostile_custom_op.tflite", "custom operator 'Exfiltrate'"),
    ],
)
def test_hostile_models_are_refused_by_the_worker(
    supervisor: Supervisor,
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    fmt: ModelFormat,
    fixture: str,
    expected: str,
) -> None:
    instance = f"hostile-{uuid.uuid4()}"
    with pytest.raises(ModelRejected, match=expected):
        supervisor.load(instance, fmt, model_bytes(fixture), limits)
    with pytest.raises(NotFound):
        supervisor.runner(instance)


def test_memory_bomb_is_stopped_and_the_worker_keeps_serving(
    supervisor: Supervisor,
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    onnx_instance: SandboxedRunner,
) -> None:
    instance = f"bomb-{uuid.uuid4()}"
    tight = replace(limits, memory_bytes=1024**3)
    runner = supervisor.load(
        instance, ModelFormat.ONNX, model_bytes("hostile_memory_bomb.onnx"), tight
    )
    try:
        with pytest.raises(InferenceFailed):
            runner.run({"shape": np.array([1 << 17, 1 << 17], np.int64)})  # 64 GiB
        small = runner.run({"shape": np.array([2, 3], np.int64)})
        np.testing.assert_array_equal(small["filled"], np.zeros((2, 3), np.float32))
        assert onnx_instance.run(mixed_inputs(1))["y"].shape == (1, 2)
    finally:
        supervisor.unload(instance)


def test_endless_loop_times_out_is_restarted_and_others_keep_answering(
    supervisor: Supervisor,
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    onnx_instance: SandboxedRunner,
) -> None:
    instance = f"loop-{uuid.uuid4()}"
    runner = supervisor.load(
        instance,
        ModelFormat.ONNX,
        model_bytes("hostile_infinite_loop.onnx"),
        replace(limits, request_timeout_s=1.0),
    )
    try:
        (old_pid,) = runner.worker_pids
        answers: list[int] = []
        stop = threading.Event()

        def keep_asking() -> None:
            while not stop.is_set():
                answers.append(onnx_instance.run(mixed_inputs(1))["y"].shape[0])

        other = threading.Thread(target=keep_asking)
        other.start()
        try:
            with pytest.raises(InferenceFailed, match="did not finish within 1 s"):
                runner.run({"x": np.array([0.0], np.float32)})
        finally:
            stop.set()
            other.join()
        assert answers
        assert all(a == 1 for a in answers)
        assert wait_for(lambda: bool(runner.worker_pids) and runner.worker_pids != [old_pid])
        assert supervisor.report().restarts >= 1
    finally:
        supervisor.unload(instance)


def test_a_crashed_worker_fails_its_request_and_is_replaced(
    supervisor: Supervisor,
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    onnx_instance: SandboxedRunner,
) -> None:
    instance = f"crash-{uuid.uuid4()}"
    runner = supervisor.load(
        instance, ModelFormat.ONNX, model_bytes("hostile_infinite_loop.onnx"), limits
    )
    try:
        (pid,) = runner.worker_pids
        killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
        killer.start()
        with pytest.raises(InferenceFailed, match="SIGKILL"):
            runner.run({"x": np.array([0.0], np.float32)})
        killer.join()
        assert onnx_instance.run(mixed_inputs(2))["y"].shape == (2, 2)
        assert wait_for(lambda: bool(runner.worker_pids) and runner.worker_pids != [pid])
    finally:
        supervisor.unload(instance)


def test_invalid_inputs_are_refused_before_reaching_a_worker(
    onnx_instance: SandboxedRunner,
) -> None:
    with pytest.raises(InvalidTensor, match="missing input"):
        onnx_instance.run({"x": np.zeros((1, 4), np.float32)})


def test_load_unload_and_lookups(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    instance = f"life-{uuid.uuid4()}"
    runner = supervisor.load(instance, ModelFormat.TFLITE, model_bytes("add_mul.tflite"), limits)
    assert supervisor.runner(instance) is runner
    assert runner.ready()
    with pytest.raises(Conflict):
        supervisor.load(instance, ModelFormat.TFLITE, model_bytes("add_mul.tflite"), limits)
    pids = runner.worker_pids
    supervisor.unload(instance)
    assert not runner.ready()
    with pytest.raises(InferenceFailed):
        runner.run({"a": np.zeros((1, 4), np.float32), "b": np.zeros((1, 4), np.float32)})
    with pytest.raises(NotFound):
        supervisor.runner(instance)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in _state(pid)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0]
    except OSError:
        return "gone"


def test_model_over_the_size_limit_is_refused_without_starting_a_worker(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    with pytest.raises(ModelRejected, match="over the limit"):
        supervisor.load(
            "too-big",
            ModelFormat.ONNX,
            model_bytes("mixed_io.onnx"),
            replace(limits, max_model_bytes=10),
        )


def test_cpu_time_limit_kills_an_endless_loop(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    instance = f"cpu-{uuid.uuid4()}"
    # Starting the worker costs about 0.4 s of CPU; the loop burns the rest.
    tight = replace(limits, cpu_seconds=2, request_timeout_s=60.0)
    runner = supervisor.load(
        instance, ModelFormat.ONNX, model_bytes("hostile_infinite_loop.onnx"), tight
    )
    try:
        with pytest.raises(InferenceFailed, match="CPU time limit"):
            runner.run({"x": np.array([0.0], np.float32)})
    finally:
        supervisor.unload(instance)


def test_a_model_that_does_not_load_in_time_is_refused(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    hurried = replace(limits, extra={"sandbox.load_timeout_s": "0.01"})
    with pytest.raises(ModelRejected, match=r"did not finish within 0\.01 s"):
        supervisor.load("slow", ModelFormat.ONNX, model_bytes("mixed_io.onnx"), hurried)


def test_answers_over_the_output_limit_are_refused(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    capped = replace(
        limits, extra={"sandbox.slot_bytes": "4096", "sandbox.max_output_bytes": "8192"}
    )
    instance = f"cap-{uuid.uuid4()}"
    runner = supervisor.load(
        instance, ModelFormat.ONNX, model_bytes("hostile_memory_bomb.onnx"), capped
    )
    try:
        with pytest.raises(InferenceFailed, match="over the limit of 8192"):
            runner.run({"shape": np.array([64, 64], np.int64)})  # 16 KB of zeros
        assert wait_for(lambda: bool(runner.worker_pids))
        small = runner.run({"shape": np.array([2, 2], np.int64)})
        np.testing.assert_array_equal(small["filled"], np.zeros((2, 2), np.float32))
    finally:
        supervisor.unload(instance)


def test_a_worker_that_cannot_be_spawned_is_a_clear_error(
    supervisor: Supervisor,
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_processes(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr("cleanroom.runtime.sandbox.process.subprocess.Popen", no_processes)
    with pytest.raises(ServiceUnavailable, match="cannot start a sandboxed worker"):
        supervisor.load("nospawn", ModelFormat.TFLITE, model_bytes("add_mul.tflite"), limits)


def test_a_worker_near_its_cpu_budget_is_replaced_while_idle(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    always = replace(limits, extra={"sandbox.recycle_cpu_fraction": "0"})
    instance = f"recycle-{uuid.uuid4()}"
    runner = supervisor.load(instance, ModelFormat.TFLITE, model_bytes("add_mul.tflite"), always)
    try:
        (first,) = runner.worker_pids
        ones = np.ones((1, 4), np.float32)
        assert runner.run({"a": ones, "b": ones})["sum"].tolist() == [[2.0] * 4]
        assert wait_for(lambda: bool(runner.worker_pids) and runner.worker_pids != [first])
        assert runner.run({"a": ones, "b": ones})["prod"].tolist() == [[1.0] * 4]
    finally:
        supervisor.unload(instance)


def test_a_memory_limit_below_what_the_runtime_needs_is_named(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    starved = replace(limits, memory_bytes=160 * 1024 * 1024)
    with pytest.raises((ModelRejected, ServiceUnavailable), match="memory_bytes=167772160"):
        supervisor.load("starved", ModelFormat.ONNX, model_bytes("mixed_io.onnx"), starved)
    with pytest.raises(NotFound):
        supervisor.runner("starved")


def test_a_runner_with_a_model_source_keeps_no_plaintext_and_restarts_from_it(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    model = model_bytes("mixed_io.onnx")
    handed_out: list[bytearray] = []

    def reload() -> bytearray:
        handed_out.append(bytearray(model))
        return handed_out[-1]

    instance = f"source-{uuid.uuid4()}"
    sent = bytearray(model)
    runner = supervisor.load(instance, ModelFormat.ONNX, sent, limits, reload)
    try:
        assert runner._model == b""  # the buffer it was given is not referenced
        (pid,) = runner.worker_pids
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not runner.worker_pids)
        assert runner.run(mixed_inputs(2))["y"].shape == (2, 2)  # restarted on demand
        assert len(handed_out) == 1
        assert handed_out[0] == bytearray()  # wiped once sent
    finally:
        supervisor.unload(instance)


def _gone(pid: int | None) -> bool:
    return pid is None or not os.path.exists(f"/proc/{pid}") or _state(pid) in ("Z", "gone")


def test_a_model_streamed_in_pieces_serves_like_one_sent_whole(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    model = model_bytes("mixed_io.onnx")
    instance = f"pieces-{uuid.uuid4()}"
    loading = supervisor.begin_load(
        instance, ModelFormat.ONNX, len(model), replace(limits, workers=2), lambda: bytearray(model)
    )
    for start in range(0, len(model), 100):
        loading.write(model[start : start + 100])
    runner = loading.finish()
    try:
        assert supervisor.runner(instance) is runner
        assert len(runner.worker_pids) == 2
        inputs = mixed_inputs(3)
        assert_same(runner.run(inputs), direct_onnx(model, inputs))
    finally:
        supervisor.unload(instance)


def test_an_aborted_load_stops_its_workers_before_they_parse_the_model(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    model = model_bytes("mixed_io.onnx")
    started: list[WorkerProcess] = []
    original = supervisor.new_worker

    def spy(fmt: ModelFormat, worker_limits: RuntimeLimits) -> WorkerProcess:
        started.append(original(fmt, worker_limits))
        return started[-1]

    instance = f"aborted-{uuid.uuid4()}"
    supervisor.new_worker = spy  # type: ignore[method-assign]
    try:
        loading = supervisor.begin_load(
            instance, ModelFormat.ONNX, len(model), replace(limits, workers=2)
        )
        loading.write(model)
        pids = [w.pid for w in started]
        loading.abort()
    finally:
        del supervisor.new_worker
    assert len(pids) == 2
    assert all(_gone(pid) for pid in pids)
    with pytest.raises(NotFound):
        supervisor.runner(instance)


def test_a_load_longer_or_shorter_than_declared_is_refused(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    model = model_bytes("mixed_io.onnx")
    longer = supervisor.begin_load("longer", ModelFormat.ONNX, len(model) - 1, limits)
    with pytest.raises(ValueError, match="longer"):
        longer.write(model)
    shorter = supervisor.begin_load("shorter", ModelFormat.ONNX, len(model), limits)
    shorter.write(model[:-1])
    with pytest.raises(ValueError, match="shorter"):
        shorter.finish()
    for instance in ("longer", "shorter"):
        with pytest.raises(NotFound):
            supervisor.runner(instance)


def test_a_worker_never_told_to_load_exits_without_parsing_the_model(
    limits: RuntimeLimits,
) -> None:
    # A model the worker would refuse (ModelRejected) if it parsed it.
    model = b"not an ONNX model" * 64
    worker = WorkerProcess(ModelFormat.ONNX, limits, network="auto")
    worker.begin(len(model))
    worker.send(model)
    sock = worker._sock
    assert sock is not None
    assert worker._proc is not None
    send_frame(sock, {"op": "run", "area": "shm", "nbytes": 0})
    with pytest.raises(PeerClosed):
        recv_header(sock)  # no reply at all: not a refusal of the model
    assert worker._proc.wait(timeout=10) == 1
    worker.kill()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"ok": True, "run_ns": 1500}, 1500),
        ({"ok": True, "run_ns": 0}, 0),
        ({"ok": True}, None),
        ({"ok": True, "run_ns": -1}, None),
        ({"ok": True, "run_ns": "1500"}, None),
        ({"ok": True, "run_ns": 1.5}, None),
        ({"ok": True, "run_ns": True}, None),
        ({"ok": True, "run_ns": 2**63}, None),
    ],
)
def test_a_reported_run_time_is_used_only_when_sane(
    reply: dict[str, Any], expected: int | None
) -> None:
    assert reported_run_ns(reply) == expected


def test_requests_past_the_waiting_limit_are_refused_at_once(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    """A busy instance refuses more waiters (503) instead of holding a service thread each."""
    instance = f"busy-{uuid.uuid4()}"
    one_waiter = replace(limits, workers=1, extra={"sandbox.max_waiting": "1"})
    runner = supervisor.load(instance, ModelFormat.ONNX, model_bytes("mixed_io.onnx"), one_waiter)
    try:
        held = runner._idle.get(timeout=5)  # the only worker, busy with someone else
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(runner.run, mixed_inputs(1))
            assert wait_for(lambda: runner._waiting == 1)
            with pytest.raises(ServiceUnavailable, match="already waiting"):
                runner.run(mixed_inputs(1))
            runner._idle.put(held)
            assert waiting.result(timeout=30)["y"].shape[0] == 1
        # Nobody waits any more: requests are served again.
        assert runner.run(mixed_inputs(1))["y"].shape[0] == 1
    finally:
        supervisor.unload(instance)


def test_the_waiting_limit_defaults_to_four_per_worker(onnx_instance: SandboxedRunner) -> None:
    assert onnx_instance._max_waiting == 8  # two workers
