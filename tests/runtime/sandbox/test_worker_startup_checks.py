"""A worker's first steps: the start message, its confinement, the model's size.

Run in this process on a socket pair, with the confinement steps replaced by
recorders (they would otherwise confine pytest itself): the order and the
conditions are what is tested; that each step confines is tested in a real
worker (``test_confinement_holes.py``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from cleanroom.runtime import RuntimeLimits
from cleanroom.runtime.sandbox import confine, landlock, startup
from cleanroom.runtime.sandbox.process import limits_to_json
from cleanroom.runtime.sandbox.protocol import FrameError, PeerClosed, send_frame_header
from cleanroom.wire.formats import ModelFormat

LIMITS = RuntimeLimits(max_model_bytes=64, cpu_seconds=100, memory_bytes=1 << 30)


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The confinement steps taken, in order, none of them for real."""
    taken: list[str] = []

    def isolate_network() -> str:
        taken.append("network")
        return "userns+netns"

    def set_resource_limits(limits: RuntimeLimits) -> dict[str, int]:
        taken.append("rlimits")
        return {"RLIMIT_AS": limits.memory_bytes}

    monkeypatch.setattr(confine, "isolate_network", isolate_network)
    monkeypatch.setattr(confine, "set_resource_limits", set_resource_limits)
    monkeypatch.setattr(confine, "forbid_dumping", lambda: taken.append("no dumping"))
    monkeypatch.setattr(confine, "set_no_new_privs", lambda: taken.append("no new privileges"))
    monkeypatch.setattr(landlock, "restrict", lambda: taken.append("landlock") or 3)
    assert startup.confine.set_resource_limits is set_resource_limits
    return taken


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    service, worker = socket.socketpair()
    with service, worker:
        worker.settimeout(20)
        yield service, worker


def _start(network: str = "auto", **changes: Any) -> dict[str, Any]:
    return {
        "op": "start",
        "format": str(ModelFormat.ONNX),
        "limits": limits_to_json(LIMITS),
        "network": network,
        **changes,
    }


def test_a_start_message_confines_then_receives_the_model(
    pair: tuple[socket.socket, socket.socket], steps: list[str]
) -> None:
    service, sock = pair
    model = b"m" * LIMITS.max_model_bytes  # exactly the limit
    send_frame_header(service, _start(), len(model))
    started = startup.begin(sock)
    service.sendall(model)
    assert bytes(started.receiver.model()) == model
    assert steps == ["network", "rlimits", "no dumping", "no new privileges", "landlock"]
    assert started.info["network_namespace"] == "userns+netns"
    assert started.info["filesystem"] == "landlock-v3"
    assert started.fmt == ModelFormat.ONNX
    assert started.limits == LIMITS


def test_without_a_namespace_asked_for_none_is_entered(
    pair: tuple[socket.socket, socket.socket], steps: list[str]
) -> None:
    service, sock = pair
    send_frame_header(service, _start(network="seccomp"), 0)
    started = startup.begin(sock)
    assert "network" not in steps
    assert started.info["network_namespace"] is None
    assert "no dumping" in steps


def test_a_first_message_other_than_start_is_refused_before_any_step(
    pair: tuple[socket.socket, socket.socket], steps: list[str]
) -> None:
    service, sock = pair
    send_frame_header(service, _start(op="load"), 0)
    with pytest.raises(FrameError, match="expected a start message"):
        startup.begin(sock)
    assert steps == []


def test_a_model_over_the_limit_is_refused_before_a_byte_is_received(
    pair: tuple[socket.socket, socket.socket], steps: list[str]
) -> None:
    service, sock = pair
    send_frame_header(service, _start(), LIMITS.max_model_bytes + 1)
    with pytest.raises(FrameError) as info:
        startup.begin(sock)
    assert str(info.value) == f"a model of {LIMITS.max_model_bytes + 1} bytes is over the limit"
    assert "landlock" not in steps  # nor a receiving thread started


def test_threads_started_before_landlock_are_reported(
    pair: tuple[socket.socket, socket.socket],
    steps: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tasks: Callable[[str], list[str]] = lambda path: ["100", "101"]  # noqa: E731
    monkeypatch.setattr(startup, "os", SimpleNamespace(listdir=tasks))
    service, sock = pair
    send_frame_header(service, _start(), 0)
    started = startup.begin(sock)
    assert "landlock: 1 thread(s) started before it are not bound" in started.info["errors"]


def test_a_single_thread_is_not_reported(
    pair: tuple[socket.socket, socket.socket],
    steps: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tasks: Callable[[str], list[str]] = lambda path: ["100"]  # noqa: E731
    monkeypatch.setattr(startup, "os", SimpleNamespace(listdir=tasks))
    service, sock = pair
    send_frame_header(service, _start(), 0)
    assert startup.begin(sock).info["errors"] == []


def test_a_model_cut_short_is_a_frame_error(
    pair: tuple[socket.socket, socket.socket], steps: list[str]
) -> None:
    service, sock = pair
    send_frame_header(service, _start(), 10)
    started = startup.begin(sock)
    service.sendall(b"12345")
    service.shutdown(socket.SHUT_WR)
    with pytest.raises(PeerClosed):
        started.receiver.model()


def test_a_socket_error_while_receiving_is_a_frame_error() -> None:
    service, sock = socket.socketpair()
    service.close()
    sock.close()  # receiving from it fails with EBADF
    receiver = startup._Receiver(sock, 10)
    with pytest.raises(FrameError, match="receiving the model failed"):
        receiver.model()
