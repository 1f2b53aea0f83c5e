"""The supervisor's handle on one worker process.

Tensors cross through a shared-memory slot (an anonymous ``memfd``, mapped
by both sides, never a named file) with the socket as doorbell; requests or
replies larger than the slot travel inline on the socket. The model itself
always travels on the socket, possibly piece by piece as it arrives
(:meth:`WorkerProcess.begin`, :meth:`~WorkerProcess.send`), and the worker
loads it only when told to (:meth:`~WorkerProcess.load`). See ``docs/sandbox.md``.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import math
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cleanroom.errors import InferenceFailed, InvalidTensor, ModelRejected, ServiceUnavailable
from cleanroom.runtime.base import ModelSignature, RuntimeLimits, Tensors, TensorSpec
from cleanroom.runtime.sandbox.answers import AnswerBudget
from cleanroom.runtime.sandbox.protocol import (
    MODEL_FAILED,
    RUN_FAILURES,
    FrameError,
    PeerClosed,
    recv_header,
    recv_payload,
    send_frame,
    send_frame_header,
)
from cleanroom.runtime.sandbox.slot import write_tensors
from cleanroom.runtime.tensors import shape_matches
from cleanroom.wire.formats import ModelFormat
from cleanroom.wire.tensors import MAGIC, STRING_DTYPE, decode_tensors, dtype_name, encode_tensors

__all__ = ["WorkerProcess", "limits_to_json", "reported_run_ns", "signature_from_json"]

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
DEFAULT_SLOT_BYTES = 16 * 1024 * 1024
DEFAULT_LOAD_TIMEOUT_S = 120.0
_T = TypeVar("_T")
_MODEL_PIECE = 4 * 1024 * 1024
DEFAULT_MAX_OUTPUT_BYTES = 1024**3
# Decoding a string element costs the service far more than its 4-byte length
# prefix (a Python str and a slot in an object array): a worker's answer may
# hold at most this many, and at most one per 16 bytes of max_output_bytes.
DEFAULT_MAX_OUTPUT_STRINGS = 1 << 20
# The slot's size is fixed: neither side may shrink it (the other side would
# die of SIGBUS touching a page past the end), grow it, or change the seals.
_SLOT_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
_U32 = struct.Struct(">I")
_MAX_RANK = 32  # as decode_tensors
_MAX_TENSOR_HEADER = 1024 * 1024  # as decode_tensors, which refuses a longer one


# Runs the worker without executing cleanroom/__init__.py, which imports the
# SDK (client, attestation, HTTP): the worker must import only the runtime,
# wire and errors layers (DESIGN.md, "Layers"). Nor does it execute the
# __init__ of cleanroom.runtime and of its sandbox package, which import the
# runtimes and the supervisor: the worker's first steps (startup.py) import
# only small modules, so it starts receiving the model sooner. find_spec
# locates the package without importing it; bare package modules stand in.
_BOOTSTRAP = """
import importlib.util, os, sys, types
spec = importlib.util.find_spec("cleanroom")
root = list(spec.submodule_search_locations)
for name, path in (("cleanroom", root), ("cleanroom.runtime", [os.path.join(root[0], "runtime")]),
                   ("cleanroom.runtime.sandbox", [os.path.join(root[0], "runtime", "sandbox")])):
    package = types.ModuleType(name)
    package.__path__ = path
    sys.modules[name] = package
sys.modules["cleanroom"].__spec__ = spec
from cleanroom.runtime.sandbox.startup import main
sys.exit(main(sys.argv))
"""


def limits_to_json(limits: RuntimeLimits) -> dict[str, Any]:
    return {
        "max_model_bytes": limits.max_model_bytes,
        "request_timeout_s": limits.request_timeout_s,
        "memory_bytes": limits.memory_bytes,
        "cpu_seconds": limits.cpu_seconds,
        "open_files": limits.open_files,
        "workers": limits.workers,
        "intra_op_threads": limits.intra_op_threads,
        "extra": dict(limits.extra),
    }


def _worker_environment() -> dict[str, str]:
    # A fresh environment: nothing of the service's (tokens, keys, proxies)
    # reaches the worker, and no runtime reads configuration from it.
    return {
        "PYTHONPATH": _PACKAGE_ROOT,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "LANG": "C.UTF-8",
        # numpy's BLAS would otherwise start threads at import, before the
        # filesystem restriction that binds only threads started after it.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


def sealed_slot(size: int) -> int:
    """A new anonymous memfd of *size* bytes whose size no process can change.

    Sealed before any worker holds it: a worker that could ``ftruncate`` it
    smaller would kill the service with SIGBUS on its next access to the slot.
    """
    fd = os.memfd_create("cleanroom-slot", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, size)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SLOT_SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _zero(slot: mmap.mmap, nbytes: int) -> None:
    if nbytes > 0:
        view = (ctypes.c_char * nbytes).from_buffer(slot)
        ctypes.memset(view, 0, nbytes)
        del view


# Signals named in a run-time error: the ones a limit, the filter, the service
# or a crash deliver. A worker that chose its own signal or exit status could
# otherwise spell out a byte of its inputs in the message.
_NAMED_SIGNALS = frozenset(
    {
        signal.SIGKILL,
        signal.SIGXCPU,
        signal.SIGSYS,
        signal.SIGSEGV,
        signal.SIGBUS,
        signal.SIGABRT,
        signal.SIGILL,
        signal.SIGFPE,
    }
)


def _exit_reason(returncode: int | None, *, detailed: bool = True) -> str:
    """Why a worker ended; with *detailed* false, nothing a worker could choose freely."""
    if returncode is None:
        return "stopped responding"
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return "exceeded its CPU time limit (SIGXCPU)"
        if sig == signal.SIGSYS:
            return "made a forbidden system call (SIGSYS)"
        if sig in signal.Signals._value2member_map_ and (detailed or sig in _NAMED_SIGNALS):
            return f"was killed by {signal.Signals(sig).name}"
        return f"was killed by signal {sig}" if detailed else "was killed by a signal"
    return f"exited with status {returncode}" if detailed else "exited"


def _error_from_reply(reply: dict[str, Any]) -> Exception:
    code = str(reply.get("code", ""))
    message = str(reply.get("message", "the worker refused"))[:500]
    if code == ModelRejected.code:
        return ModelRejected(message)
    if code == InvalidTensor.code:
        return InvalidTensor(message)
    if code == ServiceUnavailable.code:
        return ServiceUnavailable(message)
    return InferenceFailed(message)


def _run_error(reply: Mapping[str, Any]) -> InferenceFailed:
    """The error for a run a worker reports as failed: only messages the worker's own
    code generates pass, never a runtime's (or a compromised worker's) text."""
    message = reply.get("message")
    return InferenceFailed(
        message if isinstance(message, str) and message in RUN_FAILURES else MODEL_FAILED
    )


def signature_from_json(doc: object) -> ModelSignature:
    """A worker's reported signature; ValueError if it is malformed."""

    def specs(items: object) -> tuple[TensorSpec, ...]:
        if not isinstance(items, list):
            raise ValueError("malformed signature")
        out: list[TensorSpec] = []
        for item in items:
            if not isinstance(item, dict):
                raise ValueError("malformed signature")
            name, dtype, shape = item.get("name"), item.get("dtype"), item.get("shape")
            if not isinstance(name, str) or not isinstance(dtype, str):
                raise ValueError("malformed signature")
            if not isinstance(shape, list) or not all(
                d is None or (type(d) is int and d >= 0) for d in shape
            ):
                raise ValueError("malformed signature")
            out.append(TensorSpec(name=name, dtype=dtype, shape=tuple(shape)))
        if len({spec.name for spec in out}) != len(out):
            raise ValueError("malformed signature")
        return tuple(out)

    if not isinstance(doc, dict):
        raise ValueError("malformed signature")
    return ModelSignature(inputs=specs(doc.get("inputs")), outputs=specs(doc.get("outputs")))


def _string_elements(data: memoryview, limit: int) -> int:
    """How many string elements a tensor body declares, counted up to just over *limit*.

    Read from its header before anything is decoded. A header that cannot be
    read counts 0 here: :func:`decode_tensors` then refuses it.
    """
    start = len(MAGIC) + _U32.size
    if len(data) < start or bytes(data[: len(MAGIC)]) != MAGIC:
        return 0
    (header_len,) = _U32.unpack_from(data, len(MAGIC))
    if header_len > _MAX_TENSOR_HEADER or start + header_len > len(data):
        return 0
    try:
        header = json.loads(bytes(data[start : start + header_len]))
    except (ValueError, RecursionError):
        return 0
    entries = header.get("tensors") if isinstance(header, dict) else None
    if not isinstance(entries, list):
        return 0
    total = 0
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("dtype") != STRING_DTYPE:
            continue
        shape = entry.get("shape")
        if not isinstance(shape, list) or len(shape) > _MAX_RANK:
            continue
        if not all(type(d) is int and d >= 0 for d in shape):
            continue
        # Capped factors: an exact product of huge sizes is never needed.
        total += math.prod(min(d, limit + 1) for d in shape)
        if total > limit:
            return total
    return total


def _check_declared(outputs: Tensors, declared: Sequence[TensorSpec]) -> None:
    """Refuse outputs other than the model's declared ones, or of another dtype or shape.

    Egress shaping applies to the declared names: an output it does not know
    must never reach the caller. Messages name nothing the worker chose.
    """
    specs = {spec.name: spec for spec in declared}
    if any(name not in specs for name in outputs):
        raise InferenceFailed("the worker sent outputs the model does not declare")
    if len(outputs) != len(specs):
        raise InferenceFailed("the worker left out outputs the model declares")
    for name, array in outputs.items():
        want = specs[name].dtype
        if want and dtype_name(array) != want:
            raise InferenceFailed("the worker sent an output of another dtype than declared")
        # A model declaring y [1, 1] must not answer megabytes under that name.
        if not shape_matches(specs[name], tuple(int(d) for d in array.shape)):
            raise InferenceFailed("the worker sent an output of another shape than declared")


def reported_run_ns(reply: Mapping[str, Any]) -> int | None:
    """The model's run time a worker reported, if it is a sane count of nanoseconds."""
    run_ns = reply.get("run_ns")
    if isinstance(run_ns, int) and not isinstance(run_ns, bool) and 0 <= run_ns < 2**63:
        return run_ns
    return None


class WorkerProcess:
    """One confined worker holding one loaded model (or none, for probing)."""

    def __init__(
        self,
        fmt: ModelFormat | None,
        limits: RuntimeLimits,
        *,
        network: str,
        require: Sequence[str] = ("seccomp",),
        answers: AnswerBudget | None = None,
    ) -> None:
        """*require*: the confinement (keys of :attr:`sandbox`) without which the
        worker refuses to parse the model at all; empty only for a supervisor told
        to run unconfined. *answers*: the budget this worker's answers share with
        every other worker of the service (its own, if none is given)."""
        self.answers = answers or AnswerBudget()
        self.fmt = fmt
        self.limits = limits
        self.network = network
        self.require = tuple(require)
        self.slot_bytes = int(limits.extra.get("sandbox.slot_bytes", DEFAULT_SLOT_BYTES))
        # A worker cannot make the service allocate more than this for its answer.
        self.max_output_bytes = int(
            limits.extra.get("sandbox.max_output_bytes", DEFAULT_MAX_OUTPUT_BYTES)
        )
        self.max_output_strings = int(
            limits.extra.get(
                "sandbox.max_output_strings",
                min(DEFAULT_MAX_OUTPUT_STRINGS, self.max_output_bytes // 16),
            )
        )
        self.load_timeout_s = float(
            limits.extra.get("sandbox.load_timeout_s", DEFAULT_LOAD_TIMEOUT_S)
        )
        self.sandbox: dict[str, Any] = {}
        self.needs_recycle = False
        self.signature: dict[str, Any] = {}
        self.model_signature = ModelSignature(inputs=(), outputs=())
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._slot: mmap.mmap | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, model: bytes | bytearray | memoryview) -> None:
        """Spawn the worker, send it the model and wait until it has loaded it."""
        self.begin(memoryview(model).nbytes)
        self.send(model)
        self.load()

    def begin(self, size: int) -> None:
        """Spawn the worker and announce a model of *size* bytes; :meth:`send` follows."""
        try:
            self._spawn()
        except OSError as exc:
            self.kill()
            raise ServiceUnavailable(f"cannot start a sandboxed worker: {exc.strerror}") from exc
        header = {
            "op": "start",
            "format": str(self.fmt) if self.fmt is not None else None,
            "limits": limits_to_json(self.limits),
            "network": self.network,
        }
        self._exchange(lambda sock: send_frame_header(sock, header, size))

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """The next piece of the model; the worker receives it into its buffer."""
        if memoryview(data).nbytes:
            self._exchange(lambda sock: sock.sendall(data))

    def load(self) -> None:
        """Tell the worker its whole model has arrived and may be loaded; wait for it.

        Until then the worker has not parsed a byte of the model; a worker that
        is never told (the upload failed or was refused) is killed instead.
        """

        def confirm(sock: socket.socket) -> dict[str, Any]:
            # The whole answer within the load timeout, however it trickles in.
            deadline = time.monotonic() + self.load_timeout_s
            send_frame(sock, {"op": "load", "require": list(self.require)})
            reply, size = recv_header(sock, deadline=deadline)
            recv_payload(sock, size, 0, deadline=deadline)
            return reply

        reply = self._exchange(confirm)
        if not reply.get("ok"):
            self.kill()
            # No request has reached this worker yet: its message (a checker's, or
            # the runtime's about the model) cannot carry anyone's inputs.
            raise _error_from_reply(reply)
        sandbox, signature = reply.get("sandbox"), reply.get("signature")
        try:
            if not isinstance(sandbox, dict):
                raise ValueError("malformed sandbox report")
            if self.fmt is not None:
                self.model_signature = signature_from_json(signature)
        except ValueError:
            self.kill()
            raise ModelRejected("the worker loading the model sent a malformed reply") from None
        self.sandbox = dict(sandbox)
        self.signature = dict(signature) if isinstance(signature, dict) else {}

    def _spawn(self) -> None:
        if not hasattr(os, "memfd_create"):
            raise ServiceUnavailable("sandboxed workers need Linux (memfd_create, seccomp)")
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            slot_fd = sealed_slot(self.slot_bytes)
        except OSError:
            parent.close()
            child.close()
            raise
        try:
            self._slot = mmap.mmap(slot_fd, self.slot_bytes)
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own module
                [
                    sys.executable,
                    "-s",  # no user site-packages
                    "-B",  # no .pyc writes (the filter would refuse them anyway)
                    "-P",  # no working directory on sys.path
                    "-c",
                    _BOOTSTRAP,
                    str(child.fileno()),
                    str(slot_fd),
                ],
                pass_fds=(child.fileno(), slot_fd),
                env=_worker_environment(),
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # The worker's diagnostics may carry model-controlled text, so
                # they are discarded unless an operator asks for them.
                stderr=None
                if self.limits.extra.get("sandbox.stderr") == "inherit"
                else subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError:
            parent.close()
            raise
        finally:
            child.close()
            os.close(slot_fd)
        # A model is sent in 4 MiB pieces: with a send buffer that holds one, the
        # service hands a piece over and goes on while the worker copies it out
        # (capped by net.core.wmem_max).
        with contextlib.suppress(OSError):
            parent.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _MODEL_PIECE)
        self._sock = parent

    def _exchange(self, step: Callable[[socket.socket], _T]) -> _T:
        """Run one step of the start-up on the socket; a failure stops the worker."""
        parent = self._sock
        try:
            if parent is None:
                raise PeerClosed("the worker is not running")
            parent.settimeout(self.load_timeout_s)
            return step(parent)
        except (OSError, FrameError) as exc:
            reason = self._reap_reason(exc)
            self.kill()
            if self.fmt is None:
                raise ServiceUnavailable(
                    f"the sandboxed worker failed to start: it {reason}"
                ) from exc
            # With a model to load, the model is the likely cause (endless
            # constant folding, a crash in the parser): refuse the model, and
            # name the other usual suspect.
            raise ModelRejected(
                f"the worker loading the model {reason} "
                f"(the model, or memory_bytes={self.limits.memory_bytes} too small for it "
                "and its runtime)"
            ) from exc

    def _reap_reason(self, exc: BaseException, *, detailed: bool = True) -> str:
        if isinstance(exc, TimeoutError):
            return f"did not finish within {self.load_timeout_s:g} s"
        if self._proc is not None:
            try:
                self._proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                return "stopped responding"
            return _exit_reason(self._proc.returncode, detailed=detailed)
        return "stopped responding"

    def _sock_or_fail(self) -> socket.socket:
        if self._sock is None or not self.alive:
            raise InferenceFailed("the sandboxed worker is not running")
        return self._sock

    def run(self, inputs: Tensors, timeout_s: float, *, limit_s: float | None = None) -> Tensors:
        """Send checked inputs, return decoded outputs; kill the worker on crash or timeout.

        *limit_s* is the request timeout to name in the error (*timeout_s* may be
        what remains of it).
        """
        return self.run_timed(inputs, timeout_s, limit_s=limit_s)[0]

    def run_timed(
        self, inputs: Tensors, timeout_s: float, *, limit_s: float | None = None
    ) -> tuple[Tensors, int | None]:
        """:meth:`run`, and how long the model ran inside the worker (ns, as it reports it).

        The worker is hostile: its answer must keep the protocol and hold exactly
        the outputs its model declares, of their declared dtypes, or it is stopped
        (and replaced by the runner). Whatever happens, the part of the slot this
        request used is zeroed before this returns.
        """
        sock = self._sock_or_fail()
        slot = self._slot
        assert slot is not None
        # Until the inputs are known to be in place, all of the slot may hold some.
        used = len(slot)

        def wipe() -> None:
            # Inputs and outputs are not retained after a request. Before kill(),
            # which closes the slot.
            if not slot.closed:
                _zero(slot, min(used, len(slot)))

        held = contextlib.ExitStack()  # the answer's share of the budget, until decoded
        try:
            try:
                # The whole answer within the timeout, however it trickles in.
                deadline = time.monotonic() + timeout_s
                sock.settimeout(timeout_s)
                written = write_tensors(slot, inputs)
                if written is not None:
                    used = written
                    send_frame(sock, {"op": "run", "area": "shm", "nbytes": written})
                else:
                    used = 0
                    encoded = encode_tensors(inputs)
                    send_frame(
                        sock, {"op": "run", "area": "inline", "nbytes": len(encoded)}, encoded
                    )
                    del encoded
                reply, size = recv_header(sock, deadline=deadline)
                nbytes = reply.get("nbytes")
                in_slot = 0
                if reply.get("area") == "shm" and type(nbytes) is int and nbytes > 0:
                    in_slot = min(nbytes, len(slot))
                    used = max(used, nbytes)
                # The answer is copied out of the slot, or received inline: either
                # way the service holds about that much until it is decoded.
                held.enter_context(self.answers.hold(in_slot or size))
                body = recv_payload(sock, size, self.max_output_bytes, deadline=deadline)
            except (OSError, FrameError) as exc:
                wipe()
                raise self._broken(exc, limit_s or timeout_s) from exc
            except BaseException:
                # Out of step with the worker (an answer half read, say): the next
                # request would read the rest of this one's. Never reuse it.
                wipe()
                self.kill()
                raise
            self.needs_recycle = bool(reply.get("recycle"))
            if reply.get("ok") is not True:
                raise _run_error(reply)
            try:
                outputs = self._outputs(reply, body)
            except InferenceFailed:
                # The worker's own code never sends such an answer: it is broken
                # or compromised.
                wipe()
                self.kill()
                raise
            return outputs, reported_run_ns(reply)
        finally:
            held.close()
            wipe()

    def _broken(self, exc: OSError | FrameError, limit_s: float) -> InferenceFailed:
        """Stop a worker whose exchange failed; the error to raise, naming nothing it chose."""
        timed_out = isinstance(exc, TimeoutError)
        reason: str | None = "did not answer in time" if timed_out else None
        if isinstance(exc, FrameError) and not isinstance(exc, PeerClosed):
            # FrameError messages are fixed texts, quoting nothing the peer sent.
            reason = f"broke the protocol ({exc}) and was stopped"
        self.kill()
        if reason is None:
            reason = self._reap_reason(exc, detailed=False)
        if timed_out:
            return InferenceFailed(
                f"the model did not finish within {limit_s:g} s; its worker was stopped"
            )
        return InferenceFailed(f"the model's worker {reason}")

    def _outputs(self, reply: dict[str, Any], body: bytes) -> Tensors:
        assert self._slot is not None
        nbytes = reply.get("nbytes")
        if type(nbytes) is not int or nbytes < 0:
            raise InferenceFailed("the worker sent a malformed reply")
        if reply.get("area") == "shm":
            if nbytes > len(self._slot):
                raise InferenceFailed("the worker sent a malformed reply")
            data = bytearray(nbytes)
            memoryview(data)[:] = memoryview(self._slot)[:nbytes]  # one copy out of the slot
        elif len(body) == nbytes:
            data = bytearray(body)
        else:
            raise InferenceFailed("the worker sent a malformed reply")
        # Counted before decoding: each string element costs the service ~12 times
        # the bytes it takes in the answer.
        if _string_elements(memoryview(data), self.max_output_strings) > self.max_output_strings:
            raise InferenceFailed(
                f"the worker sent more than {self.max_output_strings} string elements"
            )
        try:
            outputs = decode_tensors(data)
        except InvalidTensor:
            # Not chained: the message may quote names the worker chose.
            raise InferenceFailed("the worker sent malformed outputs") from None
        _check_declared(outputs, self.model_signature.outputs)
        return outputs

    def probe(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Ask the worker to try what the sandbox forbids; see ``worker.probe``."""
        sock = self._sock_or_fail()
        try:
            sock.settimeout(timeout_s)
            send_frame(sock, {"op": "probe"})
            reply, size = recv_header(sock)
            recv_payload(sock, size, 0)
        except (OSError, FrameError) as exc:
            reason = self._reap_reason(exc)
            self.kill()
            # A worker that vanished while probing most likely managed to execve.
            return {"failed": f"the worker {reason} while probing"}
        probe = reply.get("probe")
        return dict(probe) if isinstance(probe, dict) else {"failed": "malformed probe reply"}

    def stop(self, grace_s: float = 1.0) -> None:
        """Ask the worker to exit; kill it if it does not within *grace_s*."""
        if self._sock is not None and self.alive:
            try:
                self._sock.settimeout(grace_s)
                send_frame(self._sock, {"op": "stop"})
            except OSError:
                pass
            if self._proc is not None:
                deadline = time.monotonic() + grace_s
                while self._proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.01)
        self.kill()

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._slot is not None:
            self._slot.close()
            self._slot = None
