"""An audit certificate is verified as one of *this* instance, as this party attested it.

A genuine certificate of another instance (or of this instance's older model
or another audit spec) verifies against the evidence it carries. The SDK
therefore verifies every certificate it returns, from ``run_audit`` and from
``audit_certificate``, against the ``instance`` block of the configuration it
attested itself, under its own attestation policy; without a validated
attestation it verifies nothing and returns nothing.

The certificate verifier is replaced by a recorder: what is under test is
what the SDK hands it (the certificate checks themselves are tested in
tests/audit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

import cleanroom.audit
from cleanroom import AttestationPolicy, Client, ModelFormat
from cleanroom.client.instance import Instance
from cleanroom.errors import AttestationError

Party = Callable[[str], Client]
OWNER = "olivia@certificates.example"
DOCUMENT = b'{"certificate": "as served"}'

CALLS = [
    pytest.param(lambda inst: inst.audit_certificate(), id="audit_certificate"),
    pytest.param(lambda inst: inst.run_audit(), id="run_audit"),
]


def _serving_a_certificate(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    original = client.request

    def request(method: str, path: str, **kwargs: Any) -> httpx.Response:
        if "/audit" in path:
            return httpx.Response(200, content=DOCUMENT)
        return original(method, path, **kwargs)

    monkeypatch.setattr(client, "request", request)


@pytest.mark.parametrize("call", CALLS)
def test_the_certificate_is_checked_against_the_attested_instance(
    party: Party,
    policy: AttestationPolicy,
    monkeypatch: pytest.MonkeyPatch,
    call: Callable[[Instance], Any],
) -> None:
    client = party(OWNER)
    inst = client.create_instance("Certified", ModelFormat.ONNX)
    inst.validate_attestation(policy)
    attested = inst.attested_config
    assert attested is not None
    seen: list[tuple[bytes, AttestationPolicy, Any]] = []

    def verify(document: bytes, policy: AttestationPolicy, **kwargs: Any) -> str:
        seen.append((document, policy, kwargs.get("instance")))
        return "verified"

    monkeypatch.setattr(cleanroom.audit, "verify_certificate_with_evidence", verify)
    _serving_a_certificate(client, monkeypatch)
    assert call(inst) == "verified"
    assert seen == [(DOCUMENT, policy, attested["instance"])]
    assert attested["instance"]["id"] == inst.id


@pytest.mark.parametrize("call", CALLS)
def test_no_certificate_without_a_validated_attestation(
    party: Party, monkeypatch: pytest.MonkeyPatch, call: Callable[[Instance], Any]
) -> None:
    client = party(OWNER)
    inst = client.create_instance("Certified", ModelFormat.ONNX)
    _serving_a_certificate(client, monkeypatch)
    with pytest.raises(AttestationError, match="not been validated"):
        call(inst)
