"""Predict bodies held in memory share one budget across requests."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cleanroom import Client, ModelFormat
from cleanroom.errors import ConfigurationError, ServiceUnavailable
from cleanroom.server.body_budget import BodyBudget
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings

PASSWORD = "correct horse battery staple"
BUDGET = 1000


def test_the_budget_is_shared_and_given_back() -> None:
    budget = BodyBudget(10)
    with budget.hold() as first:
        first.take(6)
        with budget.hold() as second, pytest.raises(ServiceUnavailable, match="memory budget"):
            second.take(5)
        assert budget.held == 6  # the refused request took nothing
    assert budget.held == 0
    with budget.hold() as again:
        again.take(10)
    with pytest.raises(ConfigurationError):
        BodyBudget(0)


def _post(
    url: str, headers: dict[str, str], path: str, declared: int, sent: bytes
) -> socket.socket:
    """A raw POST declaring *declared* bytes of body and sending *sent* of them."""
    host, port = url.split("//")[1].rsplit(":", 1)
    head = [
        f"POST {path} HTTP/1.1",
        "Host: cleanroom",
        "Content-Type: application/octet-stream",
        f"Content-Length: {declared}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + sent)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict[str, object]]:
    answer = b""
    while b"}" not in answer:
        piece = sock.recv(65536)
        assert piece, "the server closed the connection without answering"
        answer += piece
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_a_body_past_the_shared_budget_is_refused_as_it_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ServerSettings(data_dir=tmp_path, max_buffered_request_bytes=BUDGET)
    with ServerThread(settings) as server:
        owner = Client(server.url)
        owner.sign_up("owner@lender.example", PASSWORD)
        owner.sign_in("owner@lender.example", PASSWORD)
        instance = owner.create_instance("Budget", ModelFormat.ONNX, [])
        path = f"/v1/instances/{instance.id}/predict"
        headers = owner._auth_headers()
        # Let bodies be read for this model-less instance; the service refuses them after.
        check: Callable[..., None] = lambda *args: None  # noqa: E731
        monkeypatch.setattr(server.service, "check_can_predict", check)

        slow = _post(server.url, headers, path, 800, b"x" * 700)  # holds 700 bytes
        time.sleep(0.3)
        with _post(server.url, headers, path, 600, b"y" * 600) as refused:
            status, problem = _answer(refused)
        assert (status, problem["code"]) == (503, "service-unavailable")
        slow.close()  # its bytes are given back once the server sees it gone
        deadline = time.monotonic() + 10
        while True:
            with _post(server.url, headers, path, 600, b"z" * 600) as again:
                status, problem = _answer(again)
            if status != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        # Past the budget, the service answers: this instance has no model.
        assert (status, problem["code"]) == (409, "model-not-ready")
        owner.close()
