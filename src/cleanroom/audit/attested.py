"""Certificates bound to attestation evidence, verified offline.

A certificate issued inside a clean room carries, outside its signature, the
attestation document the room produced for it (the same shape as
``GET /v1/instances/{id}/attestation`` returns)::

    "evidence": {"evidence": {…TEE report…}, "config": {…attested configuration…},
                 "hpke_public_key": "<base64>", "nonce": "<hex>"}

Verification, in order:

1. the TEE evidence is authentic and satisfies the verifier's attestation
   policy, and its REPORT_DATA commits to the HPKE key, the nonce and the
   configuration document (``cleanroom.crypto.binding``);
2. the certificate is signed by ``config.keys.signing``, the room's attested
   signing key;
3. the nonce is :func:`certificate_nonce` of this certificate's body, so the
   evidence was produced for this certificate and cannot be transplanted;
4. the attested configuration names the certificate's audit spec
   (``config.instance.audit_spec_digest``) and model
   (``config.instance.model_digest``).

Any failure raises; every mismatch of steps 3-4 is listed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from cleanroom.attestation import AttestationPolicy, Evidence, verify_evidence
from cleanroom.audit.certificate import (
    Certificate,
    VerifyingKey,
    signing_message,
    verify_certificate,
)
from cleanroom.crypto.binding import config_digest, report_data
from cleanroom.errors import EvidenceFormatError, InvalidRequest, LogIntegrityError

__all__ = ["certificate_nonce", "verify_certificate_with_evidence"]


def certificate_nonce(payload: Mapping[str, Any]) -> bytes:
    """The attestation nonce for a certificate body: SHA-256 of what its signature covers."""
    try:
        return hashlib.sha256(signing_message(payload)).digest()
    except InvalidRequest:
        raise LogIntegrityError("the certificate body has no canonical form") from None


def _signing_key(config: Mapping[str, Any]) -> VerifyingKey:
    keys = config.get("keys")
    pem = keys.get("signing") if isinstance(keys, Mapping) else None
    if not isinstance(pem, str):
        raise LogIntegrityError("the attested configuration names no signing key")
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise LogIntegrityError("the attested signing key is not a PEM public key") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):
        return key
    raise LogIntegrityError("the attested signing key is not Ed25519 or ECDSA P-384")


def verify_certificate_with_evidence(
    document: bytes,
    policy: AttestationPolicy,
    *,
    at: datetime | None = None,
    instance: Mapping[str, Any] | None = None,
) -> Certificate:
    """Verify a certificate against the attestation evidence it carries (module docstring).

    *instance* is the ``instance`` block of a configuration the caller attested
    itself: the certificate must then be of that instance, its model and its
    audit spec (not a genuine certificate of another instance or an older model).
    """
    seen: dict[str, Any] = {}

    def attested_key(block: Mapping[str, Any]) -> VerifyingKey:
        try:
            evidence = Evidence.from_json(block["evidence"])
            config = block["config"]
            hpke = base64.b64decode(block["hpke_public_key"], validate=True)
            nonce = bytes.fromhex(block["nonce"])
        except (KeyError, TypeError, ValueError):
            raise EvidenceFormatError(
                "the certificate's attestation document is malformed"
            ) from None
        if not isinstance(config, dict):
            raise EvidenceFormatError("the attested configuration is not an object")
        expected = report_data(
            hpke_public_key=hpke, nonce=nonce, config_digest=config_digest(config)
        )
        verify_evidence(evidence, policy, report_data=expected, at=at)
        seen["config"], seen["nonce"] = config, nonce
        return _signing_key(config)

    certificate = verify_certificate(document, evidence_key=attested_key)
    config: dict[str, Any] = seen["config"]
    carried = config.get("instance")
    carried = carried if isinstance(carried, Mapping) else {}
    failures: list[str] = []
    if seen["nonce"] != certificate_nonce(certificate.payload):
        failures.append("nonce: the evidence was not produced for this certificate")
    attested_spec = carried.get("audit_spec_digest")
    if attested_spec != certificate.spec_digest:
        failures.append(
            f"instance.audit_spec_digest: got {attested_spec!r}, "
            f"expected {certificate.spec_digest!r}"
        )
    attested_model = carried.get("model_digest")
    if attested_model != certificate.model_digest:
        failures.append(
            f"instance.model_digest: got {attested_model!r}, expected {certificate.model_digest!r}"
        )
    if instance is not None:
        for field in ("id", "model_digest", "audit_spec_digest"):
            mine, theirs = _instance_field(instance, field), carried.get(field)
            if mine != theirs:
                failures.append(
                    f"instance.{field}: the certificate is for {theirs!r}, "
                    f"this instance attested {mine!r}"
                )
    if failures:
        raise LogIntegrityError(
            "the certificate does not match the attested configuration: " + "; ".join(failures),
            failures=failures,
        )
    return certificate


def _instance_field(block: Any, field: str) -> Any:
    """``block[field]`` of an attested ``instance`` block, or ``None``."""
    return block.get(field) if isinstance(block, Mapping) else None
