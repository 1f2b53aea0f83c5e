"""Bodies too large, refusals before reading, and unexpected errors that leave no trace."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from tests.models import single_input_model

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.errors import Error
from cleanroom.server.guard import MAX_JSON_BODY_BYTES
from cleanroom.server.runner import ServerThread

MARKER = "plaintext-the-log-must-never-see"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture
def server_logs() -> Iterator[_Records]:
    records = _Records()
    loggers = [logging.getLogger(name) for name in ("uvicorn", "cleanroom", "")]
    for logger in loggers:
        logger.addHandler(records)
    yield records
    for logger in loggers:
        logger.removeHandler(records)


@pytest.mark.parametrize("framing", ["declared length", "chunked"])
@pytest.mark.parametrize(
    ("path", "authenticated"),
    [
        ("/v1/sessions", False),
        ("/v1/accounts", False),
        ("/v1/instances", True),
    ],
)
def test_json_bodies_have_a_limit(
    server: ServerThread,
    party: Callable[[str], Client],
    path: str,
    authenticated: bool,
    framing: str,
) -> None:
    headers = party("limits@bank.example")._auth_headers() if authenticated else {}
    body = b'{"email": "' + b"a" * (MAX_JSON_BODY_BYTES + 1) + b'"}'
    parts = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    response = httpx.post(
        f"{server.url}{path}",
        content=body if framing == "declared length" else iter(parts),
        headers={**headers, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload-too-large"
    assert httpx.get(f"{server.url}/v1/health").status_code == 200


@pytest.mark.parametrize(
    ("instance", "status", "code"),
    [
        ("000000000000000000000000", 404, "not-found"),
        ("named-elsewhere", 403, "access-denied"),
        ("no model yet", 409, "model-not-ready"),
    ],
)
def test_predict_refuses_before_reading_the_body(
    server: ServerThread,
    party: Callable[[str], Client],
    policy: AttestationPolicy,
    instance: str,
    status: int,
    code: str,
) -> None:
    stranger = party("stranger@elsewhere.example")
    if instance == "named-elsewhere":
        instance = party("owner@lender.example").create_instance("Else", ModelFormat.ONNX, []).id
    if instance == "no model yet":
        owner = party("owner@lender.example")
        named = [stranger.email or ""]
        instance = owner.create_instance("Empty", ModelFormat.ONNX, named).id
    # Only the headers are sent, declaring a body (under the limit) that never comes:
    # the refusal can only arrive if the body is not read first.
    host, port = server.url.split("//")[1].rsplit(":", 1)
    head = [
        f"POST /v1/instances/{instance}/predict HTTP/1.1",
        "Host: cleanroom",
        "Content-Type: application/octet-stream",
        f"Content-Length: {server.service.settings.max_request_bytes}",
        *(f"{k}: {v}" for k, v in stranger._auth_headers().items()),
    ]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        answer = b""
        while b"}" not in answer:  # the problem document's end; a timeout fails the test
            piece = sock.recv(65536)
            assert piece, "the server closed the connection without answering"
            answer += piece
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert int(status_line.split()[1]) == status
    assert b"content-type: application/problem+json" in headers.lower()
    assert json.loads(body)["code"] == code


def test_an_unexpected_error_is_opaque_and_logs_its_type_only(
    server: ServerThread,
    party: Callable[[str], Client],
    policy: AttestationPolicy,
    monkeypatch: pytest.MonkeyPatch,
    server_logs: _Records,
) -> None:
    owner = party("owner@lender.example").create_instance("Oops", ModelFormat.ONNX, [])
    owner.validate_attestation(policy)
    owner.set_secret(Secret())
    owner.upload_model(single_input_model())

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"cannot reshape {MARKER}")

    monkeypatch.setattr(server.service, "predict", broken)
    with pytest.raises(Error, match="internal error") as caught:
        owner.predict(np.ones((1, 3), np.float32))
    assert type(caught.value) is Error  # code "error", status 500
    assert MARKER not in str(caught.value)
    logged = "\n".join(server_logs.lines)
    assert "unexpected ValueError while serving a request" in logged
    assert MARKER not in logged
    assert "Traceback" not in logged
    monkeypatch.undo()
    assert owner.predict(np.ones((1, 3), np.float32))["y"].shape == (1, 2)
