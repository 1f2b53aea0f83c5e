"""The supervisor's decisions about its workers, with stand-in workers.

Which workers a load accepts (size, confinement as strong as the probe's, one
signature), what a failed load leaves behind (nothing), how a worker that
failed or died is replaced, and which probe results keep a supervisor from
starting. The workers here are stand-ins with the methods the supervisor
calls: no process is spawned, so the decisions are tested whatever this
host's kernel allows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from cleanroom.errors import (
    Conflict,
    InferenceFailed,
    ModelRejected,
    NotFound,
    ServiceUnavailable,
)
from cleanroom.runtime import RuntimeLimits, Supervisor
from cleanroom.runtime.base import ModelSignature, TensorSpec
from cleanroom.runtime.sandbox import supervisor as supervisor_module
from cleanroom.runtime.sandbox.report import SandboxReport
from cleanroom.runtime.sandbox.supervisor import SandboxedRunner
from cleanroom.wire.formats import ModelFormat

SIGNATURE = ModelSignature(
    inputs=(TensorSpec("x", "float32", (None,)),), outputs=(TensorSpec("y", "float32", (None,)),)
)
# As confined as the probe below found a worker can be.
FULL_SANDBOX = {
    "seccomp": True,
    "network_namespace": "userns+netns",
    "filesystem": "landlock-v3",
    "errors": [],
}
PROBE_REPORT = SandboxReport(
    mechanism="netns+seccomp",
    network_namespace="userns+netns",
    seccomp=True,
    socket_denied=True,
    execve_denied=True,
    file_write_denied=True,
    rlimits={},
    filesystem="landlock-v3",
    service_memory_denied=True,
    signal_denied=True,
)


class FakeWorker:
    """What the supervisor calls on a WorkerProcess, recorded."""

    def __init__(self, sandbox: dict[str, Any] | None = None) -> None:
        self.sandbox: dict[str, Any] = dict(FULL_SANDBOX if sandbox is None else sandbox)
        self.model_signature = SIGNATURE
        self.alive = True
        self.pid = id(self)
        self.needs_recycle = False
        self.received = 0
        self.loads = 0
        self.starts = 0
        self.runs = 0
        self.timeouts: list[tuple[float, float | None]] = []
        self.killed = False
        # Hooks a test sets to script the worker.
        self.on_load: Callable[[], None] = lambda: None
        self.on_start: Callable[[], None] = lambda: None
        self.on_run: Callable[[], None] = lambda: None

    def begin(self, size: int) -> None:
        pass

    def send(self, data: bytes | bytearray | memoryview) -> None:
        self.received += memoryview(data).nbytes

    def load(self) -> None:
        self.loads += 1
        self.on_load()

    def start(self, model: bytes | bytearray | memoryview) -> None:
        self.starts += 1
        self.alive = True
        self.on_start()

    def run_timed(
        self, inputs: dict[str, Any], timeout_s: float, *, limit_s: float | None = None
    ) -> tuple[dict[str, Any], int | None]:
        self.runs += 1
        self.timeouts.append((timeout_s, limit_s))
        self.on_run()
        return {"y": inputs["x"]}, 1

    def kill(self) -> None:
        self.killed = True
        self.alive = False

    def stop(self, grace_s: float = 1.0) -> None:
        self.kill()


@pytest.fixture
def dumping() -> list[str]:
    return []


@pytest.fixture
def make_supervisor(
    monkeypatch: pytest.MonkeyPatch, limits: RuntimeLimits, dumping: list[str]
) -> Iterator[Callable[..., Supervisor]]:
    """A supervisor whose start-up probe found *report*, handing out stand-in workers."""
    made: list[Supervisor] = []
    monkeypatch.setattr(supervisor_module, "forbid_dumping", lambda: dumping.append("forbidden"))

    def make(report: SandboxReport = PROBE_REPORT, **kwargs: Any) -> Supervisor:
        monkeypatch.setattr(Supervisor, "_probe", lambda self: report)
        sup = Supervisor(limits, **kwargs)
        sup.workers = []  # type: ignore[attr-defined]

        def new_worker(fmt: ModelFormat, worker_limits: RuntimeLimits) -> FakeWorker:
            worker = FakeWorker()
            sup.workers.append(worker)  # type: ignore[attr-defined]
            return worker

        sup.new_worker = new_worker  # type: ignore[assignment,method-assign]
        made.append(sup)
        return sup

    yield make
    for sup in made:
        sup.close()


def _workers(sup: Supervisor) -> list[FakeWorker]:
    return sup.workers  # type: ignore[attr-defined,no-any-return]


MODEL = b"m" * 100


# 1. Loading.


def test_a_model_of_exactly_the_size_limit_is_accepted(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    capped = replace(limits, max_model_bytes=len(MODEL))
    runner = sup.load("at-the-limit", ModelFormat.ONNX, MODEL, capped)
    assert sup.runner("at-the-limit") is runner
    with pytest.raises(ModelRejected, match="over the limit of 100"):
        sup.begin_load("past-the-limit", ModelFormat.ONNX, len(MODEL) + 1, capped)
    assert len(_workers(sup)) == 1  # none started for the refused one


def test_a_refusal_of_the_model_wins_over_other_load_errors(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    loading = sup.begin_load("two", ModelFormat.ONNX, len(MODEL), replace(limits, workers=2))
    first, second = _workers(sup)
    failed = threading.Event()

    def unavailable() -> None:
        failed.set()
        raise ServiceUnavailable("the worker could not start")

    def rejected() -> None:
        failed.wait(timeout=20)  # after the other worker's error
        raise ModelRejected("the model is hostile")

    first.on_load = unavailable
    second.on_load = rejected
    loading.write(MODEL)
    with pytest.raises(ModelRejected, match="the model is hostile"):
        loading.finish()
    assert first.killed
    assert second.killed
    with pytest.raises(NotFound):
        sup.runner("two")


# Confinement a worker reports after loading, one protection short of the probe's.
WEAKER = [
    ("no seccomp", {"seccomp": False}, "seccomp filter"),
    ("a network namespace alone", {"network_namespace": "netns"}, "namespaces"),
    ("no namespace", {"network_namespace": None}, "namespaces"),
    ("no filesystem restriction", {"filesystem": None}, "filesystem"),
]


@pytest.mark.parametrize(
    ("change", "reason"),
    [pytest.param(change, reason, id=name) for name, change, reason in WEAKER],
)
def test_a_load_is_refused_when_any_worker_is_less_confined_than_the_probe(
    make_supervisor: Callable[..., Supervisor],
    limits: RuntimeLimits,
    change: dict[str, Any],
    reason: str,
) -> None:
    sup = make_supervisor()
    loading = sup.begin_load("weak", ModelFormat.ONNX, len(MODEL), replace(limits, workers=2))
    first, second = _workers(sup)
    second.on_load = lambda: second.sandbox.update(change)  # the second of two only
    loading.write(MODEL)
    with pytest.raises(ServiceUnavailable, match=reason):
        loading.finish()
    assert first.killed
    assert second.killed
    with pytest.raises(NotFound):
        sup.runner("weak")


def test_workers_that_disagree_on_the_signature_are_refused(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    loading = sup.begin_load("split", ModelFormat.ONNX, len(MODEL), replace(limits, workers=2))
    first, second = _workers(sup)
    second.model_signature = ModelSignature(
        inputs=SIGNATURE.inputs, outputs=(TensorSpec("secrets", "str", (None,)),)
    )
    loading.write(MODEL)
    with pytest.raises(ModelRejected, match="disagree on its signature"):
        loading.finish()
    assert first.killed
    assert second.killed
    with pytest.raises(NotFound):
        sup.runner("split")


def test_a_closed_supervisor_starts_no_worker(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    sup.close()
    with pytest.raises(ServiceUnavailable, match="closed"):
        sup.check_free("late")
    with pytest.raises(ServiceUnavailable, match="closed"):
        sup.begin_load("late", ModelFormat.ONNX, len(MODEL), limits)
    assert _workers(sup) == []


def test_a_runner_finished_after_the_supervisor_closed_is_closed_too(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    loading = sup.begin_load("racing", ModelFormat.ONNX, len(MODEL), limits)
    loading.write(MODEL)
    sup.close()
    with pytest.raises(ServiceUnavailable, match="closed"):
        loading.finish()
    assert all(w.killed for w in _workers(sup))
    with pytest.raises(NotFound):
        sup.runner("racing")


def test_unloading_a_stale_runner_leaves_the_current_one(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    current = sup.load("inst", ModelFormat.ONNX, MODEL, limits)
    stale = SandboxedRunner(sup, ModelFormat.ONNX, [FakeWorker()], limits, MODEL)  # type: ignore[list-item]
    sup.unload_runner("inst", stale)
    assert sup.runner("inst") is current
    with pytest.raises(Conflict):
        sup.register("inst", stale)


# 2. Serving and replacing workers.


def _runner(
    sup: Supervisor, limits: RuntimeLimits, worker: FakeWorker, **changes: Any
) -> SandboxedRunner:
    return SandboxedRunner(
        sup,
        ModelFormat.ONNX,
        [worker],  # type: ignore[list-item]
        replace(limits, **changes),
        MODEL,
    )


X = {"x": np.array([1.0], np.float32)}


def test_a_restarted_worker_less_confined_than_the_probe_is_not_used(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    worker = FakeWorker()
    runner = _runner(sup, limits, worker, request_timeout_s=0.5)
    worker.alive = False  # it died between requests
    worker.on_start = lambda: worker.sandbox.update({"seccomp": False})
    for _ in range(2):  # and the next request tries again, without waiting for it
        with pytest.raises(InferenceFailed) as info:
            runner.run(X)
        assert info.value.message == "the model's worker could not be restarted"
    assert worker.starts == 2
    assert worker.runs == 0
    assert not worker.alive


def test_a_restarted_worker_as_confined_as_the_probe_serves(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    worker = FakeWorker()
    runner = _runner(sup, limits, worker)
    worker.alive = False
    np.testing.assert_array_equal(runner.run(X)["y"], X["x"])
    assert worker.starts == 1
    assert runner.restarts == 1


def test_an_unloaded_runner_refuses_without_touching_its_workers(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    worker = FakeWorker()
    runner = _runner(sup, limits, worker)
    runner.close()
    with pytest.raises(InferenceFailed) as info:
        runner.run(X)
    assert info.value.message == "the model has been unloaded"
    assert (worker.starts, worker.runs) == (0, 0)


def _settle(runner: SandboxedRunner) -> None:
    for thread in list(runner._restarting):
        thread.join(timeout=20)


def test_a_worker_that_died_during_its_request_is_replaced_at_once(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    worker = FakeWorker()
    runner = _runner(sup, limits, worker)

    def crash() -> None:
        worker.kill()
        raise InferenceFailed("the model's worker was killed by SIGSEGV")

    worker.on_run = crash
    with pytest.raises(InferenceFailed, match="SIGSEGV"):
        runner.run(X)
    _settle(runner)
    # Restarted in the background, before any other request needed it.
    assert worker.starts == 1
    assert runner.restarts == 1
    assert worker.alive


def test_a_worker_whose_model_failed_keeps_serving(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    worker = FakeWorker()
    runner = _runner(sup, limits, worker)

    def fail() -> None:
        raise InferenceFailed("out of memory")

    worker.on_run = fail
    with pytest.raises(InferenceFailed, match="out of memory"):
        runner.run(X)
    _settle(runner)
    assert worker.starts == 0
    assert runner.restarts == 0
    assert not worker.killed


def test_a_worker_asking_to_be_recycled_is_replaced_after_its_answer(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    sup = make_supervisor()
    worker = FakeWorker()
    runner = _runner(sup, limits, worker)
    worker.on_run = lambda: setattr(worker, "needs_recycle", True)
    np.testing.assert_array_equal(runner.run(X)["y"], X["x"])
    _settle(runner)
    assert worker.killed  # the old process went
    assert worker.starts == 1
    assert runner.restarts == 1


def test_a_worker_asking_to_be_recycled_with_a_failed_answer_is_replaced_too(
    make_supervisor: Callable[..., Supervisor], limits: RuntimeLimits
) -> None:
    """Past its CPU share, a worker whose model failed must not take the next
    request: that one could die of SIGXCPU though it fits a fresh worker."""
    sup = make_supervisor()
    worker = FakeWorker()
    runner = _runner(sup, limits, worker)

    def fail_past_the_share() -> None:
        worker.needs_recycle = True
        raise InferenceFailed("out of memory")

    worker.on_run = fail_past_the_share
    with pytest.raises(InferenceFailed, match="out of memory"):
        runner.run(X)
    _settle(runner)
    assert worker.starts == 1
    assert runner.restarts == 1


@pytest.mark.parametrize(
    ("waited", "left"),
    [(0.0, 10.0), (7.0, 3.0), (10.0, 0.001), (15.0, 0.001)],
)
def test_the_time_spent_waiting_for_a_worker_counts_against_the_request(
    make_supervisor: Callable[..., Supervisor],
    limits: RuntimeLimits,
    monkeypatch: pytest.MonkeyPatch,
    waited: float,
    left: float,
) -> None:
    sup = make_supervisor()
    worker = FakeWorker()
    runner = _runner(sup, limits, worker, request_timeout_s=10.0)
    readings = iter([100.0, 100.0 + waited])  # on arrival; once a worker was free
    monkeypatch.setattr(
        supervisor_module, "time", SimpleNamespace(monotonic=lambda: next(readings))
    )
    runner.run(X)
    # What is left goes to the worker; the error names the request's whole timeout.
    assert worker.timeouts == [(pytest.approx(left), 10.0)]


# 3. Starting the supervisor: what the probe must find, and what it requires.


def test_the_supervisor_makes_the_service_non_dumpable(
    make_supervisor: Callable[..., Supervisor], dumping: list[str]
) -> None:
    make_supervisor()
    assert dumping == ["forbidden"]


@pytest.mark.parametrize(
    ("report", "required"),
    [
        (PROBE_REPORT, ("seccomp", "network_namespace", "user_namespace", "filesystem")),
        (
            replace(PROBE_REPORT, network_namespace="netns", filesystem=None),
            ("seccomp", "network_namespace"),
        ),
        (
            replace(PROBE_REPORT, network_namespace=None, mechanism="seccomp"),
            ("seccomp", "filesystem"),
        ),
    ],
    ids=["all", "netns alone", "no namespace"],
)
def test_the_supervisor_requires_exactly_what_its_probe_found(
    make_supervisor: Callable[..., Supervisor],
    report: SandboxReport,
    required: tuple[str, ...],
) -> None:
    assert make_supervisor(report).required() == required


ALL_DENIED = {
    "socket_inet": "denied (Operation not permitted)",
    "socket_unix": "denied (Operation not permitted)",
    "write_file": "denied (Permission denied)",
    "read_service_memory": "denied (Permission denied)",
    "signal_service": "denied (Operation not permitted)",
    "execve": "denied (Operation not permitted)",
}
CANARY_SANDBOX = {"seccomp": True, "network_namespace": "userns+netns", "errors": []}


class FakeCanary:
    """The probe worker: reports what the test says it found."""

    found: dict[str, Any] = ALL_DENIED

    def __init__(self, fmt: object, limits: RuntimeLimits, *, network: str) -> None:
        self.sandbox: dict[str, Any] = {}

    def start(self, model: bytes) -> None:
        self.sandbox = dict(CANARY_SANDBOX)

    def probe(self) -> dict[str, Any]:
        return dict(self.found)

    def stop(self) -> None:
        pass


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch, limits: RuntimeLimits) -> Callable[..., Supervisor]:
    def start(found: dict[str, Any], **kwargs: Any) -> Supervisor:
        monkeypatch.setattr(FakeCanary, "found", found)
        monkeypatch.setattr(supervisor_module, "WorkerProcess", FakeCanary)
        return Supervisor(limits, **kwargs)

    return start


def test_a_probe_that_finds_everything_denied_lets_the_supervisor_start(
    canary: Callable[..., Supervisor],
) -> None:
    sup = canary(ALL_DENIED)
    try:
        assert sup.report().confined
        assert sup.report().problems == ()
    finally:
        sup.close()


# Only "denied" is a denial: an attempt that failed for another reason proves nothing.
HOLES = [
    ("execve", "inconclusive (No such file or directory)", "execve is not denied"),
    ("execve", None, "execve is not denied"),
    ("socket_inet", "inconclusive (Address family not supported)", "socket is not denied"),
    ("socket_unix", None, "socket is not denied"),
    ("write_file", "inconclusive (No such file or directory)", "writing a file is not denied"),
    ("read_service_memory", "inconclusive (Input/output error)", "reading the service's memory"),
    ("signal_service", "inconclusive (No such process)", "signalling the service"),
]


@pytest.mark.parametrize(
    ("key", "outcome", "problem"),
    [pytest.param(k, o, p, id=f"{k}-{o}") for k, o, p in HOLES],
)
def test_a_probe_outcome_other_than_denied_keeps_the_supervisor_from_starting(
    canary: Callable[..., Supervisor], key: str, outcome: str | None, problem: str
) -> None:
    found = {**ALL_DENIED, key: outcome}
    if outcome is None:
        del found[key]
    with pytest.raises(ServiceUnavailable, match=problem):
        canary(found)


def test_a_failed_probe_is_named_among_the_problems(canary: Callable[..., Supervisor]) -> None:
    sup = canary({"failed": "the worker exited while probing"}, unsafe_allow_unconfined=True)
    try:
        assert not sup.report().confined
        assert "the worker exited while probing" in sup.report().problems
    finally:
        sup.close()
