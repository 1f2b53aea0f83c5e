"""HPKE (RFC 9180) in Auth mode, behind one small interface.

Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. Auth mode
(RFC 9180 §5.1.3) authenticates the sender's static key: only the holder of
the registered private key can produce a ciphertext the recipient opens with
that sender's public key. The exporter (§5.3) derives response keys, as
Oblivious HTTP does (RFC 9458 §4.4).

pyhpke implements the construction over ``cryptography``; nothing here is a
primitive of our own.
"""

from __future__ import annotations

from typing import Any

from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey

from cleanroom.crypto.keys import KeyPair, PublicKey
from cleanroom.errors import DecryptionFailed

__all__ = ["ENC_SIZE", "SUITE_ID", "RecipientContext", "SenderContext", "open_auth", "seal_auth"]

# Envelope suite identifier: 0x0001 = X25519 / HKDF-SHA256 / AES-256-GCM, Auth mode.
SUITE_ID = 0x0001
ENC_SIZE = 32

_SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)


def _private(keys: KeyPair) -> Any:
    return KEMKey.from_pyca_cryptography_key(keys.private_key)


def _public(key: PublicKey) -> Any:
    return KEMKey.from_pyca_cryptography_key(key.to_cryptography())


class SenderContext:
    """A sealing context: one ``enc`` and the exporter of that context."""

    def __init__(self, enc: bytes, context: Any) -> None:
        self.enc = enc
        self._context = context

    def seal(self, plaintext: bytes | memoryview, aad: bytes) -> bytes:
        return bytes(self._context.seal(bytes(plaintext), aad=aad))

    def export(self, label: bytes, length: int) -> bytes:
        return bytes(self._context.export(label, length))


class RecipientContext:
    def __init__(self, context: Any) -> None:
        self._context = context

    def open(self, ciphertext: bytes | memoryview, aad: bytes) -> bytes:
        try:
            # pyhpke hands the buffer to AES-GCM as is: no copy of a large request.
            return bytes(self._context.open(ciphertext, aad=aad))
        except Exception as exc:  # pyhpke raises several types; all mean "does not open"
            raise DecryptionFailed() from exc

    def export(self, label: bytes, length: int) -> bytes:
        return bytes(self._context.export(label, length))


def seal_auth(recipient: PublicKey, sender: KeyPair, info: bytes) -> SenderContext:
    enc, context = _SUITE.create_sender_context(_public(recipient), info=info, sks=_private(sender))
    return SenderContext(bytes(enc), context)


def open_auth(enc: bytes, recipient: KeyPair, sender: PublicKey, info: bytes) -> RecipientContext:
    try:
        context = _SUITE.create_recipient_context(
            enc, _private(recipient), info=info, pks=_public(sender)
        )
    except Exception as exc:
        raise DecryptionFailed() from exc
    return RecipientContext(context)
