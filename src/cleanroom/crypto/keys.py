"""HPKE key pairs (X25519) and their identifiers.

A party's key pair is its :class:`cleanroom.Secret`; the clean room holds one
too, generated inside the TEE. Keys are identified on the wire by
``key_id = SHA-256(raw public key)`` so that no party ever has to send a
name for the key it sealed with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cleanroom.errors import InvalidRequest

__all__ = ["KEY_ID_SIZE", "PUBLIC_KEY_SIZE", "KeyPair", "PublicKey", "key_id"]

PUBLIC_KEY_SIZE = 32
KEY_ID_SIZE = 32


def key_id(public_key_raw: bytes) -> bytes:
    return hashlib.sha256(public_key_raw).digest()


@dataclass(frozen=True)
class PublicKey:
    """An X25519 public key as its 32 raw bytes."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != PUBLIC_KEY_SIZE:
            raise InvalidRequest(
                f"an X25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(self.raw)}"
            )

    @property
    def key_id(self) -> bytes:
        return key_id(self.raw)

    def to_cryptography(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.raw)


class KeyPair:
    """An X25519 key pair. The private half never leaves this object's process."""

    __slots__ = ("_private", "public")

    def __init__(self, private: X25519PrivateKey | None = None) -> None:
        self._private = private if private is not None else X25519PrivateKey.generate()
        raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public = PublicKey(raw)

    @property
    def private_key(self) -> X25519PrivateKey:
        return self._private

    def __repr__(self) -> str:  # never show key material
        return f"KeyPair(key_id={self.public.key_id.hex()[:16]}…)"
