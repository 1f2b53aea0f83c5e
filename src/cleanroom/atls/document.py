"""The attestation document exchanged over an attested-TLS session, and its check.

A document is the evidence, the configuration document REPORT_DATA commits
to, and the nonce it answers. The configuration names the TLS key
(``keys.tls_spki_sha256``, :func:`cleanroom.crypto.binding.tls_key_digest`)
and, under ``atls``, the role the document plays:

``certificate``
    embedded in the certificate's CMW extension; informative only, never
    accepted alone (it is replayable for the certificate's lifetime);
``server``
    the answer to a client's fresh nonce on one TLS connection;
``client``
    a calling clean room's answer to the callee's challenge on one TLS
    connection; ``atls.peer_tls_spki_sha256`` names the callee's TLS key as
    the caller saw it on that connection.

See docs/attested-tls.md for the protocol and its threat model.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cleanroom.attestation import AttestationPolicy, Evidence, VerifiedEvidence, verify_evidence
from cleanroom.attestation.fetch import EvidenceFetchers
from cleanroom.crypto.binding import (
    TLS_SPKI_KEY,
    canonical_json,
    config_digest,
    report_data,
    tls_key_digest,
)
from cleanroom.errors import ConfigurationError, EvidenceFormatError, PolicyViolation

__all__ = [
    "CONFIG_PURPOSE",
    "ROLES",
    "AttestationDocument",
    "verify_document",
]

CONFIG_PURPOSE = "cleanroom/v1 attested-tls"
ROLES = ("certificate", "server", "client")
NONCE_MIN, NONCE_MAX = 16, 64
_KEYS = frozenset({"evidence", "config", "nonce"})


@dataclass(frozen=True)
class AttestationDocument:
    evidence: Evidence
    config: Mapping[str, Any]
    nonce: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "evidence": self.evidence.to_json(),
            "config": dict(self.config),
            "nonce": self.nonce.hex(),
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, doc: object) -> AttestationDocument:
        if not isinstance(doc, Mapping) or set(doc) != _KEYS:
            raise EvidenceFormatError(
                "an attestation document is an object with evidence, config and nonce"
            )
        config, nonce_hex = doc["config"], doc["nonce"]
        if not isinstance(config, Mapping):
            raise EvidenceFormatError("the attestation document's config must be an object")
        if not isinstance(nonce_hex, str):
            raise EvidenceFormatError("the attestation document's nonce must be hex")
        try:
            nonce = bytes.fromhex(nonce_hex)
        except ValueError as exc:
            raise EvidenceFormatError("the attestation document's nonce must be hex") from exc
        return cls(Evidence.from_json(doc["evidence"]), dict(config), nonce)

    @classmethod
    def from_bytes(cls, data: bytes) -> AttestationDocument:
        try:
            return cls.from_json(json.loads(data))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EvidenceFormatError("the attestation document is not JSON") from exc

    # what the configuration says ------------------------------------------------

    def _section(self, name: str) -> Mapping[str, Any]:
        section = self.config.get(name)
        return section if isinstance(section, Mapping) else {}

    @property
    def hpke_public_key(self) -> bytes:
        value = self._section("keys").get("hpke")
        if not isinstance(value, str):
            raise EvidenceFormatError("the attested configuration has no keys.hpke")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EvidenceFormatError("the attested keys.hpke is not base64") from exc

    @property
    def role(self) -> object:
        return self._section("atls").get("role")

    def expected_report_data(self, nonce: bytes) -> bytes:
        """REPORT_DATA for *nonce* (the verifier's own, never the document's)."""
        return report_data(
            hpke_public_key=self.hpke_public_key,
            nonce=nonce,
            config_digest=config_digest(self.config),
        )


def _binding_failures(
    doc: AttestationDocument,
    *,
    nonce: bytes,
    role: str,
    tls_spki_der: bytes,
    peer_spki_der: bytes | None,
) -> list[str]:
    failures: list[str] = []
    if doc.config.get("purpose") != CONFIG_PURPOSE:
        failures.append(f"purpose: got {doc.config.get('purpose')!r}, expected {CONFIG_PURPOSE!r}")
    if doc.role != role:
        failures.append(f"atls.role: got {doc.role!r}, expected {role!r}")
    if doc.nonce != nonce:
        failures.append("nonce: the document answers another nonce (replayed or relayed)")
    want = tls_key_digest(tls_spki_der).hex()
    got = doc._section("keys").get(TLS_SPKI_KEY)
    if got != want:
        failures.append(
            f"keys.{TLS_SPKI_KEY}: got {got!r}, expected {want!r}"
            " (the attested TLS key is not the key of this connection)"
        )
    if peer_spki_der is not None:
        want_peer = tls_key_digest(peer_spki_der).hex()
        got_peer = doc._section("atls").get("peer_tls_spki_sha256")
        if got_peer != want_peer:
            failures.append(
                f"atls.peer_tls_spki_sha256: got {got_peer!r}, expected {want_peer!r}"
                " (the evidence was made for another session)"
            )
    return failures


def verify_document(
    doc: AttestationDocument,
    policy: AttestationPolicy,
    *,
    nonce: bytes,
    role: str,
    tls_spki_der: bytes,
    peer_spki_der: bytes | None = None,
    at: datetime | None = None,
    fetchers: EvidenceFetchers | None = None,
) -> VerifiedEvidence:
    """Accept *doc* only if it is fresh, bound to this connection, authentic and allowed.

    *nonce* is the verifier's own fresh nonce; *tls_spki_der* the DER
    SubjectPublicKeyInfo of the certificate the attester presented on THIS
    connection; *peer_spki_der* (client role) the verifier's own TLS key, which
    the attester must have seen on this connection. *fetchers*: complete the
    evidence on this side (the current AMD CRL, Intel's current collateral)
    rather than rely on what the attester's host put in it; nothing is fetched
    unless the document is bound to this connection. Raises
    :class:`~cleanroom.errors.AttestationError` subclasses naming every
    failed check.
    """
    if role not in ROLES or role == "certificate":
        raise ConfigurationError(f"a {role!r} document is never accepted as fresh evidence")
    if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise ConfigurationError(f"the nonce must be {NONCE_MIN} to {NONCE_MAX} bytes")
    failures = _binding_failures(
        doc, nonce=nonce, role=role, tls_spki_der=tls_spki_der, peer_spki_der=peer_spki_der
    )
    if failures:
        raise PolicyViolation(
            "the attestation is not bound to this TLS connection", failures=failures
        )
    evidence = doc.evidence if fetchers is None else fetchers.complete(doc.evidence)
    return verify_evidence(evidence, policy, report_data=doc.expected_report_data(nonce), at=at)
