"""Framing of the supervisor <-> worker messages on their socket pair.

A frame is ``u32 header length | u64 payload length`` (big-endian), a JSON
header, then the payload bytes (the model, or tensors that did not fit the
shared-memory slot). JSON and raw bytes only: the supervisor never unpickles
anything a worker sends, because the worker runs untrusted models.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import socket
import struct
import time
from typing import Any

__all__ = [
    "MAX_HEADER",
    "MODEL_FAILED",
    "RUN_FAILURES",
    "FrameError",
    "PeerClosed",
    "recv_header",
    "recv_payload",
    "recv_payload_into",
    "send_frame",
    "send_frame_header",
]

_PREFIX = struct.Struct(">IQ")
MAX_HEADER = 1024 * 1024

# A failed run's message, whatever the runtime said: a model's error text may
# spell out its inputs ("idx=<value>"), and it would leave as plaintext, past
# the sealed envelope and the egress policy.
MODEL_FAILED = (
    "the model failed while running; its runtime's message is withheld because it may carry data"
)
# The only messages a service passes on from a worker's failed run: texts of
# the worker's own code, which no model or input chooses. Anything else a
# worker says becomes MODEL_FAILED.
RUN_FAILURES = frozenset(
    {
        MODEL_FAILED,
        "out of memory",
        "no model is loaded in this worker",
        "request does not fit the shared slot",
    }
)


class FrameError(Exception):
    """The peer closed the socket or sent a frame that breaks the format.

    Internal to the sandbox: the supervisor turns it into a public error, which
    may quote its message, so messages never quote what the peer sent.
    """


class PeerClosed(FrameError):
    """The peer closed its end: for a worker, usually because it died."""


def send_frame_header(sock: socket.socket, header: dict[str, Any], payload_nbytes: int) -> None:
    """Send a frame's header; its *payload_nbytes* bytes of payload follow in any pieces."""
    data = json.dumps(header, separators=(",", ":")).encode()
    sock.sendall(_PREFIX.pack(len(data), payload_nbytes) + data)


def send_frame(
    sock: socket.socket, header: dict[str, Any], payload: bytes | bytearray | memoryview = b""
) -> None:
    send_frame_header(sock, header, memoryview(payload).nbytes)
    if memoryview(payload).nbytes:
        sock.sendall(payload)


def _arm(sock: socket.socket, deadline: float | None) -> None:
    """Give the next receive what is left until *deadline* (``time.monotonic()``).

    A socket timeout alone bounds each receive, not the message: a peer sending
    a byte just inside it every time would never be stopped.
    """
    if deadline is None:
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the deadline passed")
    sock.settimeout(remaining)


def _recv_exact(sock: socket.socket, size: int, deadline: float | None = None) -> bytes:
    # MSG_WAITALL fills the whole buffer in one allocation for stream sockets,
    # so a large model is not copied chunk by chunk.
    if not size:
        return b""
    _arm(sock, deadline)
    data = sock.recv(size, socket.MSG_WAITALL)
    if len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        _arm(sock, deadline)
        chunk = sock.recv(min(size - got, 1 << 20))
        if not chunk:
            raise PeerClosed("the peer closed the connection")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def recv_header(
    sock: socket.socket, *, deadline: float | None = None
) -> tuple[dict[str, Any], int]:
    """Read one frame's header; returns it with the length of the payload that follows.

    A header that cannot be read, whatever the reason, is a :class:`FrameError`:
    the caller then stops the peer rather than stay out of step with it. With a
    *deadline* (``time.monotonic()``), all of it must have arrived by then
    (``TimeoutError``).
    """
    prefix = _recv_exact(sock, _PREFIX.size, deadline)
    header_len, payload_len = _PREFIX.unpack(prefix)
    if header_len > MAX_HEADER:
        raise FrameError("frame header too large")
    data = _recv_exact(sock, header_len, deadline)
    try:
        header = json.loads(data)
    except (ValueError, RecursionError):
        # ValueError: not JSON, not UTF-8, an integer too long to read;
        # RecursionError: nesting too deep. Not chained: messages quote the data.
        raise FrameError("frame header is not JSON") from None
    if not isinstance(header, dict):
        raise FrameError("frame header is not an object")
    return header, int(payload_len)


def recv_payload(
    sock: socket.socket, size: int, limit: int, *, deadline: float | None = None
) -> bytes:
    if size > limit:
        # Not the size: a worker chooses it, and the message may reach a caller.
        raise FrameError(f"a frame payload is over the limit of {limit} bytes")
    return _recv_exact(sock, size, deadline)


def recv_payload_into(sock: socket.socket, size: int, limit: int) -> bytearray | mmap.mmap:
    """Read a payload straight into one buffer of its size (a model: no second copy).

    The buffer is private anonymous memory that the kernel zeroes page by page
    as the payload fills it: ``bytearray(size)`` would first write zeros over all of
    it (0.2-0.4 s for a 575 MB model), before the first byte is received.
    """
    if size > limit:
        raise FrameError(f"a frame payload is over the limit of {limit} bytes")
    buffer: bytearray | mmap.mmap = bytearray()
    if size:
        buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        # Huge pages where the kernel allows them: far fewer page faults while
        # it fills (measured 0.40 -> 0.15-0.32 s for 512 MB).
        with contextlib.suppress(OSError, AttributeError):
            buffer.madvise(mmap.MADV_HUGEPAGE)
    view = memoryview(buffer)
    got = 0
    try:
        while got < size:
            # MSG_WAITALL: one call (and one release of the GIL) for the whole
            # payload, however long it takes to arrive, rather than one per
            # socket buffer, each waiting for the GIL the importing thread holds.
            count = sock.recv_into(view[got:], size - got, socket.MSG_WAITALL)
            if not count:
                raise PeerClosed("the peer closed the connection")
            got += count
    finally:
        view.release()
    return buffer
