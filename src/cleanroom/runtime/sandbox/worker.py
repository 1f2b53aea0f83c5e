"""The sandboxed worker: one process, one model, one request at a time.

Started by the supervisor (``python -s -B -P -c BOOTSTRAP SOCKET_FD SLOT_FD``,
see ``process.py``) with a minimal environment and only those two file
descriptors. It imports only ``cleanroom.runtime``, ``cleanroom.wire``,
``cleanroom.errors``, numpy and the model's runtime. Sequence:

1. (``startup.py``, before numpy or this module is imported) read the
   ``start`` header (format, limits, confinement settings, the model's size);
2. confine: user and network namespaces, resource limits, no dumping;
3. restrict the filesystem (Landlock); then start receiving the model from
   the socket (never from a file) into one buffer of its size on a second
   thread, bound by Landlock too, and meanwhile import this module and the
   runtime, so the imports overlap the model's arrival, which may last as
   long as its upload;
4. install the seccomp filter, so parsing and loading the untrusted model
   happen under all of it;
5. wait for ``load``: the supervisor sends it once the upload was complete,
   authenticated and allowed, and kills the worker otherwise, so a refused
   model is never parsed. ``load`` names the confinement the supervisor
   requires (seccomp at least, unless it was told to run unconfined): if any
   of it failed to take hold, the worker refuses without parsing the model;
6. validate and load the model (an ONNX model's large weights stay in the
   buffer it was received into, see ``runtime/onnx_split.py``), reply with
   its signature and the confinement actually in force;
7. serve ``run`` / ``probe`` requests until ``stop`` or end of file.

Error messages: a failed load may say why (the checker's findings, or the
runtime's first line about the model): no request has reached the worker
yet, so there is no data for the text to carry, and it goes to whoever
loads the model. A failed run never says what the runtime said, which a
model can make quote its inputs: only the fixed texts of
``protocol.RUN_FAILURES`` leave the worker, and the service passes on
nothing else.
"""

from __future__ import annotations

import errno
import gc
import mmap
import os
import resource
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from cleanroom.errors import Error, InferenceFailed, ModelRejected, ServiceUnavailable
from cleanroom.runtime.base import ModelRunner, RuntimeLimits
from cleanroom.runtime.sandbox import seccomp
from cleanroom.runtime.sandbox.protocol import (
    MODEL_FAILED,
    RUN_FAILURES,
    FrameError,
    recv_header,
    recv_payload,
    send_frame,
)
from cleanroom.runtime.sandbox.report import has_confinement
from cleanroom.runtime.sandbox.slot import write_tensors
from cleanroom.runtime.sandbox.startup import Started
from cleanroom.wire.formats import ModelFormat
from cleanroom.wire.tensors import decode_tensors, encode_tensors


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def _error_reply(exc: BaseException) -> dict[str, Any]:
    """A failed load's reply (see the module's docstring on messages)."""
    if isinstance(exc, Error):
        return {"ok": False, "code": exc.code, "message": exc.message[:500]}
    if isinstance(exc, MemoryError):
        return {"ok": False, "code": InferenceFailed.code, "message": "out of memory"}
    return {"ok": False, "code": InferenceFailed.code, "message": type(exc).__name__}


def _run_failure(exc: BaseException) -> dict[str, Any]:
    """A failed run's reply: a fixed text, never the runtime's, which may carry the inputs.

    An ONNX Gather given an index out of range answers "indices element out of
    data bounds, idx=<the index>": a model computing that index from its inputs
    would otherwise send them out in plain text.
    """
    if isinstance(exc, MemoryError):
        message = "out of memory"
    elif isinstance(exc, Error) and exc.message in RUN_FAILURES:
        message = exc.message
    else:
        message = MODEL_FAILED
    return {"ok": False, "code": InferenceFailed.code, "message": message}


def _read_service_memory() -> None:
    with open(f"/proc/{os.getppid()}/mem", "rb") as memory:
        memory.read(1)


def _import_runtime(fmt: ModelFormat | None) -> None:
    # Import everything the model needs before the filter goes on, so that
    # the filter never has to allow what importing does.
    import numpy  # noqa: F401

    if fmt == ModelFormat.ONNX:
        import onnx
        import onnx.checker  # noqa: F401
        import onnxruntime  # noqa: F401

        import cleanroom.runtime.onnx
        import cleanroom.runtime.onnx_checks
    elif fmt == ModelFormat.TFLITE:
        import ai_edge_litert.interpreter
        import ai_edge_litert.schema_py_generated  # noqa: F401

        import cleanroom.runtime.tflite  # noqa: F401


def _attempt(action: Callable[[], object]) -> str:
    try:
        action()
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
            return f"denied ({exc.strerror})"
        return f"inconclusive ({exc.strerror})"
    return "allowed"


def _write_probe_file() -> None:
    directory = "/tmp" if os.path.isdir("/tmp") else "/"  # noqa: S108
    path = os.path.join(directory, f"cleanroom-probe-{os.getpid()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(path)


def probe() -> dict[str, Any]:
    """Try what the sandbox must forbid, from inside; report each outcome."""
    return {
        "net_ns": os.readlink("/proc/self/ns/net"),
        # Names only: what the worker could have inherited from the service.
        "environment": sorted(os.environ),
        "cleanroom_modules": sorted(m for m in sys.modules if m.split(".")[0] == "cleanroom"),
        "socket_inet": _attempt(lambda: socket.socket(socket.AF_INET).close()),
        "socket_unix": _attempt(lambda: socket.socket(socket.AF_UNIX).close()),
        # Not tempfile: it needs a writable directory to answer at all.
        "write_file": _attempt(_write_probe_file),
        "read_service_memory": _attempt(_read_service_memory),
        "signal_service": _attempt(lambda: os.kill(os.getppid(), 0)),
        # Succeeding replaces the worker: the supervisor then sees it exit,
        # which it also treats as "execve allowed" (fail closed).
        "execve": _attempt(
            lambda: os.execv(sys.executable, [sys.executable, "-c", "pass"])  # noqa: S606
        ),
    }


class _Worker:
    def __init__(self, sock: socket.socket, slot: mmap.mmap) -> None:
        self.sock = sock
        self.slot = slot
        self.runner: ModelRunner | None = None
        self.limits = RuntimeLimits()

    def start(self, started: Started) -> None:
        self.limits = started.limits
        fmt, info = started.fmt, started.info
        failure: dict[str, Any] | None = None
        try:
            _import_runtime(fmt)
        except (ImportError, MemoryError, OSError) as exc:
            # Most often memory_bytes is below what the runtime itself needs.
            failure = {
                "ok": False,
                "code": ServiceUnavailable.code,
                "message": f"the {fmt} runtime cannot start in the worker "
                f"(memory_bytes={self.limits.memory_bytes}): {type(exc).__name__}",
            }
        model = started.receiver.model()
        if failure is None:
            try:
                seccomp.install_filter()
                info["seccomp"] = True
            except OSError as exc:
                info["errors"].append(f"seccomp: {exc.strerror}")
        go, extra = recv_header(self.sock)
        if go.get("op") != "load" or extra:
            raise FrameError("the model was not confirmed")
        if failure is not None:
            send_frame(self.sock, failure)
            raise FrameError("the runtime could not be imported")
        # Without the confinement the supervisor requires, the model is never
        # parsed (the supervisor would refuse this worker afterwards anyway).
        # Seccomp unless told otherwise: only an unconfined supervisor says so.
        required = go.get("require", ["seccomp"])
        if not isinstance(required, list):
            raise FrameError("malformed load message")
        missing = [str(name) for name in required if not has_confinement(info, str(name))]
        if fmt is not None and missing:
            send_frame(
                self.sock,
                {
                    "ok": False,
                    "code": ServiceUnavailable.code,
                    "message": "the sandboxed worker could not confine itself "
                    f"({', '.join(missing)} failed); it did not load the model",
                    "sandbox": info,
                },
            )
            raise FrameError("confinement incomplete")
        reply: dict[str, Any] = {"ok": True, "sandbox": info, "pid": os.getpid()}
        if fmt is not None:
            try:
                from cleanroom.runtime.loading import load_model

                self.runner = load_model(fmt, model, self.limits)
                reply["signature"] = self.runner.signature.to_json()
            except ModelRejected as exc:
                reply = _error_reply(exc)
            except Exception as exc:  # the runtime refused: say so, never crash silently
                reply = _error_reply(ModelRejected(f"the model cannot be loaded: {exc}"))
            del model
        send_frame(self.sock, reply)

    def serve(self) -> None:
        while True:
            try:
                header, size = recv_header(self.sock)
            except FrameError:
                return
            op = header.get("op")
            if op == "stop":
                return
            if op == "probe":
                send_frame(self.sock, {"ok": True, "probe": probe()})
            elif op == "run":
                payload = recv_payload(self.sock, size, self.limits.memory_bytes)
                self._run(header, payload)
            else:
                return

    def _run(self, header: dict[str, Any], payload: bytes) -> None:
        reply: dict[str, Any]
        body = b""
        try:
            if self.runner is None:
                raise InferenceFailed("no model is loaded in this worker")
            nbytes = int(header["nbytes"])
            if header.get("area") == "shm":
                if not 0 <= nbytes <= len(self.slot):
                    raise InferenceFailed("request does not fit the shared slot")
                view = memoryview(self.slot)[:nbytes]
                inputs = decode_tensors(view)
            else:
                view = None
                inputs = decode_tensors(payload)
            started = time.perf_counter_ns()
            try:
                outputs = self.runner.run(inputs)
            finally:
                # Drop the views into the slot before the slot is overwritten.
                del inputs, view
            run_ns = time.perf_counter_ns() - started
            written = write_tensors(self.slot, outputs)
            if written is not None:
                reply = {"ok": True, "area": "shm", "nbytes": written, "run_ns": run_ns}
            else:
                body = encode_tensors(outputs)
                reply = {"ok": True, "area": "inline", "nbytes": len(body), "run_ns": run_ns}
            del outputs
        except Exception as exc:
            reply = _run_failure(exc)
        del payload
        recycle_at = float(self.limits.extra.get("sandbox.recycle_cpu_fraction", "0.8"))
        if _cpu_used() > recycle_at * self.limits.cpu_seconds:
            # Ask to be replaced while idle rather than die of RLIMIT_CPU mid-request,
            # after a failed run as after a successful one.
            reply["recycle"] = True
        send_frame(self.sock, reply, body)
        # Inputs and outputs are not retained after a request: every
        # reference above is local and freed here by reference counting.
        del body


def serve_started(sock: socket.socket, slot_fd: int, started: Started) -> int:
    """Load the model whose arrival :func:`startup.begin` started, then serve."""
    slot = mmap.mmap(slot_fd, os.fstat(slot_fd).st_size)
    worker = _Worker(sock, slot)
    try:
        worker.start(started)
        # The runtime, the model's graph and everything imported stay for the
        # worker's life: leave them out of every later garbage collection, so a
        # full collection never stalls a request for tens of milliseconds.
        gc.freeze()
        worker.serve()
    except FrameError:
        return 1
    return 0
