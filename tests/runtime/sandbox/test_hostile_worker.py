"""The service against a hostile worker: one a model compromised, or one that is lying.

A worker runs untrusted models, so nothing it sends is believed: it cannot
resize the shared slot under the service, its error text never reaches a
caller, its outputs must be the model's declared ones, its strings are
counted before they are decoded, and an answer that breaks the protocol
stops it. Most tests here replace the worker's program (``_BOOTSTRAP``) with a
scripted impostor that keeps the protocol up to the misdeed under test; the
rest use real workers and real models.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from cleanroom.errors import InferenceFailed, ModelRejected, ServiceUnavailable
from cleanroom.runtime import RuntimeLimits, Supervisor
from cleanroom.runtime.base import ModelSignature, TensorSpec
from cleanroom.runtime.sandbox import process, seccomp
from cleanroom.runtime.sandbox import worker as worker_module
from cleanroom.runtime.sandbox.answers import AnswerBudget
from cleanroom.runtime.sandbox.protocol import (
    MODEL_FAILED,
    FrameError,
    recv_header,
    send_frame,
)
from cleanroom.runtime.sandbox.startup import Started
from cleanroom.runtime.sandbox.supervisor import SandboxedRunner
from cleanroom.wire.formats import ModelFormat
from cleanroom.wire.tensors import decode_tensors

SECRET = 123456789.0  # an input value that must never appear in an error

# The impostor: the real bootstrap's package stubs, then a scripted worker.
# Its behaviour comes from the start header's limits.extra["test.mode"].
_IMPOSTOR = """
import errno, fcntl, json, mmap, os, socket, struct, time
import numpy as np
from cleanroom.runtime.sandbox.protocol import recv_header, recv_payload, send_frame
from cleanroom.runtime.sandbox.slot import write_tensors
from cleanroom.wire.tensors import decode_tensors, encode_tensors

sock = socket.socket(fileno=int(sys.argv[1]))
slot_fd = int(sys.argv[2])
size = os.fstat(slot_fd).st_size
slot = mmap.mmap(slot_fd, size)
start, model_size = recv_header(sock)
recv_payload(sock, model_size, model_size)
extra = start["limits"]["extra"]
mode, marker = extra.get("test.mode", "echo"), extra.get("test.marker")
attempts = {}
if mode == "resize":
    for label, new_size in (("shrink", 0), ("grow", 2 * size)):
        try:
            os.ftruncate(slot_fd, new_size)
        except OSError as exc:
            attempts[label] = errno.errorcode[exc.errno]
        else:
            attempts[label] = "allowed"
            os.ftruncate(slot_fd, size)  # put back, so a failing test does not kill pytest
    try:
        fcntl.fcntl(slot_fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
    except OSError as exc:
        attempts["seal"] = errno.errorcode[exc.errno]
    else:
        attempts["seal"] = "allowed"
go, _ = recv_header(sock)
assert go["op"] == "load"


class Trickle:
    # A socket stand-in that sends each frame a byte at a time, 0.2 s apart.
    def sendall(self, data):
        for byte in bytes(data):
            sock.sendall(bytes([byte]))
            time.sleep(0.2)


send_frame(Trickle() if mode == "trickle-load" else sock, {
    "ok": True,
    "pid": os.getpid(),
    # Claims every protection, as a compromised worker would.
    "sandbox": {"seccomp": True, "network_namespace": "userns+netns",
                "filesystem": "landlock-v1", "errors": [], "rlimits": {}, "attempts": attempts},
    "signature": {"inputs": [{"name": "x", "dtype": "float32", "shape": [None]}],
                  "outputs": [{"name": "y", "dtype": "float32",
                               "shape": [2] if mode == "shape" else [None]}]},
})
while True:
    try:
        header, n = recv_header(sock)
    except Exception:
        break
    if header.get("op") != "run":
        break
    payload = recv_payload(sock, n, 1 << 30)
    area = memoryview(slot)[: header["nbytes"]] if header["area"] == "shm" else payload
    x = np.array(decode_tensors(area)["x"])
    del area
    now = mode
    if mode == "nested-once":
        now = "echo" if os.path.exists(marker) else "nested"
        open(marker, "w").close()
    if now == "nested":
        text = ("[" * 100000 + "]" * 100000).encode()
        sock.sendall(struct.pack(">IQ", len(text), 0) + text)
        continue
    if now == "leak":
        send_frame(sock, {"ok": False, "code": "inference_failed", "message": f"idx={x[0]:.0f}"})
        continue
    outputs = {
        "echo": {"y": x},
        "resize": {"y": x},
        "extra": {"y": x, "undeclared": x},
        "missing": {},
        "dtype": {"y": x.astype(np.float64)},
        "strings": {"y": np.array(["a"] * 5000, dtype=object)},
        "shape": {"y": np.zeros(3000, np.float32)},
        "trickle": {"y": x},
    }[now]
    out = Trickle() if now == "trickle" else sock
    written = write_tensors(slot, outputs)
    if written is None:
        body = encode_tensors(outputs)
        send_frame(out, {"ok": True, "area": "inline", "nbytes": len(body)}, body)
    else:
        send_frame(out, {"ok": True, "area": "shm", "nbytes": written})
"""


@pytest.fixture
def impostor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers started during the test run the impostor instead of the worker."""
    stub, found, _ = process._BOOTSTRAP.partition("from cleanroom.runtime.sandbox.startup")
    assert found
    monkeypatch.setattr(process, "_BOOTSTRAP", stub + _IMPOSTOR)


def _limits(base: RuntimeLimits, mode: str, **extra: str) -> RuntimeLimits:
    return replace(
        base, extra={"test.mode": mode, "sandbox.slot_bytes": "65536", **base.extra, **extra}
    )


@pytest.fixture
def start_impostor(
    impostor: None, limits: RuntimeLimits
) -> Iterator[Callable[..., process.WorkerProcess]]:
    started: list[process.WorkerProcess] = []

    def start(mode: str, **extra: str) -> process.WorkerProcess:
        worker = process.WorkerProcess(
            ModelFormat.ONNX, _limits(limits, mode, **extra), network="seccomp"
        )
        started.append(worker)
        worker.start(b"not a model: the impostor ignores it")
        return worker

    yield start
    for worker in started:
        worker.kill()


def _x(*values: float) -> dict[str, Any]:
    return {"x": np.array(values, np.float32)}


# 1. The slot's size is sealed.


def test_the_slot_memfd_is_sealed_against_resizing() -> None:
    fd = process.sealed_slot(1 << 16)
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        for seal in (fcntl.F_SEAL_SHRINK, fcntl.F_SEAL_GROW, fcntl.F_SEAL_SEAL):
            assert seals & seal
        for size in (0, 4096, 1 << 20):
            with pytest.raises(PermissionError):
                os.ftruncate(fd, size)
        with pytest.raises(PermissionError):
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
        assert os.fstat(fd).st_size == 1 << 16
    finally:
        os.close(fd)


def test_a_worker_cannot_shrink_the_slot_under_the_service(
    start_impostor: Callable[..., process.WorkerProcess],
) -> None:
    worker = start_impostor("resize")
    assert worker.sandbox["attempts"] == {"shrink": "EPERM", "grow": "EPERM", "seal": "EPERM"}
    # The service reads and zeroes the slot as before, and is still alive to see it.
    out = worker.run(_x(1.0, 2.0), timeout_s=20.0)
    np.testing.assert_array_equal(out["y"], [1.0, 2.0])
    slot = worker._slot
    assert slot is not None
    assert slot[:] == bytes(len(slot))


# 2. A model's run-time error text stays in the worker.


def _gather_model() -> bytes:
    """y = data[x]: an index out of range makes ONNX Runtime quote it."""
    data = numpy_helper.from_array(np.arange(4, dtype=np.float32), "data")
    node = helper.make_node("Gather", ["data", "x"], ["y"], axis=0)
    graph = helper.make_graph(
        [node],
        "gather_leak",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=[data],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_a_models_error_text_does_not_carry_its_inputs_out(
    supervisor: Supervisor, limits: RuntimeLimits
) -> None:
    model = _gather_model()
    secret = np.array([int(SECRET)], np.int64)
    # The channel is real: ONNX Runtime's own message quotes the index.
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match=str(int(SECRET))):
        session.run(None, {"x": secret})
    instance = f"gather-{uuid.uuid4()}"
    runner = supervisor.load(instance, ModelFormat.ONNX, model, limits)
    try:
        with pytest.raises(InferenceFailed) as info:
            runner.run({"x": secret})
        assert info.value.message == MODEL_FAILED
        assert str(int(SECRET)) not in str(info.value)
        assert info.value.__cause__ is None
        # The worker was not at fault: it keeps serving.
        np.testing.assert_array_equal(runner.run({"x": np.array([2], np.int64)})["y"], [2.0])
    finally:
        supervisor.unload(instance)


def test_a_compromised_workers_error_text_is_not_passed_on(
    start_impostor: Callable[..., process.WorkerProcess],
) -> None:
    worker = start_impostor("leak")
    with pytest.raises(InferenceFailed) as info:
        worker.run(_x(SECRET), timeout_s=20.0)
    assert info.value.message == MODEL_FAILED


# 3. Outputs must be the declared ones.


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("extra", "the worker sent outputs the model does not declare"),
        ("missing", "the worker left out outputs the model declares"),
        ("dtype", "the worker sent an output of another dtype than declared"),
        # Declared y [2], answered 3,000 elements: no more than the model declares.
        ("shape", "the worker sent an output of another shape than declared"),
    ],
)
def test_outputs_other_than_the_declared_ones_are_refused(
    start_impostor: Callable[..., process.WorkerProcess], mode: str, message: str
) -> None:
    worker = start_impostor(mode)
    with pytest.raises(InferenceFailed) as info:
        worker.run(_x(SECRET), timeout_s=20.0)
    assert info.value.message == message
    assert not worker.alive  # a worker that does this is not used again


def test_declared_outputs_pass(start_impostor: Callable[..., process.WorkerProcess]) -> None:
    worker = start_impostor("echo")
    out = worker.run(_x(3.0), timeout_s=20.0)
    assert list(out) == ["y"]
    assert worker.alive


# 4. String elements are counted before they are decoded.


def test_too_many_output_strings_are_refused_before_decoding(
    start_impostor: Callable[..., process.WorkerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[object] = []

    def spy(data: Any) -> Any:
        decoded.append(data)
        return decode_tensors(data)

    monkeypatch.setattr("cleanroom.runtime.sandbox.process.decode_tensors", spy)
    worker = start_impostor("strings", **{"sandbox.max_output_strings": "1000"})
    with pytest.raises(InferenceFailed, match="more than 1000 string elements"):
        worker.run(_x(1.0), timeout_s=20.0)
    assert not decoded
    assert not worker.alive


def test_the_string_limit_follows_the_output_limit(limits: RuntimeLimits) -> None:
    default = process.WorkerProcess(ModelFormat.ONNX, limits, network="seccomp")
    assert default.max_output_strings == 1 << 20
    small = replace(limits, extra={"sandbox.max_output_bytes": str(1 << 16)})
    capped = process.WorkerProcess(ModelFormat.ONNX, small, network="seccomp")
    assert capped.max_output_strings == (1 << 16) // 16


# 5. A reply that cannot be parsed stops the worker, and the slot is zeroed.


@pytest.mark.parametrize(
    "header",
    [
        b"[" * 100000 + b"]" * 100000,  # RecursionError in json
        b'{"ok": "\xff"}',  # not UTF-8
        b"1e999999",  # not an object
        b"{" + b'"a":' * 10 + b"}",  # not JSON
    ],
)
def test_an_unreadable_header_is_a_frame_error(header: bytes) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(len(header).to_bytes(4, "big") + (0).to_bytes(8, "big") + header)
        with pytest.raises(FrameError) as info:
            recv_header(ours)
    assert info.value.__cause__ is None


def test_a_nested_reply_stops_the_worker_and_leaves_the_slot_empty(
    start_impostor: Callable[..., process.WorkerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = np.full(64, SECRET, np.float32)
    clean: list[bool] = []
    original = process._zero

    def spy(slot: mmap.mmap, nbytes: int) -> None:
        original(slot, nbytes)
        clean.append(secret.tobytes() not in slot[:])

    monkeypatch.setattr(process, "_zero", spy)
    worker = start_impostor("nested")
    with pytest.raises(InferenceFailed, match="broke the protocol"):
        worker.run({"x": secret}, timeout_s=20.0)
    assert not worker.alive
    assert clean == [True]


def test_a_worker_out_of_step_is_replaced_and_the_next_caller_gets_their_own_answer(
    supervisor: Supervisor, impostor: None, limits: RuntimeLimits, tmp_path: Path
) -> None:
    instance = f"nested-{uuid.uuid4()}"
    runner = supervisor.load(
        instance,
        ModelFormat.ONNX,
        b"not a model: the impostor ignores it",
        _limits(limits, "nested-once", **{"test.marker": str(tmp_path / "answered")}),
    )
    try:
        (first,) = runner.worker_pids
        with pytest.raises(InferenceFailed, match="broke the protocol"):
            runner.run(_x(SECRET))
        out = runner.run(_x(5.0))
        np.testing.assert_array_equal(out["y"], [5.0])
        assert runner.worker_pids != [first]
    finally:
        supervisor.unload(instance)


def test_a_worker_reporting_another_signature_on_restart_is_not_used(
    supervisor: Supervisor, impostor: None, limits: RuntimeLimits
) -> None:
    instance = f"resign-{uuid.uuid4()}"
    runner = supervisor.load(
        instance, ModelFormat.ONNX, b"not a model: the impostor ignores it", _limits(limits, "echo")
    )
    try:
        # As if the first workers had declared another output than the restarted one will.
        runner._signature = ModelSignature(
            inputs=runner.signature.inputs, outputs=(TensorSpec("z", "float32", (None,)),)
        )
        (worker,) = runner._all
        worker.kill()
        with pytest.raises(InferenceFailed, match="could not be restarted"):
            runner.run(_x(1.0))
    finally:
        supervisor.unload(instance)


# 6. Without its confinement, a worker never parses the model.


class _Receiver:
    def model(self) -> bytearray:
        return bytearray(b"the model")


class _Runner:
    signature = ModelSignature(inputs=(), outputs=())


def _start_in_process(
    monkeypatch: pytest.MonkeyPatch, load: dict[str, Any]
) -> tuple[dict[str, Any], list[object]]:
    """Run the worker's start step here, its seccomp filter failing; the reply and loads."""

    def no_filter() -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    loaded: list[object] = []

    def load_model(*args: object) -> _Runner:
        loaded.append(args)
        return _Runner()

    monkeypatch.setattr(seccomp, "install_filter", no_filter)
    monkeypatch.setattr("cleanroom.runtime.loading.load_model", load_model)
    # Never into this process: the filter would stay on pytest itself.
    assert vars(worker_module)["seccomp"].install_filter is no_filter
    ours, theirs = socket.socketpair()
    info: dict[str, Any] = {"seccomp": False, "network_namespace": None, "errors": []}
    started = Started(ModelFormat.ONNX, RuntimeLimits(), info, _Receiver())  # type: ignore[arg-type]
    worker = worker_module._Worker(theirs, mmap.mmap(-1, 4096))
    errors: list[BaseException] = []

    def start() -> None:
        try:
            worker.start(started)
        except FrameError as exc:
            errors.append(exc)

    thread = threading.Thread(target=start)
    with ours, theirs:
        thread.start()
        send_frame(ours, load)
        reply, _ = recv_header(ours)
        thread.join(timeout=30)
    assert not thread.is_alive()
    return reply, loaded


def test_a_worker_whose_filter_failed_does_not_parse_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for load in ({"op": "load"}, {"op": "load", "require": ["seccomp"]}):
        reply, loaded = _start_in_process(monkeypatch, load)
        assert not reply["ok"]
        assert reply["code"] == ServiceUnavailable.code
        assert "seccomp" in reply["message"]
        assert not loaded


def test_an_unconfined_supervisor_still_loads_models(
    monkeypatch: pytest.MonkeyPatch, limits: RuntimeLimits
) -> None:
    reply, loaded = _start_in_process(monkeypatch, {"op": "load", "require": []})
    assert reply["ok"]
    assert len(loaded) == 1
    assert "seccomp: Invalid argument" in reply["sandbox"]["errors"]


def test_the_supervisor_tells_workers_what_it_requires(
    supervisor: Supervisor, limits: RuntimeLimits, model_bytes: Callable[[str], bytes]
) -> None:
    assert "seccomp" in supervisor.required()
    assert supervisor.new_worker(ModelFormat.ONNX, limits).require == supervisor.required()
    unconfined = Supervisor(limits, unsafe_allow_unconfined=True)
    try:
        assert unconfined.required() == ()
        runner: SandboxedRunner = unconfined.load(
            "dev", ModelFormat.TFLITE, model_bytes("add_mul.tflite"), limits
        )
        a = np.ones((1, 4), np.float32)
        np.testing.assert_array_equal(runner.run({"a": a, "b": a})["sum"], a * 2)
    finally:
        unconfined.close()


# 5. A worker's answer must arrive whole within the timeout, however it trickles.


def test_an_answer_trickling_in_is_stopped_at_the_request_timeout(
    start_impostor: Callable[..., process.WorkerProcess],
) -> None:
    worker = start_impostor("trickle")
    started = time.monotonic()
    with pytest.raises(InferenceFailed, match="did not finish within 1 s"):
        worker.run(_x(1.0), timeout_s=1.0)
    # Each byte came well inside 1 s; the answer as a whole would have taken > 10 s.
    assert time.monotonic() - started < 5.0
    assert not worker.alive


def test_a_load_answer_trickling_in_is_stopped_at_the_load_timeout(
    impostor: None, limits: RuntimeLimits
) -> None:
    worker = process.WorkerProcess(
        ModelFormat.ONNX,
        _limits(limits, "trickle-load", **{"sandbox.load_timeout_s": "1"}),
        network="seccomp",
    )
    started = time.monotonic()
    with pytest.raises(ModelRejected, match="did not finish within 1 s"):
        worker.start(b"not a model: the impostor ignores it")
    assert time.monotonic() - started < 5.0
    assert not worker.alive


# 6. Answers being received share one budget across every worker of the service.


def test_an_answer_past_the_shared_budget_is_refused_before_it_is_read(
    impostor: None, limits: RuntimeLimits
) -> None:
    budget = AnswerBudget(1000)
    worker = process.WorkerProcess(
        ModelFormat.ONNX, _limits(limits, "echo"), network="seccomp", answers=budget
    )
    worker.start(b"not a model: the impostor ignores it")
    try:
        assert list(worker.run(_x(1.0), timeout_s=20.0)) == ["y"]  # a small answer fits
        with pytest.raises(ServiceUnavailable, match="memory budget"):
            worker.run({"x": np.zeros(1000, np.float32)}, timeout_s=20.0)
        assert not worker.alive  # left out of step: never reused
        assert budget.held == 0
    finally:
        worker.kill()


def test_the_answer_budget_is_shared_and_given_back() -> None:
    budget = AnswerBudget(10)
    with budget.hold(6):
        with pytest.raises(ServiceUnavailable), budget.hold(5):
            pass
        with budget.hold(4):
            assert budget.held == 10
    assert budget.held == 0


def test_the_supervisors_workers_share_its_budget(supervisor: Supervisor) -> None:
    worker = supervisor.new_worker(ModelFormat.ONNX, supervisor.limits)
    assert worker.answers is supervisor.answers
