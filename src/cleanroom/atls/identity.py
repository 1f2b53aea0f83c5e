"""An attested TLS identity: a TLS key inside the TEE, its certificate, fresh evidence.

The same identity serves as a server certificate (``cleanroom serve --tls``)
and, when one clean room calls another, as the caller's certificate.
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from cleanroom.atls.certificate import build_certificate
from cleanroom.atls.document import CONFIG_PURPOSE, AttestationDocument
from cleanroom.atls.settings import AtlsSettings
from cleanroom.attestation import Evidence
from cleanroom.crypto.binding import TLS_SPKI_KEY, config_digest, tls_key_digest
from cleanroom.errors import ConfigurationError

__all__ = ["AttestedTlsIdentity", "EvidenceSource", "client_context", "proof_message"]

EvidenceSource = Callable[[bytes, dict[str, Any]], Evidence]
PROOF_LABEL = b"cleanroom/v1 atls peer proof\x00"


def _tls_floor(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_context() -> ssl.SSLContext:
    """The TLS context of an attesting client.

    Certificate-chain verification is off on purpose: the peer's certificate
    is self-signed by its TEE key and is trusted only after fresh evidence
    naming its SubjectPublicKeyInfo has been verified on the same
    connection (docs/attested-tls.md). Nothing is sent before that.
    """
    context = _tls_floor(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class AttestedTlsIdentity:
    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        evidence_source: EvidenceSource,
        base_config: Mapping[str, Any],
        *,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    ) -> None:
        self._key = key
        self._evidence = evidence_source
        self.spki_der = key.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        self.spki_sha256 = tls_key_digest(self.spki_der)
        keys = base_config.get("keys")
        if not isinstance(keys, Mapping) or keys.get(TLS_SPKI_KEY) != self.spki_sha256.hex():
            raise ConfigurationError(
                f"the attested configuration must name this TLS key in keys.{TLS_SPKI_KEY}"
            )
        self._base = dict(base_config)
        self.certificate = build_certificate(
            key, self.document(os.urandom(32), role="certificate"), hosts=hosts
        )
        self.certificate_der = self.certificate.public_bytes(Encoding.DER)

    @classmethod
    def for_tee(cls, tee: Any, settings: AtlsSettings) -> AttestedTlsIdentity:
        """The identity of a clean room: its TEE's TLS key and attested configuration."""
        key: ec.EllipticCurvePrivateKey = tee.tls_key
        spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        config = {
            "version": 1,
            "purpose": CONFIG_PURPOSE,
            "service": {"tee": tee.kind, "simulated": tee.simulated},
            "keys": {
                "hpke": base64.b64encode(tee.hpke.public.raw).decode(),
                TLS_SPKI_KEY: tls_key_digest(spki).hex(),
            },
            "policy_digest": settings.policy_digest,
            "routes": [route.to_json() for route in settings.routes],
        }
        return cls(key, tee.evidence, config, hosts=settings.hosts)

    @property
    def config(self) -> Mapping[str, Any]:
        return self._base

    def document(
        self, nonce: bytes, *, role: str, peer_spki_der: bytes | None = None
    ) -> AttestationDocument:
        """Fresh evidence for *nonce*, in *role*, bound to this TLS key (and the peer's)."""
        atls: dict[str, Any] = {"role": role}
        if peer_spki_der is not None:
            atls["peer_tls_spki_sha256"] = tls_key_digest(peer_spki_der).hex()
        config = {**self._base, "atls": atls}
        return AttestationDocument(self._evidence(nonce, config), config, nonce)

    def sign_proof(
        self, challenge: bytes, peer_spki_der: bytes, document: AttestationDocument
    ) -> bytes:
        """Proof that this identity holds its TLS key, for one challenge on one connection."""
        return self._key.sign(
            proof_message(challenge, peer_spki_der, document), ec.ECDSA(hashes.SHA256())
        )

    # TLS contexts -------------------------------------------------------------------

    def _load_into(self, context: ssl.SSLContext) -> None:
        # ssl loads keys only from files: an anonymous in-memory file keeps the
        # private key off every file system (Linux memfd_create(2)).
        pem = self._key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        ) + self.certificate.public_bytes(Encoding.PEM)
        if not hasattr(os, "memfd_create"):
            raise ConfigurationError("attested TLS needs memfd_create (Linux)")
        fd = os.memfd_create("cleanroom-atls", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)

    def server_context(self) -> ssl.SSLContext:
        """The server's TLS context. Client certificates are not requested at the TLS
        layer (stdlib ssl cannot accept a self-signed one); callers prove their
        identity over the session instead (docs/attested-tls.md)."""
        context = _tls_floor(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        context.verify_mode = ssl.CERT_NONE
        self._load_into(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = client_context()
        self._load_into(context)
        return context


def proof_message(challenge: bytes, peer_spki_der: bytes, document: AttestationDocument) -> bytes:
    """What a caller signs: label, the callee's challenge, the callee's key, the document."""
    return (
        PROOF_LABEL
        + len(challenge).to_bytes(4, "big")
        + challenge
        + tls_key_digest(peer_spki_der)
        + config_digest(document.config)
    )
