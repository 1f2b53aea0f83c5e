"""Certificates: signing, offline verification, and the policy gate."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from cleanroom.audit import (
    CERTIFICATE_FORMAT,
    AuditSpec,
    certificate_payload,
    key_id,
    require_current_certificate,
    run_membership_audit,
    sign_certificate,
    verify_certificate,
)
from cleanroom.audit.certificate import SigningKey, VerifyingKey
from cleanroom.audit.local import load_onnx_model
from cleanroom.errors import (
    ConfigurationError,
    EvidenceSignatureError,
    LogIntegrityError,
    PolicyDenied,
)

SpecFactory = Callable[..., dict[str, Any]]
ISSUED = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)

KEYS: dict[str, Callable[[], SigningKey]] = {
    "ES384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "Ed25519": ed25519.Ed25519PrivateKey.generate,
}


@pytest.fixture(scope="module")
def payload(task: Any, overfit_model: Path, spec_doc_module: dict[str, Any]) -> dict[str, Any]:
    spec = AuditSpec.from_json(spec_doc_module)
    predict, digest = load_onnx_model(overfit_model)
    result = run_membership_audit(spec, predict, task.members, task.nonmembers)
    return certificate_payload(result, model_digest=digest, issued_at=ISSUED)


@pytest.fixture(scope="module")
def spec_doc_module(task: Any) -> dict[str, Any]:
    return {
        "format": "cleanroom-audit-spec/v1",
        "model": {"input": "X", "output": "probabilities", "output_kind": "probabilities"},
        "datasets": {
            "members": task.members.commitment(),
            "nonmembers": task.nonmembers.commitment(),
        },
        "attacks": [
            {"name": "loss-threshold", "threshold": {"policy": "fixed", "value": 0.1}},
            {"name": "train-test-gap"},
        ],
        "confidence": 0.95,
        "delta": 0.0,
        "epsilon_claim": 0.5,
        "seed": 0,
    }


@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_sign_and_verify_round_trip(algorithm: str, payload: dict[str, Any]) -> None:
    key = KEYS[algorithm]()
    document = sign_certificate(payload, key)
    certificate = verify_certificate(document, public_key=key.public_key())
    assert certificate.algorithm == algorithm
    assert certificate.key_id == key_id(key.public_key())
    assert certificate.payload == payload
    assert certificate.verdict == "VIOLATION"
    assert certificate.issued_at == ISSUED
    assert certificate.epsilon_lower_bound == payload["epsilon_lower_bound"]["epsilon"]
    assert certificate.ceiling >= certificate.epsilon_lower_bound
    assert payload["format"] == CERTIFICATE_FORMAT
    # The estimate travels labelled as an estimate, next to the bound.
    attack = payload["attacks"][0]["epsilon_lower_bound"]
    assert attack["kind"] == "lower-bound"
    assert attack["estimate"]["kind"] == "bayesian-estimate"


def test_es384_signature_is_fixed_width_r_s(payload: dict[str, Any]) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    doc = json.loads(sign_certificate(payload, key))
    raw = base64.urlsafe_b64decode(doc["signature"]["value"] + "==")
    assert len(raw) == 96  # RFC 7518 §3.4: 48-byte r ‖ 48-byte s


def _flip_signature_bit(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.urlsafe_b64decode(doc["signature"]["value"] + "=="))
    raw[5] ^= 1
    doc["signature"]["value"] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def _truncate_signature(doc: dict[str, Any]) -> None:
    doc["signature"]["value"] = doc["signature"]["value"][:-4]


MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("epsilon lowered", lambda d: d["certificate"]["epsilon_lower_bound"].update(epsilon=0.0)),
    ("verdict flipped", lambda d: d["certificate"].update(verdict="CONSISTENT")),
    ("ceiling raised", lambda d: d["certificate"].update(ceiling=99.0)),
    ("model swapped", lambda d: d["certificate"].update(model_digest="sha256:" + "1" * 64)),
    ("time moved", lambda d: d["certificate"].update(issued_at="2030-01-01T00:00:00Z")),
    ("member added", lambda d: d["certificate"].update(note="fine")),
    (
        "estimate passed off as the bound",
        lambda d: d["certificate"]["epsilon_lower_bound"].update(kind="bayesian-estimate"),
    ),
    ("format changed", lambda d: d["certificate"].update(format="cleanroom-audit-certificate/v2")),
    ("signature bit flipped", _flip_signature_bit),
    ("signature truncated", _truncate_signature),
    ("signature not base64", lambda d: d["signature"].update(value="!!!")),
    ("algorithm relabelled", lambda d: d["signature"].update(algorithm="Ed25519")),
    ("key id replaced", lambda d: d["signature"].update(key_id="sha256:" + "2" * 64)),
    ("signature block extended", lambda d: d["signature"].update(x5c="...")),
    ("signature removed", lambda d: d.pop("signature")),
    ("certificate removed", lambda d: d.pop("certificate")),
    ("unknown top-level member", lambda d: d.update(comment="trust me")),
    ("body not an object", lambda d: d.update(certificate=[1])),
]


@pytest.mark.parametrize(("name", "mutate"), MUTATIONS)
def test_tampering_is_refused(
    name: str, mutate: Callable[[dict[str, Any]], None], payload: dict[str, Any]
) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    doc = json.loads(sign_certificate(payload, key))
    mutate(doc)
    with pytest.raises(LogIntegrityError):
        verify_certificate(json.dumps(doc).encode(), public_key=key.public_key())


@pytest.mark.parametrize(
    ("name", "document"),
    [("not json", b"{"), ("not utf-8", b"\xff"), ("NaN", b'{"certificate": NaN}')],
)
def test_unparseable_documents_are_refused(name: str, document: bytes) -> None:
    with pytest.raises(LogIntegrityError):
        verify_certificate(document, public_key=ed25519.Ed25519PrivateKey.generate().public_key())


def test_a_repeated_name_is_refused_though_the_signature_holds(payload: dict[str, Any]) -> None:
    """A reader keeping the first of two names would see another verdict than the signed one."""
    key = ed25519.Ed25519PrivateKey.generate()
    document = sign_certificate(payload, key)
    assert document.startswith(b'{"certificate":{')
    shadow = b'{"certificate":{"verdict":"CONSISTENT",' + document[len(b'{"certificate":{') :]
    assert json.loads(shadow)["certificate"] == json.loads(document)["certificate"]
    with pytest.raises(LogIntegrityError, match="repeats a name"):
        verify_certificate(shadow, public_key=key.public_key())


def test_wrong_trusted_key_is_refused(payload: dict[str, Any]) -> None:
    document = sign_certificate(payload, ec.generate_private_key(ec.SECP384R1()))
    for other in (ec.generate_private_key(ec.SECP384R1()), ed25519.Ed25519PrivateKey.generate()):
        with pytest.raises(LogIntegrityError):
            verify_certificate(document, public_key=other.public_key())


def test_a_signed_but_malformed_body_is_refused(payload: dict[str, Any]) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    body = copy.deepcopy(payload)
    del body["ceiling"]
    with pytest.raises(LogIntegrityError, match="ceiling"):
        verify_certificate(sign_certificate(body, key), public_key=key.public_key())


def test_signing_refusals(payload: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        sign_certificate(payload, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigurationError):
        sign_certificate({"format": "other"}, ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ConfigurationError):
        sign_certificate({**payload, "bad": float("nan")}, ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ConfigurationError):
        verify_certificate(b"{}")


class _FakeEvidence:
    """Test double for attestation: evidence binds a key by its SPKI hash.

    A real resolver verifies the TEE report and checks that REPORT_DATA
    commits to this key; here a trusted table stands in for the hardware root.
    """

    def __init__(self, attested: VerifyingKey) -> None:
        self.attested = attested
        self.bound = hashlib.sha256(
            attested.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).hexdigest()

    def evidence(self) -> dict[str, Any]:
        return {"report_data": self.bound}

    def __call__(self, evidence: Mapping[str, Any]) -> VerifyingKey:
        if evidence.get("report_data") != self.bound:
            raise EvidenceSignatureError("evidence does not verify")
        return self.attested


def test_verify_against_evidence(payload: dict[str, Any]) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    attestation = _FakeEvidence(key.public_key())
    document = sign_certificate(payload, key, evidence=attestation.evidence())
    certificate = verify_certificate(document, evidence_key=attestation)
    assert certificate.key_id == key_id(key.public_key())

    # The evidence block is outside the signature, so swapping it must fail
    # in the resolver (here) or on the key binding.
    doc = json.loads(document)
    doc["evidence"] = {"report_data": "0" * 64}
    with pytest.raises(EvidenceSignatureError):
        verify_certificate(json.dumps(doc).encode(), evidence_key=attestation)
    # Evidence for another key: the signature's key id no longer matches.
    impostor = ec.generate_private_key(ec.SECP384R1())
    other = _FakeEvidence(impostor.public_key())
    doc["evidence"] = other.evidence()
    with pytest.raises(LogIntegrityError):
        verify_certificate(json.dumps(doc).encode(), evidence_key=other)
    # No evidence at all.
    with pytest.raises(LogIntegrityError):
        verify_certificate(sign_certificate(payload, key), evidence_key=attestation)


@pytest.fixture(scope="module")
def certificate(payload: dict[str, Any]) -> Any:
    key = ed25519.Ed25519PrivateKey.generate()
    return verify_certificate(sign_certificate(payload, key), public_key=key.public_key())


def _gate(certificate: Any, **overrides: Any) -> None:
    args: dict[str, Any] = {
        "spec_digest": certificate.spec_digest,
        "model_digest": certificate.model_digest,
        "verdict": "VIOLATION",
        "now": ISSUED + timedelta(hours=1),
        "max_age": timedelta(days=1),
    }
    args.update(overrides)
    require_current_certificate(certificate, **args)


def test_policy_gate_accepts_a_current_matching_certificate(certificate: Any) -> None:
    _gate(certificate)


@pytest.mark.parametrize(
    ("name", "overrides", "reason"),
    [
        ("other spec", {"spec_digest": "sha256:" + "a" * 64}, "spec_digest"),
        ("other model", {"model_digest": "sha256:" + "b" * 64}, "model_digest"),
        ("wrong verdict", {"verdict": "CONSISTENT"}, "verdict"),
        ("too old", {"now": ISSUED + timedelta(days=2)}, "older"),
        ("from the future", {"now": ISSUED - timedelta(minutes=1)}, "future"),
    ],
)
def test_policy_gate_refusals(
    certificate: Any, name: str, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(PolicyDenied, match=reason):
        _gate(certificate, **overrides)


def test_policy_gate_reports_every_failure(certificate: Any) -> None:
    with pytest.raises(PolicyDenied) as caught:
        _gate(
            certificate,
            spec_digest="sha256:" + "a" * 64,
            verdict="CONSISTENT",
            now=ISSUED + timedelta(days=9),
        )
    message = caught.value.message
    assert "spec_digest" in message
    assert "verdict" in message
    assert "older" in message
