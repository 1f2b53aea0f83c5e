"""Signing and verifying checkpoints with the clean room's log key.

Two key types are accepted, each with one fixed signature scheme so a
signature cannot be re-interpreted under another: Ed25519 (RFC 8032) and
ECDSA over P-256 with SHA-256 or over P-384 with SHA-384 (FIPS 186-5,
DER-encoded signatures). The log is identified by the SHA-256 of its public
key's DER SubjectPublicKeyInfo, so a checkpoint names the key it claims.
"""

from __future__ import annotations

import hashlib
from typing import TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from cleanroom.errors import ConfigurationError, LogIntegrityError

__all__ = [
    "LogPrivateKey",
    "LogPublicKey",
    "algorithm_of",
    "key_id",
    "load_public_key",
    "sign",
    "verify_signature",
]

LogPrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
LogPublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_EC_SCHEMES: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "secp256r1": ("ecdsa-p256-sha256", hashes.SHA256),
    "secp384r1": ("ecdsa-p384-sha384", hashes.SHA384),
}


def algorithm_of(key: LogPrivateKey | LogPublicKey) -> str:
    """The signature scheme name a key signs with; refuses other keys."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        scheme = _EC_SCHEMES.get(key.curve.name)
        if scheme is not None:
            return scheme[0]
        raise ConfigurationError(f"the log key's curve {key.curve.name} is not P-256 or P-384")
    raise ConfigurationError("the log key must be an Ed25519 or an ECDSA P-256/P-384 key")


def key_id(public_key: LogPublicKey) -> str:
    """``"sha256:<hex>"`` of the key's DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def sign(private_key: LogPrivateKey, message: bytes) -> bytes:
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(message)
    _, digest = _EC_SCHEMES[private_key.curve.name]
    return private_key.sign(message, ec.ECDSA(digest()))


def verify_signature(
    public_key: LogPublicKey, algorithm: str, message: bytes, signature: bytes
) -> None:
    """Raise :class:`LogIntegrityError` unless *signature* is valid."""
    if algorithm != algorithm_of(public_key):
        raise LogIntegrityError(
            f"bad signature: the checkpoint claims {algorithm!r} but the key signs "
            f"with {algorithm_of(public_key)!r}"
        )
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        else:
            _, digest = _EC_SCHEMES[public_key.curve.name]
            public_key.verify(signature, message, ec.ECDSA(digest()))
    except InvalidSignature:
        raise LogIntegrityError(
            "bad signature: the checkpoint was not signed by this log key",
            remedy="check the public key against the attestation evidence; the file may be forged",
        ) from None


def load_public_key(pem: bytes | str) -> LogPublicKey:
    """A log public key from PEM (SubjectPublicKeyInfo)."""
    data = pem.encode("ascii", errors="replace") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError("the log public key is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise ConfigurationError("the log key must be an Ed25519 or an ECDSA P-256/P-384 key")
    algorithm_of(key)
    return key
