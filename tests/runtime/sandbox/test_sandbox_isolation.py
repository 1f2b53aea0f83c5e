"""The worker's confinement, checked from the outside and by trying from inside."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from cleanroom.errors import ServiceUnavailable
from cleanroom.runtime import RuntimeLimits, SandboxReport, Supervisor
from cleanroom.runtime.sandbox import SandboxedRunner, landlock
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


@pytest.mark.parametrize(
    ("name", "sandbox"),
    [
        ("no seccomp", {"seccomp": False, "network_namespace": "netns"}),
        ("no namespace where the host allows one", {"seccomp": True}),
        pytest.param(
            "no filesystem restriction where the host allows one",
            {"seccomp": True, "network_namespace": "userns+netns"},
            marks=pytest.mark.skipif(landlock.abi_version() < 1, reason="no Landlock here"),
        ),
    ],
)
def test_a_worker_weaker_than_the_probe_is_refused(
    supervisor: Supervisor, name: str, sandbox: dict[str, object]
) -> None:
    with pytest.raises(ServiceUnavailable):
        supervisor.check_confinement(sandbox)


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
