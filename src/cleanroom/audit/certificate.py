"""Audit certificates: canonical JSON, signed by the clean room's attested key.

Document layout (JSON)::

    {
      "certificate": { "format": "cleanroom-audit-certificate/v1",
                       "issued_at": "2026-11-21T23:00:00Z",
                       "model_digest": "sha256:…", "spec_digest": "sha256:…",
                       "datasets": …, "epsilon_lower_bound": …, "ceiling": …,
                       "verdict": "CONSISTENT" | "VIOLATION", "attacks": […], … },
      "signature":   { "algorithm": "ES384" | "Ed25519",
                       "key_id": "sha256:<SHA-256 of the DER SubjectPublicKeyInfo>",
                       "value": "<base64url, no padding>" },
      "evidence":    { … }            (optional; attestation evidence binding the key)
    }

The signature covers ``b"cleanroom-audit-certificate/v1\\n"`` followed by the
RFC 8785 canonical JSON of ``certificate``; the prefix keeps a certificate
signature from ever being valid for another message signed by the same key.
ES384 is ECDSA over P-384 with SHA-384, its value the fixed-width r ‖ s of
RFC 7518 §3.4. Verification raises; it never returns a bool.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from cleanroom.audit._canonical import canonical_json, parse_json
from cleanroom.audit.membership import AuditResult
from cleanroom.errors import ConfigurationError, InvalidRequest, LogIntegrityError, PolicyDenied

__all__ = [
    "CERTIFICATE_FORMAT",
    "Certificate",
    "EvidenceKeyResolver",
    "SigningKey",
    "VerifyingKey",
    "certificate_payload",
    "key_id",
    "require_current_certificate",
    "sign_certificate",
    "signing_message",
    "verify_certificate",
]

CERTIFICATE_FORMAT = "cleanroom-audit-certificate/v1"
_SIGNING_PREFIX = CERTIFICATE_FORMAT.encode("ascii") + b"\n"
_P384_COORDINATE_BYTES = 48
_VERDICTS = ("CONSISTENT", "VIOLATION")

SigningKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
VerifyingKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
EvidenceKeyResolver = Callable[[Mapping[str, Any]], VerifyingKey]
"""Verify attestation evidence and return the signing key it binds; raise if it does not verify."""


def key_id(public_key: VerifyingKey) -> str:
    """``sha256:`` of the key's DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ConfigurationError("certificate times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def certificate_payload(
    result: AuditResult, *, model_digest: str, issued_at: datetime
) -> dict[str, Any]:
    """The certificate body for *result* about the model whose digest is *model_digest*."""
    body: dict[str, Any] = dict(result.to_json())
    body.pop("kind", None)
    body["format"] = CERTIFICATE_FORMAT
    body["audit"] = result.kind
    body["model_digest"] = model_digest
    body["issued_at"] = _rfc3339(issued_at)
    return body


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise LogIntegrityError("certificate signature is not base64url") from None


def _algorithm_for(key: SigningKey | VerifyingKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP384R1
    ):
        return "ES384"
    raise ConfigurationError("certificate keys must be Ed25519 or ECDSA P-384")


def signing_message(payload: Mapping[str, Any]) -> bytes:
    """The bytes a certificate signature covers: the format prefix and the canonical body."""
    return _SIGNING_PREFIX + canonical_json(dict(payload))


def sign_certificate(
    payload: Mapping[str, Any],
    private_key: SigningKey,
    *,
    evidence: Mapping[str, Any] | None = None,
) -> bytes:
    """The signed certificate document (canonical JSON bytes)."""
    if payload.get("format") != CERTIFICATE_FORMAT:
        raise ConfigurationError("not a certificate payload")
    algorithm = _algorithm_for(private_key)
    try:
        message = signing_message(payload)
    except InvalidRequest as exc:
        raise ConfigurationError(f"certificate payload is not canonical JSON: {exc}") from None
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        signature = private_key.sign(message)
    else:
        der = private_key.sign(message, ec.ECDSA(hashes.SHA384()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(_P384_COORDINATE_BYTES, "big") + s.to_bytes(
            _P384_COORDINATE_BYTES, "big"
        )
    document: dict[str, Any] = {
        "certificate": dict(payload),
        "signature": {
            "algorithm": algorithm,
            "key_id": key_id(private_key.public_key()),
            "value": _b64url(signature),
        },
    }
    if evidence is not None:
        document["evidence"] = dict(evidence)
    # The envelope need not be canonical (the signature covers the canonical
    # body only) and attestation collateral may hold integers beyond I-JSON.
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Certificate:
    """A certificate whose signature has been verified."""

    payload: Mapping[str, Any]
    key_id: str
    algorithm: str

    @property
    def spec_digest(self) -> str:
        return str(self.payload["spec_digest"])

    @property
    def model_digest(self) -> str:
        return str(self.payload["model_digest"])

    @property
    def verdict(self) -> str:
        return str(self.payload["verdict"])

    @property
    def epsilon_lower_bound(self) -> float:
        return float(self.payload["epsilon_lower_bound"]["epsilon"])

    @property
    def ceiling(self) -> float:
        return float(self.payload["ceiling"])

    @property
    def issued_at(self) -> datetime:
        return _parse_time(str(self.payload["issued_at"]))


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise LogIntegrityError("certificate issued_at is not an RFC 3339 UTC time") from None
    return moment.replace(tzinfo=UTC)


def _check_payload(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise LogIntegrityError("certificate body must be an object")
    problems: list[str] = []
    if payload.get("format") != CERTIFICATE_FORMAT:
        problems.append(f"format is not {CERTIFICATE_FORMAT}")
    for name in ("spec_digest", "model_digest"):
        value = payload.get(name)
        if not isinstance(value, str) or not value.startswith("sha256:"):
            problems.append(f"{name} is not a sha256 digest")
    if payload.get("verdict") not in _VERDICTS:
        problems.append("verdict is not CONSISTENT or VIOLATION")
    bound = payload.get("epsilon_lower_bound")
    if not isinstance(bound, dict) or not _is_number(bound.get("epsilon")):
        problems.append("epsilon_lower_bound.epsilon is missing")
    elif bound.get("kind") != "lower-bound":
        problems.append("epsilon_lower_bound is not labelled a lower bound")
    if not _is_number(payload.get("ceiling")):
        problems.append("ceiling is missing")
    if not isinstance(payload.get("issued_at"), str):
        problems.append("issued_at is missing")
    if problems:
        raise LogIntegrityError("malformed certificate: " + "; ".join(problems), failures=problems)
    _parse_time(payload["issued_at"])
    return payload


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _verify_signature(key: VerifyingKey, algorithm: str, signature: bytes, message: bytes) -> None:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            if algorithm != "Ed25519" or len(signature) != 64:
                raise LogIntegrityError("certificate signature does not match the key")
            key.verify(signature, message)
            return
        if algorithm != "ES384" or len(signature) != 2 * _P384_COORDINATE_BYTES:
            raise LogIntegrityError("certificate signature does not match the key")
        r = int.from_bytes(signature[:_P384_COORDINATE_BYTES], "big")
        s = int.from_bytes(signature[_P384_COORDINATE_BYTES:], "big")
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise LogIntegrityError("certificate signature does not verify") from None


def verify_certificate(
    document: bytes,
    *,
    public_key: VerifyingKey | None = None,
    evidence_key: EvidenceKeyResolver | None = None,
) -> Certificate:
    """Verify a certificate offline against a trusted key, or against its evidence.

    Exactly one of *public_key* (a key the verifier already trusts) and
    *evidence_key* (verifies the document's ``evidence`` and returns the key
    it binds) must be given. Raises :class:`LogIntegrityError` when anything
    fails.
    """
    if (public_key is None) == (evidence_key is None):
        raise ConfigurationError("give exactly one of a trusted public key or an evidence verifier")
    doc = parse_json(document, "the certificate", LogIntegrityError)
    if not isinstance(doc, dict) or set(doc) - {"certificate", "signature", "evidence"}:
        raise LogIntegrityError("the certificate document has unexpected members")
    signature = doc.get("signature")
    if not isinstance(signature, dict) or set(signature) != {"algorithm", "key_id", "value"}:
        raise LogIntegrityError("the certificate signature block is malformed")
    if not all(isinstance(signature[k], str) for k in signature):
        raise LogIntegrityError("the certificate signature block is malformed")
    trusted: VerifyingKey
    if evidence_key is not None:
        evidence = doc.get("evidence")
        if not isinstance(evidence, dict):
            raise LogIntegrityError("the certificate carries no evidence to verify its key against")
        trusted = evidence_key(evidence)
    elif public_key is not None:
        trusted = public_key
    else:  # unreachable: exactly one was checked above
        raise ConfigurationError("no trusted key")
    algorithm = _algorithm_for(trusted)
    if signature["algorithm"] != algorithm:
        raise LogIntegrityError("certificate signature algorithm does not match the trusted key")
    if signature["key_id"] != key_id(trusted):
        raise LogIntegrityError("certificate was signed by a different key")
    payload = _check_payload(doc.get("certificate"))
    try:
        message = signing_message(payload)
    except InvalidRequest:
        raise LogIntegrityError("the certificate body has no canonical form") from None
    _verify_signature(trusted, algorithm, _unb64url(signature["value"]), message)
    return Certificate(payload=payload, key_id=signature["key_id"], algorithm=algorithm)


def require_current_certificate(
    certificate: Certificate,
    *,
    spec_digest: str,
    model_digest: str,
    verdict: str = "CONSISTENT",
    now: datetime,
    max_age: timedelta,
) -> None:
    """The policy gate: raise :class:`PolicyDenied` unless *certificate* is current and fits.

    Every failed condition is reported, not just the first.
    """
    failures: list[str] = []
    if certificate.spec_digest != spec_digest:
        failures.append("spec_digest differs from the attested audit spec")
    if certificate.model_digest != model_digest:
        failures.append("model_digest differs from the served model")
    if certificate.verdict != verdict:
        failures.append(f"verdict is {certificate.verdict}, required {verdict}")
    issued = certificate.issued_at
    if issued > now:
        failures.append("issued_at is in the future")
    elif now - issued > max_age:
        failures.append("certificate is older than the allowed age")
    if failures:
        raise PolicyDenied("no current audit certificate: " + "; ".join(failures))
