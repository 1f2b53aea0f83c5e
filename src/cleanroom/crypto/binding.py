"""The single definition of what REPORT_DATA commits to.

REPORT_DATA is the 64-byte field of the TEE report that the guest chooses.
The clean room fills it with::

    SHA-512( "cleanroom/v1 report-data" || 0x00
             || u32 len || HPKE public key (raw X25519)
             || u32 len || client nonce
             || u32 len || configuration digest )

The configuration digest (see :func:`config_digest`) covers everything else a
party must know before sending a secret: the instance, its owner and data
owners, the policy digest, and the public keys of any other in-TEE keys
(receipt signing, TLS). Each element is length-prefixed so no two different
inputs produce the same preimage.

A TLS key enters the configuration document as ``keys.tls_spki_sha256``, the
hex of :func:`tls_key_digest`: SHA-256 over a domain-separation label and the
DER SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7) of the certificate, never
over PEM text, so two encodings of one key cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from typing import Any

from cleanroom.errors import CryptoError

__all__ = [
    "REPORT_DATA_SIZE",
    "TLS_SPKI_KEY",
    "canonical_json",
    "config_digest",
    "report_data",
    "tls_key_digest",
]

REPORT_DATA_SIZE = 64
_LABEL = b"cleanroom/v1 report-data\x00"
_U32 = struct.Struct(">I")
_TLS_SPKI_LABEL = b"cleanroom/v1 tls-spki\x00"
# The configuration document's ``keys`` entry that names the attested TLS key.
TLS_SPKI_KEY = "tls_spki_sha256"


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8, no floats expected."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def config_digest(config: Mapping[str, Any]) -> bytes:
    """SHA-384 over the canonical JSON of the attested configuration document."""
    return hashlib.sha384(canonical_json(config)).digest()


def report_data(*, hpke_public_key: bytes, nonce: bytes, config_digest: bytes) -> bytes:
    h = hashlib.sha512(_LABEL)
    for part in (hpke_public_key, nonce, config_digest):
        h.update(_U32.pack(len(part)))
        h.update(part)
    return h.digest()


def tls_key_digest(spki_der: bytes) -> bytes:
    """SHA-256 of a TLS key's DER SubjectPublicKeyInfo, with a domain-separation label."""
    if not spki_der or spki_der[0] != 0x30:
        # A DER SEQUENCE always starts with 0x30 (X.690 section 8.9): refuse PEM or raw keys.
        raise CryptoError("expected a DER SubjectPublicKeyInfo")
    return hashlib.sha256(_TLS_SPKI_LABEL + spki_der).digest()
