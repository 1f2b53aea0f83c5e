"""Framing on the worker's socket: bounds the peer cannot talk its way past.

A frame is ``u32 header length | u64 payload length | JSON header | payload``.
The header length is refused before a byte of the header is read, the payload
bound is inclusive, and a deadline bounds a whole message, not each receive.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from cleanroom.runtime.sandbox import protocol
from cleanroom.runtime.sandbox.protocol import (
    MAX_HEADER,
    FrameError,
    recv_header,
    recv_payload,
    send_frame,
)

PREFIX = struct.Struct(">IQ")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(20)
        yield ours, theirs


def _send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    thread = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
    thread.start()
    return thread


def _padded_header(length: int) -> bytes:
    """A JSON object of exactly *length* bytes."""
    empty = json.dumps({"pad": ""}, separators=(",", ":")).encode()
    data = json.dumps({"pad": "p" * (length - len(empty))}, separators=(",", ":")).encode()
    assert len(data) == length
    return data


def test_a_header_over_the_limit_is_refused_before_it_is_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    # Only the prefix: the header it announces never comes, and is never waited for.
    theirs.sendall(PREFIX.pack(MAX_HEADER + 1, 0))
    theirs.shutdown(socket.SHUT_WR)
    with pytest.raises(FrameError) as info:
        recv_header(ours)
    assert type(info.value) is FrameError  # not PeerClosed: nothing more was read
    assert str(info.value) == "frame header too large"


def test_a_header_of_exactly_the_limit_is_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    header = _padded_header(MAX_HEADER)
    sender = _send_in_background(theirs, PREFIX.pack(len(header), 7) + header)
    got, payload_len = recv_header(ours)
    sender.join(timeout=20)
    assert payload_len == 7
    assert len(got["pad"]) > MAX_HEADER - 20


def test_a_payload_of_exactly_the_limit_is_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    send_frame(theirs, {"ok": True}, b"12345")
    _, size = recv_header(ours)
    assert recv_payload(ours, size, 5) == b"12345"


def test_a_payload_over_the_limit_is_refused_without_naming_its_size(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    send_frame(theirs, {"ok": True}, b"123456")
    _, size = recv_header(ours)
    with pytest.raises(FrameError) as info:
        recv_payload(ours, size, 5)
    assert str(info.value) == "a frame payload is over the limit of 5 bytes"


def test_the_deadline_bounds_the_whole_message_not_each_receive(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half a header arrives in time; the clock then passes the deadline before the
    rest is waited for: a TimeoutError, checked before the next receive."""
    ours, theirs = pair
    header = b'{"ok":true,"area":"shm"}'
    theirs.sendall(PREFIX.pack(len(header), 0) + header[:10])
    theirs.shutdown(socket.SHUT_WR)  # were the rest waited for, the peer would be seen closed
    readings = iter([0.0, 0.0, 100.0])
    monkeypatch.setattr(protocol, "time", SimpleNamespace(monotonic=lambda: next(readings)))
    with pytest.raises(TimeoutError):
        recv_header(ours, deadline=50.0)


def test_a_deadline_already_passed_reads_nothing(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = pair
    send_frame(theirs, {"ok": True})
    monkeypatch.setattr(protocol, "time", SimpleNamespace(monotonic=lambda: 100.0))
    with pytest.raises(TimeoutError):
        recv_header(ours, deadline=100.0)
    monkeypatch.undo()
    assert recv_header(ours) == ({"ok": True}, 0)  # the frame is still whole in the socket
