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
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from typing import Any

__all__ = ["REPORT_DATA_SIZE", "canonical_json", "config_digest", "report_data"]

REPORT_DATA_SIZE = 64
_LABEL = b"cleanroom/v1 report-data\x00"
_U32 = struct.Struct(">I")


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
