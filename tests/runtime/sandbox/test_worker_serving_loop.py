"""The worker's own side of the protocol, run in this process on a socket pair.

What leaves a worker after a failed run is a fixed text; a request that does
not fit the slot, or a payload over the memory limit, is refused; the model
is loaded only after a bare ``load`` naming the confinement as a list; and
the probe counts as denied only what the kernel denied. Nothing here installs
a filter, confines or probes this process: those steps are replaced.
"""

from __future__ import annotations

import errno
import mmap
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from cleanroom.errors import InferenceFailed, ModelRejected, ServiceUnavailable
from cleanroom.runtime import RuntimeLimits
from cleanroom.runtime.base import ModelSignature
from cleanroom.runtime.sandbox import seccomp
from cleanroom.runtime.sandbox import worker as worker_module
from cleanroom.runtime.sandbox.protocol import (
    MODEL_FAILED,
    FrameError,
    recv_header,
    recv_payload,
    send_frame,
    send_frame_header,
)
from cleanroom.runtime.sandbox.slot import write_tensors
from cleanroom.runtime.sandbox.startup import Started
from cleanroom.wire.formats import ModelFormat
from cleanroom.wire.tensors import decode_tensors, encode_tensors

SECRET = 123456789.0
X = {"x": np.array([SECRET], np.float32)}


class FakeRunner:
    signature = ModelSignature(inputs=(), outputs=())

    def __init__(self, run: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self._run = run

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return self._run(inputs)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    service, worker = socket.socketpair()
    with service, worker:
        service.settimeout(20)
        yield service, worker


def _worker(sock: socket.socket, runner: FakeRunner | None, **limits: Any) -> Any:
    worker = worker_module._Worker(sock, mmap.mmap(-1, 4096))
    worker.runner = runner
    worker.limits = replace(RuntimeLimits(), **limits)
    return worker


def _reply(service: socket.socket) -> tuple[dict[str, Any], bytes]:
    header, size = recv_header(service)
    return header, recv_payload(service, size, 1 << 20)


def _raise(exc: BaseException) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def run(inputs: dict[str, Any]) -> dict[str, Any]:
        raise exc

    return run


# 1. A failed run's text.


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        # The runtime's text may quote an input: never sent, whatever the error's type.
        (InferenceFailed(f"indices element out of data bounds, idx={SECRET}"), MODEL_FAILED),
        (ModelRejected(f"idx={SECRET}"), MODEL_FAILED),
        (ValueError(f"idx={SECRET}"), MODEL_FAILED),
        (MemoryError(), "out of memory"),
        # The worker's own fixed texts pass.
        (
            InferenceFailed("request does not fit the shared slot"),
            "request does not fit the shared slot",
        ),
    ],
    ids=["inference-failed", "model-rejected", "value-error", "memory", "fixed"],
)
def test_a_failed_run_sends_only_a_fixed_text(
    pair: tuple[socket.socket, socket.socket], raised: BaseException, message: str
) -> None:
    service, sock = pair
    body = encode_tensors(X)
    _worker(sock, FakeRunner(_raise(raised)))._run(
        {"op": "run", "area": "inline", "nbytes": len(body)}, body
    )
    reply, payload = _reply(service)
    assert reply == {"ok": False, "code": InferenceFailed.code, "message": message}
    assert payload == b""


def test_a_worker_without_a_model_says_so(pair: tuple[socket.socket, socket.socket]) -> None:
    service, sock = pair
    body = encode_tensors(X)
    _worker(sock, None)._run({"op": "run", "area": "inline", "nbytes": len(body)}, body)
    reply, _ = _reply(service)
    assert reply["message"] == "no model is loaded in this worker"


# 2. A request in the slot must lie within the slot.


@pytest.mark.parametrize("nbytes", [4097, 1 << 40, -1])
def test_a_request_past_the_slot_is_refused(
    pair: tuple[socket.socket, socket.socket], nbytes: int
) -> None:
    service, sock = pair
    ran: list[object] = []
    worker = _worker(sock, FakeRunner(lambda inputs: ran.append(inputs) or {"y": inputs["x"]}))
    assert write_tensors(worker.slot, X) is not None  # a readable request is in the slot
    worker._run({"op": "run", "area": "shm", "nbytes": nbytes}, b"")
    reply, _ = _reply(service)
    assert reply["ok"] is False
    assert reply["message"] == "request does not fit the shared slot"
    assert ran == []


def test_a_request_in_the_slot_is_answered_in_the_slot(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    service, sock = pair
    worker = _worker(sock, FakeRunner(lambda inputs: {"y": np.array(inputs["x"]) * 2}))
    written = write_tensors(worker.slot, X)
    worker._run({"op": "run", "area": "shm", "nbytes": written}, b"")
    reply, _ = _reply(service)
    assert reply["ok"] is True
    assert reply["area"] == "shm"
    out = decode_tensors(bytes(worker.slot[: reply["nbytes"]]))
    np.testing.assert_array_equal(out["y"], X["x"] * 2)


# 3. Asking to be recycled: after any run past the CPU share, only then.


@pytest.mark.parametrize(
    ("used", "fails", "recycle"),
    [
        (81.0, False, True),
        (79.0, False, False),
        (79.0, True, False),
        # A failed run is an answer too: a worker past its share after it must
        # still be replaced while idle, or the next request may die of SIGXCPU.
        (81.0, True, True),
    ],
    ids=["past the share", "within the share", "within the share, failed", "past, failed"],
)
def test_a_worker_past_its_cpu_share_asks_to_be_recycled(
    pair: tuple[socket.socket, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
    used: float,
    fails: bool,
    recycle: bool,
) -> None:
    service, sock = pair
    monkeypatch.setattr(worker_module, "_cpu_used", lambda: used)
    run = _raise(ValueError("no")) if fails else (lambda inputs: {"y": inputs["x"]})
    worker = _worker(
        sock,
        FakeRunner(run),
        cpu_seconds=100,
        extra={"sandbox.recycle_cpu_fraction": "0.8"},
    )
    body = encode_tensors(X)
    worker._run({"op": "run", "area": "inline", "nbytes": len(body)}, body)
    reply, _ = _reply(service)
    assert reply["ok"] is not fails
    assert bool(reply.get("recycle")) is recycle


# 4. Serving: a payload is bounded by the worker's memory limit.


def test_a_request_payload_over_the_memory_limit_is_a_frame_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    service, sock = pair
    worker = _worker(sock, FakeRunner(lambda inputs: inputs), memory_bytes=1000)
    send_frame_header(service, {"op": "run", "area": "inline", "nbytes": 1001}, 1001)
    service.shutdown(socket.SHUT_WR)  # the payload announced never comes
    with pytest.raises(FrameError) as info:
        worker.serve()
    assert type(info.value) is FrameError
    assert str(info.value) == "a frame payload is over the limit of 1000 bytes"


# 5. The load message.


class _Receiver:
    def model(self) -> bytearray:
        return bytearray(b"the model")


@pytest.fixture
def start(
    monkeypatch: pytest.MonkeyPatch, pair: tuple[socket.socket, socket.socket]
) -> Callable[..., tuple[dict[str, Any] | None, list[object], BaseException | None]]:
    """Run the worker's start step on *load*: its reply (or None), the loads, the error."""

    def no_filter() -> None:
        pass

    monkeypatch.setattr(seccomp, "install_filter", no_filter)
    monkeypatch.setattr(worker_module, "_import_runtime", lambda fmt: None)
    # Never into this process: the filter would stay on pytest itself.
    assert worker_module.seccomp.install_filter is no_filter
    service, sock = pair

    def run(
        load: dict[str, Any],
        payload: bytes = b"",
        load_model: Callable[..., Any] | None = None,
    ) -> tuple[dict[str, Any] | None, list[object], BaseException | None]:
        loaded: list[object] = []

        def default_load(*args: object) -> FakeRunner:
            loaded.append(args)
            return FakeRunner(lambda inputs: inputs)

        monkeypatch.setattr("cleanroom.runtime.loading.load_model", load_model or default_load)
        info: dict[str, Any] = {
            "seccomp": False,
            "network_namespace": "userns+netns",
            "filesystem": "landlock-v3",
            "errors": [],
        }
        started = Started(ModelFormat.ONNX, RuntimeLimits(), info, _Receiver())  # type: ignore[arg-type]
        send_frame(service, load, payload)
        error: BaseException | None = None
        try:
            worker_module._Worker(sock, mmap.mmap(-1, 4096)).start(started)
        except FrameError as exc:
            error = exc
        service.setblocking(False)
        try:
            reply: dict[str, Any] | None = recv_header(service)[0]
        except BlockingIOError:
            reply = None
        service.setblocking(True)
        return reply, loaded, error

    return run


def test_a_load_message_with_a_payload_loads_nothing(
    start: Callable[..., tuple[dict[str, Any] | None, list[object], BaseException | None]],
) -> None:
    reply, loaded, error = start({"op": "load", "require": ["seccomp"]}, b"more model")
    assert str(error) == "the model was not confirmed"
    assert reply is None
    assert loaded == []


def test_a_message_other_than_load_loads_nothing(
    start: Callable[..., tuple[dict[str, Any] | None, list[object], BaseException | None]],
) -> None:
    reply, loaded, error = start({"op": "run", "require": ["seccomp"]})
    assert str(error) == "the model was not confirmed"
    assert reply is None
    assert loaded == []


@pytest.mark.parametrize("require", ["seccomp", {"seccomp": True}, None])
def test_a_requirement_that_is_not_a_list_loads_nothing(
    start: Callable[..., tuple[dict[str, Any] | None, list[object], BaseException | None]],
    require: object,
) -> None:
    reply, loaded, error = start({"op": "load", "require": require})
    assert str(error) == "malformed load message"
    assert reply is None
    assert loaded == []


def test_a_load_with_the_confinement_in_force_loads_the_model(
    start: Callable[..., tuple[dict[str, Any] | None, list[object], BaseException | None]],
) -> None:
    reply, loaded, error = start({"op": "load", "require": ["seccomp", "filesystem"]})
    assert error is None
    assert reply is not None
    assert reply["ok"] is True
    assert reply["sandbox"]["seccomp"] is True  # the (replaced) filter went on
    assert len(loaded) == 1


def test_a_runtime_that_cannot_be_imported_is_reported_and_nothing_is_loaded(
    start: Callable[..., tuple[dict[str, Any] | None, list[object], BaseException | None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_runtime(fmt: object) -> None:
        raise ImportError("onnxruntime")

    monkeypatch.setattr(worker_module, "_import_runtime", no_runtime)
    reply, loaded, error = start({"op": "load", "require": ["seccomp"]})
    assert str(error) == "the runtime could not be imported"
    assert reply is not None
    assert reply["ok"] is False
    assert reply["code"] == ServiceUnavailable.code
    assert reply["message"].startswith("the onnx runtime cannot start in the worker")
    assert loaded == []


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (ModelRejected("x" * 2000), "x" * 500),
        (RuntimeError("bad graph"), "the model cannot be loaded: bad graph"),
    ],
    ids=["rejected", "runtime error"],
)
def test_a_model_that_does_not_load_is_refused_with_a_bounded_message(
    start: Callable[..., tuple[dict[str, Any] | None, list[object], BaseException | None]],
    raised: BaseException,
    message: str,
) -> None:
    def load_model(*args: object) -> None:
        raise raised

    reply, _, error = start({"op": "load", "require": ["seccomp"]}, load_model=load_model)
    assert error is None
    assert reply == {"ok": False, "code": ModelRejected.code, "message": message}


# 6. The probe's verdicts.


def _failing(err: int) -> Callable[[], None]:
    def action() -> None:
        raise OSError(err, "refused")

    return action


@pytest.mark.parametrize(
    ("action", "verdict"),
    [
        (_failing(errno.EPERM), "denied (refused)"),
        (_failing(errno.EACCES), "denied (refused)"),
        (_failing(errno.EROFS), "denied (refused)"),
        # Failing for another reason shows nothing about the sandbox.
        (_failing(errno.ENOENT), "inconclusive (refused)"),
        (_failing(errno.EAFNOSUPPORT), "inconclusive (refused)"),
        (_failing(errno.EMFILE), "inconclusive (refused)"),
        (lambda: None, "allowed"),
    ],
    ids=["EPERM", "EACCES", "EROFS", "ENOENT", "EAFNOSUPPORT", "EMFILE", "allowed"],
)
def test_only_a_refusal_counts_as_denied(action: Callable[[], None], verdict: str) -> None:
    assert worker_module._attempt(action) == verdict
