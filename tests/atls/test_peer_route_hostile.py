"""Hostile bodies on ``POST /v1/atls/peer``: each a typed refusal that closes the connection.

The route runs before any credentials, for anyone who can open a TLS
connection, and reads up to a megabyte. Whatever that megabyte holds, the
answer is a problem document whose ``status`` is the HTTP status sent, never a
500 (whose traceback would land in the operator's log).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from atls_fakes import closed_by_peer, post_raw, raw_tls

from cleanroom.atls.serving import closing_refusal
from cleanroom.errors import (
    AccessDenied,
    AttestationError,
    EvidenceFormatError,
    InvalidRequest,
    PolicyViolation,
)
from cleanroom.server.runner import ServerThread

DEEP = 500_000  # one megabyte of brackets: under the proof limit, past any recursion limit
SECRET = "do-not-log-" + "s" * 64


def _proof(**changes: Any) -> bytes:
    doc: dict[str, Any] = {
        "certificate": "AAAA",
        "document": {"evidence": {}, "config": {}, "nonce": "00" * 32},
        "signature": "AAAA",
    }
    doc.update(changes)
    return json.dumps(doc).encode()


# body -> (HTTP status, problem code, a phrase of the detail)
CASES: list[tuple[str, bytes, int, str, str]] = [
    # The reported defect: deep nesting raised RecursionError, answered 500.
    ("deeply nested arrays", b"[" * DEEP + b"]" * DEEP, 400, "invalid-request", "not JSON"),
    (
        "deeply nested objects",
        b'{"a":' * (DEEP // 5) + b"1" + b"}" * (DEEP // 5),
        400,
        "invalid-request",
        "not JSON",
    ),
    (
        "deeply nested inside a proof",
        b'{"certificate": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        400,
        "invalid-request",
        "not JSON",
    ),
    ("an integer too long to read", b"[" + b"9" * 5000 + b"]", 400, "invalid-request", "not JSON"),
    ("not UTF-8", b'{"certificate": "\xff"}', 400, "invalid-request", "not JSON"),
    ("empty", b"", 400, "invalid-request", "not JSON"),
    # JSON, but not a proof: refused as evidence that does not parse.
    ("a list", b"[]", 403, "evidence-format", "certificate, document and signature"),
    ("null", b"null", 403, "evidence-format", "certificate, document and signature"),
    ("a string", json.dumps(SECRET).encode(), 403, "evidence-format", "certificate, document"),
    ("NaN members", _proof(certificate=float("nan")), 403, "evidence-format", "base64"),
    ("number members", _proof(certificate=1, signature=2), 403, "evidence-format", "base64"),
    ("document a list", _proof(document=[SECRET]), 403, "evidence-format", "evidence, config"),
    (
        "evidence a list",
        _proof(document={"evidence": [], "config": {}, "nonce": "00"}),
        403,
        "evidence-format",
        "evidence",
    ),
    (
        "nonce not hex",
        _proof(document={"evidence": {}, "config": {}, "nonce": SECRET}),
        403,
        "evidence-format",
        "hex",
    ),
    # One byte over: the server has read it all when it refuses (no reset).
    ("oversized", b"[" + b" " * (1024 * 1024 - 1) + b"]", 403, "evidence-format", "at most"),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "code", "detail"), CASES, ids=[c[0] for c in CASES]
)
def test_a_hostile_proof_is_a_typed_refusal_whose_status_agrees(
    name: str,
    body: bytes,
    status: int,
    code: str,
    detail: str,
    server: ServerThread,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING), raw_tls(server.url) as sock:
        post_raw(sock, "/v1/atls/handshake", {"nonce": "44" * 32})
        got, headers, answer = post_raw(sock, "/v1/atls/peer", body)
        assert (got, answer["code"]) == (status, code), (name, answer)
        assert answer["status"] == got
        assert detail in answer["detail"]
        assert headers.get("connection") == "close"
        assert closed_by_peer(sock)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert SECRET not in caplog.text
    if status == 403:  # the capture sees the server thread's refusals
        assert "refused a calling clean room" in caplog.text
    # The server is still up: a new connection handshakes.
    with raw_tls(server.url) as sock:
        got, _, answer = post_raw(sock, "/v1/atls/handshake", {"nonce": "55" * 32})
        assert got == 200
        assert "challenge" in answer


def test_a_refused_attestation_says_403_in_the_document_too(server: ServerThread) -> None:
    # The reviewer saw HTTP 403 carrying a document that said 502.
    with raw_tls(server.url) as sock:
        got, headers, answer = post_raw(sock, "/v1/atls/peer", _proof())
        assert got == 403
        assert answer["status"] == 403
        assert answer["code"] == "attestation-failed"
        assert "challenge" in " ".join(answer["failures"])
        assert headers.get("content-type") == "application/problem+json"


@pytest.mark.parametrize(
    ("error", "override", "status"),
    [
        (AttestationError("refused", failures=["x: y"]), 403, 403),
        (PolicyViolation("refused"), 403, 403),
        (EvidenceFormatError("refused"), 403, 403),
        (InvalidRequest("not JSON"), None, 400),
        (AccessDenied("not an upstream"), None, 403),
        (AttestationError("refused"), None, 502),
    ],
    ids=["attestation", "policy", "format", "invalid", "access", "no override"],
)
def test_a_closing_refusal_s_document_and_response_agree(
    error: Exception, override: int | None, status: int
) -> None:
    assert isinstance(error, AttestationError | InvalidRequest | AccessDenied)
    response = closing_refusal(error, status=override)
    document = json.loads(bytes(response.body))
    assert response.status_code == status
    assert document["status"] == status
    assert document["code"] == error.code
    assert response.headers["connection"] == "close"
    assert response.headers["content-type"] == "application/problem+json"
    if isinstance(error, AttestationError) and error.failures:
        assert document["failures"] == error.failures
