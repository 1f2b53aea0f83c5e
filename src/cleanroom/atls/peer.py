"""The callee's side of mutual attestation: verify a calling clean room's proof.

The caller answers the callee's challenge (issued on this connection) with
its evidence-carrying certificate, fresh evidence in the ``client`` role,
and a signature by the certificate's key. The proof is checked against
every peer route; the routes it passes are remembered for the connection.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cleanroom.atls.certificate import load_certificate, spki_der
from cleanroom.atls.document import AttestationDocument, verify_document
from cleanroom.atls.identity import proof_message
from cleanroom.atls.settings import PeerRoute
from cleanroom.attestation import VerifiedEvidence
from cleanroom.attestation.fetch import EvidenceFetchers
from cleanroom.errors import (
    AttestationError,
    EvidenceFormatError,
    EvidenceSignatureError,
    PolicyViolation,
)

__all__ = ["PeerProof", "VerifiedPeer", "verify_peer"]


@dataclass(frozen=True)
class PeerProof:
    certificate_der: bytes
    document: AttestationDocument
    signature: bytes

    def to_json(self) -> dict[str, object]:
        return {
            "certificate": base64.b64encode(self.certificate_der).decode(),
            "document": self.document.to_json(),
            "signature": base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_json(cls, doc: object) -> PeerProof:
        if not isinstance(doc, Mapping) or set(doc) != {"certificate", "document", "signature"}:
            raise EvidenceFormatError("a peer proof has certificate, document and signature")
        try:
            certificate = base64.b64decode(str(doc["certificate"]), validate=True)
            signature = base64.b64decode(str(doc["signature"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EvidenceFormatError(
                "the peer proof's certificate and signature are base64"
            ) from exc
        return cls(certificate, AttestationDocument.from_json(doc["document"]), signature)


@dataclass(frozen=True)
class VerifiedPeer:
    """A caller that proved its identity on one connection."""

    evidence: VerifiedEvidence
    policy_digest: str | None
    spki_der: bytes
    routes: frozenset[str]


def _check_possession(proof: PeerProof, challenge: bytes, own_spki_der: bytes) -> bytes:
    certificate = load_certificate(proof.certificate_der)
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise EvidenceFormatError("the peer certificate's key is not an EC key")
    try:
        key.verify(
            proof.signature,
            proof_message(challenge, own_spki_der, proof.document),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        raise EvidenceSignatureError(
            "the peer does not hold its certificate's key",
            failures=["signature: the proof is not signed by the certificate's key"],
        ) from None
    return spki_der(certificate)


def verify_peer(
    proof: PeerProof,
    *,
    challenge: bytes,
    own_spki_der: bytes,
    routes: tuple[PeerRoute, ...],
    at: datetime | None = None,
    fetchers: EvidenceFetchers | None = None,
) -> VerifiedPeer:
    """The routes *proof* admits its sender to; raises if it admits it to none.

    *fetchers*: complete the caller's evidence on this side
    (:func:`~cleanroom.atls.document.verify_document`).
    """
    if not routes:
        raise PolicyViolation("this clean room admits no upstream clean rooms")
    peer_spki = _check_possession(proof, challenge, own_spki_der)
    declared = proof.document.config.get("policy_digest")
    policy_digest = declared if isinstance(declared, str) else None
    failures: list[str] = []
    admitted: list[str] = []
    evidence: VerifiedEvidence | None = None
    for route in routes:
        try:
            verified = verify_document(
                proof.document,
                route.policy,
                nonce=challenge,
                role="client",
                tls_spki_der=peer_spki,
                peer_spki_der=own_spki_der,
                at=at,
                fetchers=fetchers,
            )
        except AttestationError as exc:
            failures.extend(f"{route.prefix}: {f}" for f in exc.failures or [exc.message])
            continue
        allowed = any(
            u.measurement == verified.measurement.hex() and u.policy_digest == policy_digest
            for u in route.upstreams
        )
        if not allowed:
            failures.append(
                f"{route.prefix}: upstream (measurement {verified.measurement.hex()},"
                f" policy_digest {policy_digest!r}) is not on the route's allow-list"
            )
            continue
        admitted.append(route.prefix)
        evidence = verified
    if evidence is None:
        raise PolicyViolation(
            "the calling clean room failed attestation for every route", failures=failures
        )
    return VerifiedPeer(evidence, policy_digest, peer_spki, frozenset(admitted))
