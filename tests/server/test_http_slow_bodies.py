"""Bodies and uploads have total deadlines: a sender that trickles bytes, or stalls
before the end of a body, is refused 408 and gives its upload slot back."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.models import single_input_model

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.errors import ServiceUnavailable
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings

DEADLINE_S = 1.5  # the small deadlines these tests run under
BOUND_S = 20.0  # generous: a refusal that takes longer did not come from the deadline
STREAM_MAGIC = b"CLRM\x01\x03\x00\x01"  # a stream header's start: the opener waits for more


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[ServerThread]:
    settings = ServerSettings(
        data_dir=data_dir,
        max_concurrent_uploads=1,
        upload_idle_timeout_s=DEADLINE_S,
        upload_grace_s=DEADLINE_S,
        upload_min_bytes_per_s=64 * 1024,
        body_timeout_s=DEADLINE_S,
    )
    with ServerThread(settings) as s:
        yield s


def _connect(server: ServerThread) -> socket.socket:
    host, port = server.url.split("//")[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=BOUND_S)
    return sock


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: cleanroom",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(sock: socket.socket) -> tuple[int, str, dict[str, Any]]:
    """The status, content type and problem document of the response on *sock*."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return int(lines[0].split()[1]), headers.get("content-type", ""), json.loads(body[:length])


def _answered(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def _attested(client: Client, name: str, policy: AttestationPolicy) -> Any:
    inst = client.create_instance(name, ModelFormat.ONNX, [])
    inst.validate_attestation(policy)
    inst.set_secret(Secret())
    return inst


def test_a_trickled_upload_is_stopped_and_gives_its_slot_back(
    server: ServerThread, party: Callable[[str], Client], policy: AttestationPolicy
) -> None:
    mallory = party("mallory@slow.example")
    held = mallory.create_instance("Trickle", ModelFormat.ONNX, [])
    victim = _attested(party("alice@slow.example"), "Real", policy)
    with _connect(server) as sock:
        sock.sendall(
            _head(
                "PUT",
                f"/v1/instances/{held.id}/model",
                {
                    **mallory._auth_headers(),
                    "Content-Type": "application/octet-stream",
                    "Transfer-Encoding": "chunked",
                },
            )
        )
        sock.sendall(b"%x\r\n%s\r\n" % (len(STREAM_MAGIC), STREAM_MAGIC))
        started = time.monotonic()
        sent = 0
        refused_meanwhile = False
        # A byte every 0.2 s: never idle for the idle timeout, far below the minimum rate.
        while not _answered(sock) and time.monotonic() - started < BOUND_S:
            sock.sendall(b"1\r\n\x00\r\n")
            sent += 1
            if sent == 3:  # the trickle has surely taken the only slot by now
                with pytest.raises(ServiceUnavailable, match="as many models"):
                    victim.upload_model(single_input_model())
                refused_meanwhile = True
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        status, content_type, problem = _answer(sock)
    assert refused_meanwhile  # the trickle did hold the only slot
    assert (status, problem["code"]) == (408, "request-timeout")
    assert content_type == "application/problem+json"
    assert "slower than" in problem["detail"]
    assert DEADLINE_S <= elapsed < BOUND_S
    # The slot is free again: another tenant's upload goes through.
    victim.upload_model(single_input_model())
    victim.refresh()
    assert victim.model_ready


def _stalled(server: ServerThread, path: str, headers: dict[str, str], sent: bytes) -> Any:
    with _connect(server) as sock:
        sock.sendall(_head("POST", path, {**headers, "Content-Length": str(1 << 20)}) + sent)
        started = time.monotonic()
        status, content_type, problem = _answer(sock)  # the rest of the body never comes
        elapsed = time.monotonic() - started
    assert content_type == "application/problem+json"
    assert elapsed < BOUND_S
    return status, problem


def test_a_stalled_predict_body_times_out(
    server: ServerThread, party: Callable[[str], Client], policy: AttestationPolicy
) -> None:
    owner = party("owner@slow.example")
    inst = _attested(owner, "Stalled", policy)
    inst.upload_model(single_input_model())
    status, problem = _stalled(
        server,
        f"/v1/instances/{inst.id}/predict",
        {**owner._auth_headers(), "Content-Type": "application/octet-stream"},
        b"\0" * 1024,
    )
    assert (status, problem["code"]) == (408, "request-timeout")
    assert "did not arrive within" in problem["detail"]
    assert inst.predict(np.ones((1, 3), np.float32))["y"].shape == (1, 2)  # still serving


def test_a_stalled_json_body_times_out(server: ServerThread) -> None:
    status, problem = _stalled(
        server, "/v1/sessions", {"Content-Type": "application/json"}, b'{"email": "'
    )
    assert (status, problem["code"]) == (408, "request-timeout")
