"""Bodies too large, refusals before reading, and unexpected errors that leave no trace."""

from __future__ import annotations

import logging
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
    [("000000000000000000000000", 404, "not-found"), ("named-elsewhere", 403, "access-denied")],
)
def test_predict_refuses_a_stranger_before_reading_the_body(
    server: ServerThread,
    party: Callable[[str], Client],
    policy: AttestationPolicy,
    instance: str,
    status: int,
    code: str,
) -> None:
    if instance == "named-elsewhere":
        instance = party("owner@lender.example").create_instance("Else", ModelFormat.ONNX, []).id
    stranger = party("stranger@elsewhere.example")
    response = httpx.post(
        f"{server.url}/v1/instances/{instance}/predict",
        content=b"\0" * (1 << 20),
        headers=stranger._auth_headers(),
    )
    assert (response.status_code, response.json()["code"]) == (status, code)


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
