"""The worker's confinement, checked from the outside and by trying from inside."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from cleanroom.errors import ServiceUnavailable
from cleanroom.runtime import RuntimeLimits, SandboxReport, Supervisor
from cleanroom.runtime.sandbox import SandboxedRunner, landlock
from cleanroom.runtime.sandbox.process import WorkerProcess
from cleanroom.wire.formats import ModelFormat

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="reads another process's namespaces")


@pytest.fixture(scope="module")
def onnx_runner(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> Iterator[SandboxedRunner]:
    instance = f"iso-{uuid.uuid4()}"
    runner = supervisor.load(instance, ModelFormat.ONNX, model_bytes("mixed_io.onnx"), limits)
    yield runner
    supervisor.unload(instance)


@needs_root
def test_worker_network_namespace_differs_from_the_service(onnx_runner: SandboxedRunner) -> None:
    ours = os.readlink("/proc/self/ns/net")
    for pid in onnx_runner.worker_pids:
        assert os.readlink(f"/proc/{pid}/ns/net") != ours


@pytest.mark.parametrize(
    ("action", "outcome"),
    [
        ("socket_inet", "denied (Operation not permitted)"),
        ("socket_unix", "denied (Operation not permitted)"),
        ("execve", "denied (Operation not permitted)"),
        ("write_file", "denied (Permission denied)"),
        ("read_service_memory", "denied (Permission denied)"),
        ("signal_service", "denied (Operation not permitted)"),
    ],
)
def test_forbidden_actions_fail_inside_a_loaded_worker(
    onnx_runner: SandboxedRunner, action: str, outcome: str
) -> None:
    assert onnx_runner.probe()[action] == outcome


def test_tflite_worker_is_confined_the_same_way(
    supervisor: Supervisor, model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    instance = f"iso-tfl-{uuid.uuid4()}"
    runner = supervisor.load(instance, ModelFormat.TFLITE, model_bytes("add_mul.tflite"), limits)
    try:
        found = runner.probe()
        assert found["socket_inet"].startswith("denied")
        assert found["execve"].startswith("denied")
        assert found["net_ns"] != os.readlink("/proc/self/ns/net")
    finally:
        supervisor.unload(instance)


def test_report_names_the_mechanism_in_force(supervisor: Supervisor) -> None:
    report = supervisor.report()
    assert report.mechanism == "netns+seccomp"
    assert report.confined
    assert report.file_write_denied
    assert report.service_memory_denied
    assert report.signal_denied
    if landlock.abi_version() >= 1:
        assert report.filesystem == f"landlock-v{landlock.abi_version()}"
    assert report.rlimits["RLIMIT_CORE"] == 0
    assert report.to_json()["mechanism"] == "netns+seccomp"


def test_seccomp_fallback_without_a_namespace(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    fallback = Supervisor(limits, network="seccomp")
    try:
        report = fallback.report()
        assert report.mechanism == "seccomp"
        assert report.network_namespace is None
        assert report.socket_denied
        assert report.execve_denied
        runner = fallback.load("fb", ModelFormat.TFLITE, model_bytes("add_mul.tflite"), limits)
        found = runner.probe()
        # Same namespace as the service, yet no socket can be created.
        assert found["net_ns"] == os.readlink("/proc/self/ns/net")
        assert found["socket_inet"].startswith("denied")
    finally:
        fallback.close()


def _as_strong_as_the_probe(report: SandboxReport) -> dict[str, object]:
    return {
        "seccomp": True,
        "network_namespace": report.network_namespace,
        "filesystem": report.filesystem,
    }


def test_a_worker_as_confined_as_the_probe_is_accepted(supervisor: Supervisor) -> None:
    supervisor.check_confinement(_as_strong_as_the_probe(supervisor.report()))


# One protection taken away from a worker otherwise as confined as the probe.
WEAKER_WORKERS = [
    ("no seccomp", {"seccomp": False}, "seccomp filter", None),
    ("seccomp not reported", {"seccomp": None}, "seccomp filter", None),
    ("no namespace", {"network_namespace": None}, "namespaces", "netns"),
    ("a network namespace alone", {"network_namespace": "netns"}, "namespaces", "userns+netns"),
    ("an unknown namespace word", {"network_namespace": "yes"}, "namespaces", "netns"),
    ("no filesystem restriction", {"filesystem": None}, "filesystem", "landlock"),
]


@pytest.mark.parametrize(
    ("change", "reason", "needs"),
    [
        pytest.param(change, reason, needs, id=name)
        for name, change, reason, needs in WEAKER_WORKERS
    ],
)
def test_a_worker_weaker_than_the_probe_is_refused(
    supervisor: Supervisor, change: dict[str, object], reason: str, needs: str | None
) -> None:
    report = supervisor.report()
    if needs == "landlock" and not report.filesystem:
        pytest.skip("no Landlock on this host")
    if needs in ("netns", "userns+netns") and needs not in str(report.network_namespace):
        pytest.skip(f"this host's workers do not get {needs}")
    with pytest.raises(ServiceUnavailable, match=reason):
        supervisor.check_confinement({**_as_strong_as_the_probe(report), **change})


@pytest.mark.parametrize(
    ("probe_result", "problem"),
    [
        ({"socket_inet": "allowed"}, "socket is not denied"),
        ({"socket_unix": "allowed"}, "socket is not denied"),
        ({"execve": "allowed"}, "execve is not denied"),
        ({"write_file": "allowed"}, "writing a file is not denied"),
        ({"read_service_memory": "allowed"}, "reading the service's memory is not denied"),
        ({"signal_service": "allowed"}, "signalling the service is not denied"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_a_supervisor_refuses_to_start_where_the_probe_finds_a_hole(
    monkeypatch: pytest.MonkeyPatch,
    limits: RuntimeLimits,
    probe_result: dict[str, str],
    problem: str,
) -> None:
    probe = WorkerProcess.probe

    def with_a_hole(worker: WorkerProcess, timeout_s: float = 10.0) -> dict[str, object]:
        return {**probe(worker, timeout_s), **probe_result}

    monkeypatch.setattr(WorkerProcess, "probe", with_a_hole)
    with pytest.raises(ServiceUnavailable, match=problem):
        Supervisor(limits)
    # Development hosts may still start one, explicitly and visibly unconfined.
    unconfined = Supervisor(limits, unsafe_allow_unconfined=True)
    try:
        assert not unconfined.report().confined
        assert any(problem in p for p in unconfined.report().problems)
    finally:
        unconfined.close()


def test_workers_failing_the_confinement_check_are_not_left_running(
    supervisor: Supervisor,
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psutil

    before = {c.pid for c in psutil.Process().children()}

    def refuse(sandbox: object) -> None:
        raise ServiceUnavailable("confinement check failed on purpose")

    monkeypatch.setattr(supervisor, "check_confinement", refuse)
    with pytest.raises(ServiceUnavailable, match="on purpose"):
        supervisor.load("weak", ModelFormat.TFLITE, model_bytes("add_mul.tflite"), limits)
    after = {c.pid for c in psutil.Process().children() if c.status() != psutil.STATUS_ZOMBIE}
    assert after <= before


FULL = {
    "seccomp": True,
    "socket_denied": True,
    "execve_denied": True,
    "file_write_denied": True,
    "service_memory_denied": True,
    "signal_denied": True,
}


@pytest.mark.parametrize("missing", sorted(FULL))
def test_report_is_confined_only_with_every_protection(missing: str) -> None:
    fields: dict[str, bool] = {**FULL, missing: False}
    report = SandboxReport(
        mechanism="netns+seccomp", network_namespace="netns", rlimits={}, **fields
    )
    assert not report.confined
    assert SandboxReport(
        mechanism="netns+seccomp", network_namespace="netns", rlimits={}, **FULL
    ).confined


def test_worker_environment_holds_nothing_of_the_service(
    supervisor: Supervisor,
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLEANROOM_TEST_SERVICE_SECRET", "must-not-reach-the-worker")
    instance = f"env-{uuid.uuid4()}"
    try:
        runner = supervisor.load(
            instance, ModelFormat.TFLITE, model_bytes("add_mul.tflite"), limits
        )
        assert runner.probe()["environment"] == [
            "LANG",
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONNOUSERSITE",
            "PYTHONPATH",
        ]
    finally:
        supervisor.unload(instance)


def test_worker_imports_only_runtime_wire_and_errors(onnx_runner: SandboxedRunner) -> None:
    modules = onnx_runner.probe()["cleanroom_modules"]
    assert "cleanroom.runtime.onnx" in modules  # the model really is loaded here
    allowed = ("cleanroom.runtime", "cleanroom.wire", "cleanroom.errors")
    assert [m for m in modules if m != "cleanroom" and not m.startswith(allowed)] == []
