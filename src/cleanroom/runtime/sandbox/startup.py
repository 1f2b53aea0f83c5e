"""A sandboxed worker's first steps, before anything heavy is imported.

The bootstrap (``process.py``) runs :func:`main`: it reads the ``start``
header, confines the process (namespaces, resource limits, no dumping),
restricts its filesystem (Landlock), then starts receiving the model on a
second thread (bound by Landlock too) before it imports the worker itself,
numpy and the model's runtime. Only the standard library and small modules
are imported until then, so a model streamed in by an upload starts
flowing into the worker a few tens of milliseconds after it was spawned,
and the imports overlap its arrival. See ``worker.py`` for the rest.
"""

from __future__ import annotations

import mmap
import os
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

from cleanroom.runtime.base import RuntimeLimits
from cleanroom.runtime.sandbox import confine, landlock
from cleanroom.runtime.sandbox.protocol import FrameError, recv_header, recv_payload_into
from cleanroom.wire.formats import ModelFormat

__all__ = ["Started", "begin", "limits_from_json", "main"]


def limits_from_json(doc: dict[str, Any]) -> RuntimeLimits:
    return RuntimeLimits(
        max_model_bytes=int(doc["max_model_bytes"]),
        request_timeout_s=float(doc["request_timeout_s"]),
        memory_bytes=int(doc["memory_bytes"]),
        cpu_seconds=int(doc["cpu_seconds"]),
        open_files=int(doc["open_files"]),
        workers=int(doc["workers"]),
        intra_op_threads=int(doc["intra_op_threads"]),
        extra={str(k): str(v) for k, v in dict(doc["extra"]).items()},
    )


def _confine_before_load(header: dict[str, Any], limits: RuntimeLimits) -> dict[str, Any]:
    info: dict[str, Any] = {
        "network_namespace": None,
        "filesystem": None,
        "seccomp": False,
        "errors": [],
    }
    if header.get("network") == "auto":
        try:
            info["network_namespace"] = confine.isolate_network()
        except OSError as exc:
            info["errors"].append(f"network namespace: {exc.strerror}")
    info["rlimits"] = confine.set_resource_limits(limits)
    confine.forbid_dumping()
    return info


def _restrict_filesystem(info: dict[str, Any]) -> None:
    # Before the runtime is imported: ONNX Runtime starts a thread at import,
    # and Landlock binds only the calling thread and the threads it starts.
    confine.set_no_new_privs()
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        info["errors"].append(f"landlock: {threads - 1} thread(s) started before it are not bound")
    try:
        info["filesystem"] = f"landlock-v{landlock.restrict()}"
    except OSError as exc:
        info["errors"].append(f"landlock: {exc.strerror}")


class _Receiver:
    """Receives the model into one buffer of its size on its own thread."""

    def __init__(self, sock: socket.socket, size: int) -> None:
        self._sock = sock
        self._size = size
        self._model: bytearray | mmap.mmap | None = None
        self._error: FrameError | None = None
        self._thread = threading.Thread(target=self._receive, daemon=True, name="cleanroom-receive")
        self._thread.start()

    def _receive(self) -> None:
        try:
            self._model = recv_payload_into(self._sock, self._size, self._size)
        except FrameError as exc:
            self._error = exc
        except OSError as exc:
            self._error = FrameError(f"receiving the model failed: {exc.strerror}")
        except MemoryError:
            self._error = FrameError("no memory for the model")

    def model(self) -> bytearray | mmap.mmap:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._model is not None
        return self._model


@dataclass
class Started:
    """What the first steps established: the start message and the model arriving."""

    fmt: ModelFormat | None
    limits: RuntimeLimits
    info: dict[str, Any]
    receiver: _Receiver


def begin(sock: socket.socket) -> Started:
    """Read the start message, confine, restrict the filesystem, start receiving."""
    header, size = recv_header(sock)
    if header.get("op") != "start":
        raise FrameError("expected a start message")
    limits = limits_from_json(header["limits"])
    fmt = ModelFormat(header["format"]) if header.get("format") else None
    info = _confine_before_load(header, limits)
    if size > limits.max_model_bytes:
        raise FrameError(f"a model of {size} bytes is over the limit")
    _restrict_filesystem(info)
    # Into one buffer of the model's size, which an ONNX session goes on using.
    return Started(fmt, limits, info, _Receiver(sock, size))


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[1]))
    try:
        started = begin(sock)
    except FrameError:
        return 1
    # Imported while the model arrives: numpy, the codec, the runtimes' loaders.
    from cleanroom.runtime.sandbox.worker import serve_started

    return serve_started(sock, int(argv[2]), started)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
