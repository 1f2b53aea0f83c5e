"""The service's side of a request, against a worker that lies in its answer.

A worker runs an untrusted model, so every field of its answer is checked
before anything is copied out of the slot or decoded: the answer's size and
place, its ``ok`` flag, the text of a failure, the string elements it holds,
and the slot is zeroed whatever happens, before the worker is stopped. These
tests put the service's :class:`WorkerProcess` on one end of a socket pair and
play the worker on the other, in a thread of this process: no worker is
spawned.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from cleanroom.errors import InferenceFailed, InvalidTensor, ModelRejected, ServiceUnavailable
from cleanroom.runtime import RuntimeLimits
from cleanroom.runtime.base import ModelSignature, TensorSpec
from cleanroom.runtime.sandbox import process
from cleanroom.runtime.sandbox.answers import AnswerBudget
from cleanroom.runtime.sandbox.process import WorkerProcess, signature_from_json
from cleanroom.runtime.sandbox.protocol import MODEL_FAILED, recv_header, recv_payload, send_frame
from cleanroom.runtime.sandbox.slot import write_tensors
from cleanroom.wire.formats import ModelFormat
from cleanroom.wire.tensors import decode_tensors, encode_tensors

SLOT_BYTES = 1 << 16
REQUIRE = ("seccomp", "network_namespace", "user_namespace", "filesystem")
SECRET = 123456789.0

# The worker's part: given its socket, the slot and the request's inputs, answer.
Answer = Callable[[socket.socket, mmap.mmap, dict[str, Any]], None]


class FakeProcess:
    """Stands in for the worker's Popen: alive until the test says how it ended."""

    pid = 424242

    def __init__(self) -> None:
        self.returncode: int | None = None
        self.killed = False

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.killed = True
        if self.returncode is None:
            self.returncode = -signal.SIGKILL

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            raise subprocess.TimeoutExpired("worker", timeout or 0.0)
        return self.returncode


class Peer:
    """A WorkerProcess wired to a scripted worker; the slot is watched through a
    second mapping of its memfd, which outlives the service's own mapping."""

    def __init__(self, worker: WorkerProcess, outputs: tuple[TensorSpec, ...]) -> None:
        self.worker = worker
        self.proc = FakeProcess()
        fd = process.sealed_slot(worker.slot_bytes)
        try:
            worker._slot = mmap.mmap(fd, worker.slot_bytes)
            self.observer = mmap.mmap(fd, worker.slot_bytes)
            self._worker_slot = mmap.mmap(fd, worker.slot_bytes)
        finally:
            os.close(fd)
        ours, theirs = socket.socketpair()
        worker._sock = ours
        worker._proc = self.proc  # type: ignore[assignment]
        worker.model_signature = ModelSignature(
            inputs=(TensorSpec("x", "float32", (None,)),), outputs=outputs
        )
        self.sock = theirs
        self.thread: threading.Thread | None = None
        self.requests: list[dict[str, Any]] = []

    def answer_next(self, answer: Answer) -> None:
        """Serve the next request with *answer*, on a thread of its own."""

        def serve() -> None:
            # The service may stop listening half-way (that is what is tested).
            with contextlib.suppress(OSError):
                header, size = recv_header(self.sock)
                self.requests.append(header)
                payload = recv_payload(self.sock, size, 1 << 30)
                if header["area"] == "shm":
                    inputs = {
                        k: v.copy()
                        for k, v in decode_tensors(self._worker_slot[: header["nbytes"]]).items()
                    }
                else:
                    inputs = decode_tensors(payload)
                answer(self.sock, self._worker_slot, inputs)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.worker.run({k: np.asarray(v) for k, v in inputs.items()}, timeout_s=20.0)
        finally:
            if self.thread is not None:
                self.thread.join(timeout=20)

    def slot_is_empty(self) -> bool:
        return self.observer[:] == bytes(len(self.observer))

    def close(self) -> None:
        self.worker.kill()
        self.sock.close()
        self.observer.close()
        self._worker_slot.close()


@pytest.fixture
def peer(limits: RuntimeLimits) -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(
        outputs: tuple[TensorSpec, ...] = (TensorSpec("y", "float32", (None,)),),
        answers: AnswerBudget | None = None,
        **extra: str,
    ) -> Peer:
        worker_limits = replace(limits, extra={"sandbox.slot_bytes": str(SLOT_BYTES), **extra})
        worker = WorkerProcess(
            ModelFormat.ONNX, worker_limits, network="seccomp", require=REQUIRE, answers=answers
        )
        made.append(Peer(worker, outputs))
        return made[-1]

    yield make
    for p in made:
        p.close()


def in_slot(outputs: dict[str, Any], **reply: object) -> Answer:
    """Answer with *outputs* written into the slot, the reply header amended by *reply*."""

    def answer(sock: socket.socket, slot: mmap.mmap, inputs: dict[str, Any]) -> None:
        written = write_tensors(slot, outputs)
        assert written is not None
        send_frame(sock, {"ok": True, "area": "shm", "nbytes": written, **reply})

    return answer


def inline(outputs: dict[str, Any], **reply: object) -> Answer:
    """Answer with *outputs* on the socket, the reply header amended by *reply*."""

    def answer(sock: socket.socket, slot: mmap.mmap, inputs: dict[str, Any]) -> None:
        body = encode_tensors(outputs)
        send_frame(sock, {"ok": True, "area": "inline", "nbytes": len(body), **reply}, body)

    return answer


def header_only(**reply: object) -> Answer:
    def answer(sock: socket.socket, slot: mmap.mmap, inputs: dict[str, Any]) -> None:
        send_frame(sock, reply)

    return answer


Y = {"y": np.array([1.0, 2.0], np.float32)}
X = {"x": np.array([SECRET, SECRET], np.float32)}


def test_a_well_formed_answer_passes_and_the_slot_is_left_empty(
    peer: Callable[..., Peer],
) -> None:
    p = peer()
    p.answer_next(in_slot(Y))
    np.testing.assert_array_equal(p.run(X)["y"], Y["y"])
    assert p.worker.alive
    assert p.slot_is_empty()


# 1. Answers whose header lies about the answer itself. Each stops the worker.

MALFORMED_REPLIES: list[tuple[str, Answer, str]] = [
    (
        # More than the slot holds: nothing past the slot is read, and the
        # claimed size is not what the budget is charged with.
        "shm nbytes past the slot",
        in_slot(Y, nbytes=SLOT_BYTES + 1),
        "the worker sent a malformed reply",
    ),
    (
        "shm nbytes far past the slot",
        in_slot(Y, nbytes=1 << 40),
        "the worker sent a malformed reply",
    ),
    ("shm nbytes a float", in_slot(Y, nbytes=5.5), "the worker sent a malformed reply"),
    ("shm nbytes a boolean", in_slot(Y, nbytes=True), "the worker sent a malformed reply"),
    ("shm nbytes a string", in_slot(Y, nbytes="64"), "the worker sent a malformed reply"),
    (
        "inline nbytes other than the body's length",
        inline(Y, nbytes=len(encode_tensors(Y)) + 1),
        "the worker sent a malformed reply",
    ),
    (
        "inline nbytes short of the body's length",
        inline(Y, nbytes=len(encode_tensors(Y)) - 1),
        "the worker sent a malformed reply",
    ),
]


@pytest.mark.parametrize(
    ("answer", "message"),
    [pytest.param(answer, message, id=name) for name, answer, message in MALFORMED_REPLIES],
)
def test_an_answer_that_misstates_its_size_stops_the_worker(
    peer: Callable[..., Peer], answer: Answer, message: str
) -> None:
    p = peer(answers=AnswerBudget(1 << 20))
    p.answer_next(answer)
    with pytest.raises(InferenceFailed) as info:
        p.run(X)
    assert info.value.message == message
    assert info.value.__cause__ is None
    assert not p.worker.alive
    assert p.proc.killed
    assert p.slot_is_empty()


# 2. A failed run: only the worker's fixed texts pass, and only when ok is exactly true
# does the service read outputs at all.

FAILED_RUNS: list[tuple[str, Answer, str]] = [
    # A truthy "ok" that is not true: outputs present, but the run did not succeed.
    ("ok a string", in_slot(Y, ok="yes"), MODEL_FAILED),
    ("ok a number", in_slot(Y, ok=1), MODEL_FAILED),
    ("ok missing", header_only(area="shm", nbytes=0), MODEL_FAILED),
    # A message that is not a string: never passed on, never an error of its own.
    (
        "message a list",
        header_only(ok=False, message=["out of memory"]),
        MODEL_FAILED,
    ),
    ("message an object", header_only(ok=False, message={"a": 1}), MODEL_FAILED),
    ("message quoting an input", header_only(ok=False, message=f"idx={SECRET}"), MODEL_FAILED),
    ("a fixed text", header_only(ok=False, message="out of memory"), "out of memory"),
]


@pytest.mark.parametrize(
    ("answer", "message"),
    [pytest.param(answer, message, id=name) for name, answer, message in FAILED_RUNS],
)
def test_a_failed_run_says_only_a_fixed_text(
    peer: Callable[..., Peer], answer: Answer, message: str
) -> None:
    p = peer()
    p.answer_next(answer)
    with pytest.raises(InferenceFailed) as info:
        p.run(X)
    assert info.value.message == message
    assert p.slot_is_empty()


# 3. The slot is zeroed on every path, before the worker is stopped.


def test_outputs_larger_than_the_inputs_are_zeroed_too(peer: Callable[..., Peer]) -> None:
    p = peer()
    big = {"y": np.full(4000, SECRET, np.float32)}  # far more of the slot than the inputs
    p.answer_next(in_slot(big))
    np.testing.assert_array_equal(p.run({"x": np.array([1.0], np.float32)})["y"], big["y"])
    assert p.worker.alive
    assert p.slot_is_empty()


def test_undeclared_outputs_are_zeroed_before_the_worker_is_stopped(
    peer: Callable[..., Peer],
) -> None:
    p = peer()
    p.answer_next(in_slot({"y": Y["y"], "extra": np.full(64, SECRET, np.float32)}))
    with pytest.raises(InferenceFailed, match="does not declare"):
        p.run(X)
    assert not p.worker.alive
    assert p.slot_is_empty()


def test_an_answer_over_the_budget_is_zeroed_before_the_worker_is_stopped(
    peer: Callable[..., Peer],
) -> None:
    budget = AnswerBudget(1000)
    p = peer(answers=budget)
    p.answer_next(in_slot({"y": np.full(1000, SECRET, np.float32)}))
    with pytest.raises(ServiceUnavailable, match="memory budget"):
        p.run(X)
    assert not p.worker.alive
    assert p.slot_is_empty()
    assert budget.held == 0


# 4. The shared answer budget counts answers on the socket as well as in the slot.


def test_an_inline_answer_past_the_budget_is_refused_before_it_is_read(
    peer: Callable[..., Peer],
) -> None:
    budget = AnswerBudget(1000)
    p = peer(answers=budget)
    p.answer_next(inline({"y": np.zeros(1000, np.float32)}))
    with pytest.raises(ServiceUnavailable, match="memory budget"):
        p.run(X)
    assert not p.worker.alive
    assert budget.held == 0


def test_an_inline_answer_within_the_budget_passes(peer: Callable[..., Peer]) -> None:
    budget = AnswerBudget(1000)
    p = peer(answers=budget)
    p.answer_next(inline(Y))
    np.testing.assert_array_equal(p.run(X)["y"], Y["y"])
    assert budget.held == 0


# 5. String elements: every string output counts, numbers do not, the limit is inclusive.

STRINGS = (TensorSpec("s", "str", (None,)), TensorSpec("t", "str", (None,)))
NUMBERS = (TensorSpec("n", "float32", (None,)),)


def _strings(count: int) -> Any:
    return np.array(["w"] * count, dtype=object)


@pytest.mark.parametrize("place", [in_slot, inline])
def test_string_elements_are_counted_over_all_outputs(
    peer: Callable[..., Peer], place: Callable[..., Answer]
) -> None:
    p = peer(outputs=STRINGS, **{"sandbox.max_output_strings": "10"})
    p.answer_next(place({"s": _strings(6), "t": _strings(6)}))  # 6 + 6 > 10
    with pytest.raises(InferenceFailed) as info:
        p.run(X)
    assert info.value.message == "the worker sent more than 10 string elements"
    assert not p.worker.alive


def test_exactly_the_string_limit_passes(peer: Callable[..., Peer]) -> None:
    p = peer(outputs=STRINGS, **{"sandbox.max_output_strings": "10"})
    p.answer_next(in_slot({"s": _strings(4), "t": _strings(6)}))
    out = p.run(X)
    assert len(out["s"]) + len(out["t"]) == 10
    assert p.worker.alive


def test_numeric_elements_do_not_count_as_strings(peer: Callable[..., Peer]) -> None:
    p = peer(outputs=STRINGS[:1] + NUMBERS, **{"sandbox.max_output_strings": "10"})
    p.answer_next(in_slot({"s": _strings(1), "n": np.zeros(1000, np.float32)}))
    assert p.run(X)["n"].shape == (1000,)
    assert p.worker.alive


# 6. A worker that dies mid-request: only the usual signals are named.


@pytest.mark.parametrize(
    ("returncode", "reason"),
    [
        (-signal.SIGSEGV, "the model's worker was killed by SIGSEGV"),
        (-signal.SIGXCPU, "the model's worker exceeded its CPU time limit (SIGXCPU)"),
        (-signal.SIGSYS, "the model's worker made a forbidden system call (SIGSYS)"),
        # Signals and exit statuses a worker may choose itself spell out nothing.
        (-signal.SIGUSR1, "the model's worker was killed by a signal"),
        (-signal.SIGTERM, "the model's worker was killed by a signal"),
        (-63, "the model's worker was killed by a signal"),
        (42, "the model's worker exited"),
        (0, "the model's worker exited"),
    ],
)
def test_a_worker_dying_mid_request_is_named_without_what_it_chose(
    peer: Callable[..., Peer], returncode: int, reason: str
) -> None:
    p = peer()

    def die(sock: socket.socket, slot: mmap.mmap, inputs: dict[str, Any]) -> None:
        p.proc.returncode = returncode
        sock.close()

    p.answer_next(die)
    with pytest.raises(InferenceFailed) as info:
        p.run(X)
    assert info.value.message == reason
    assert not p.worker.alive
    assert p.slot_is_empty()


def test_a_worker_known_dead_is_not_sent_a_request(peer: Callable[..., Peer]) -> None:
    p = peer()
    p.proc.returncode = -signal.SIGKILL
    with pytest.raises(InferenceFailed, match="is not running"):
        p.run(X)
    assert p.requests == []


# 7. The answer to "load": its error code chooses the error, its text is bounded,
# and a worker whose answer cannot be believed is stopped.


def _answer_load(p: Peer, reply: dict[str, Any], payload: bytes = b"") -> None:
    def serve() -> None:
        with contextlib.suppress(OSError):
            header, _ = recv_header(p.sock)
            p.requests.append(header)
            send_frame(p.sock, reply, payload)

    p.thread = threading.Thread(target=serve, daemon=True)
    p.thread.start()


def _load(p: Peer) -> None:
    try:
        p.worker.load()
    finally:
        assert p.thread is not None
        p.thread.join(timeout=20)


GOOD_LOAD = {
    "ok": True,
    "sandbox": {"seccomp": True, "errors": []},
    "signature": {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [None]}],
    },
}


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (ModelRejected.code, ModelRejected),
        (ServiceUnavailable.code, ServiceUnavailable),
        (InvalidTensor.code, InvalidTensor),
        (InferenceFailed.code, InferenceFailed),
        ("something-else", InferenceFailed),
    ],
)
def test_a_refused_load_raises_by_its_code_and_stops_the_worker(
    peer: Callable[..., Peer], code: str, error: type[Exception]
) -> None:
    p = peer()
    _answer_load(p, {"ok": False, "code": code, "message": "m" * 2000})
    with pytest.raises(error) as info:
        _load(p)
    assert type(info.value) is error
    assert str(getattr(info.value, "message", "")) == "m" * 500
    assert not p.worker.alive
    assert p.proc.killed


@pytest.mark.parametrize(
    ("reply", "payload"),
    [
        pytest.param({**GOOD_LOAD, "sandbox": None}, b"", id="sandbox missing"),
        pytest.param({**GOOD_LOAD, "sandbox": [["seccomp", True]]}, b"", id="sandbox a list"),
        pytest.param({**GOOD_LOAD, "signature": None}, b"", id="signature missing"),
        pytest.param(
            {**GOOD_LOAD, "signature": {"inputs": [], "outputs": [{"name": "y"}]}},
            b"",
            id="signature malformed",
        ),
        pytest.param(GOOD_LOAD, b"a payload", id="a payload after the answer"),
    ],
)
def test_a_load_answer_that_cannot_be_believed_refuses_the_model(
    peer: Callable[..., Peer], reply: dict[str, Any], payload: bytes
) -> None:
    p = peer()
    _answer_load(p, reply, payload)
    with pytest.raises(ModelRejected):
        _load(p)
    assert not p.worker.alive
    assert p.proc.killed


def test_a_believable_load_answer_is_kept(peer: Callable[..., Peer]) -> None:
    p = peer()
    _answer_load(p, GOOD_LOAD)
    _load(p)
    # The worker is told what confinement it must have before it parses the model.
    assert p.requests == [{"op": "load", "require": list(REQUIRE)}]
    assert p.worker.alive
    assert p.worker.sandbox == GOOD_LOAD["sandbox"]
    assert [s.name for s in p.worker.model_signature.outputs] == ["y"]


# 8. The answer to "probe".


def _answer_probe(p: Peer, reply: dict[str, Any], payload: bytes = b"") -> dict[str, Any]:
    def serve() -> None:
        with contextlib.suppress(OSError):
            header, _ = recv_header(p.sock)
            assert header["op"] == "probe"
            send_frame(p.sock, reply, payload)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        return p.worker.probe(timeout_s=20.0)
    finally:
        thread.join(timeout=20)


@pytest.mark.parametrize(
    "probe",
    [None, [["socket_inet", "denied"]], "denied", 1],
    ids=["missing", "pairs", "text", "number"],
)
def test_a_malformed_probe_answer_is_a_failed_probe(
    peer: Callable[..., Peer], probe: object
) -> None:
    assert _answer_probe(peer(), {"ok": True, "probe": probe}) == {
        "failed": "malformed probe reply"
    }


def test_a_probe_answer_with_a_payload_stops_the_worker(peer: Callable[..., Peer]) -> None:
    p = peer()
    found = _answer_probe(p, {"ok": True, "probe": {"socket_inet": "denied"}}, b"extra")
    assert list(found) == ["failed"]
    assert not p.worker.alive


# 9. The signature a worker reports.

IN = {"name": "x", "dtype": "float32", "shape": [None, 3]}


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(None, id="not an object"),
        pytest.param({"inputs": {}, "outputs": []}, id="inputs not a list"),
        pytest.param({"inputs": [IN], "outputs": None}, id="outputs missing"),
        pytest.param({"inputs": ["x"], "outputs": []}, id="spec not an object"),
        pytest.param({"inputs": [{**IN, "name": 1}], "outputs": []}, id="name not a string"),
        pytest.param({"inputs": [{**IN, "dtype": None}], "outputs": []}, id="dtype missing"),
        pytest.param({"inputs": [{**IN, "shape": "3"}], "outputs": []}, id="shape a string"),
        pytest.param({"inputs": [{**IN, "shape": [True]}], "outputs": []}, id="dim a boolean"),
        pytest.param({"inputs": [{**IN, "shape": [-1]}], "outputs": []}, id="dim negative"),
        pytest.param({"inputs": [{**IN, "shape": [2.0]}], "outputs": []}, id="dim a float"),
        pytest.param({"inputs": [{**IN, "shape": ["2"]}], "outputs": []}, id="dim a string"),
        pytest.param({"inputs": [IN, IN], "outputs": []}, id="duplicate names"),
        pytest.param({"inputs": [], "outputs": [IN, {**IN, "dtype": "int64"}]}, id="dup outputs"),
    ],
)
def test_a_malformed_signature_is_refused(doc: object) -> None:
    with pytest.raises(ValueError, match="malformed signature"):
        signature_from_json(doc)


def test_a_well_formed_signature_is_read() -> None:
    doc = {"inputs": [IN], "outputs": [{"name": "y", "dtype": "str", "shape": [0, None]}]}
    signature = signature_from_json(doc)
    assert signature.inputs == (TensorSpec("x", "float32", (None, 3)),)
    assert signature.outputs == (TensorSpec("y", "str", (0, None)),)
