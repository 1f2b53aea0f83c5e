"""The evidence extension: a CMW (RATS Conceptual Message Wrapper) in X.509.

The extension is ``id-pe-cmw`` (1.3.6.1.5.5.7.1.35, IETF RATS "RATS
Conceptual Message Wrappers", section "X.509 Extension")::

    CMW ::= CHOICE {
        json UTF8String,
        cbor OCTET STRING
    }

We use the ``json`` alternative holding one CMW *record* (section "CMW
Record", JSON serialization)::

    [ media-type, base64url(value) without padding, indicator ]

where the indicator is a bit set, 4 meaning "evidence". The value is the
clean room's attestation document (evidence, attested configuration and
nonce) as canonical JSON, under the media type :data:`MEDIA_TYPE`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import asn1crypto.core
from cryptography import x509

from cleanroom.errors import EvidenceFormatError

__all__ = ["CMW_OID", "IND_EVIDENCE", "MEDIA_TYPE", "decode_cmw", "encode_cmw"]

CMW_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.35")
MEDIA_TYPE = "application/vnd.cleanroom.attestation+json"
# CMW indicator bits: reference values 1, endorsements 2, evidence 4, attestation results 8.
IND_EVIDENCE = 4
# Evidence documents are a few kilobytes; refuse anything absurd before parsing.
MAX_EXTENSION = 256 * 1024


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if "=" in text:
        raise EvidenceFormatError("the CMW value must be base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EvidenceFormatError("the CMW value is not base64url") from exc


def encode_cmw(value: bytes, *, media_type: str = MEDIA_TYPE) -> bytes:
    """The DER extension value: the ``json`` CHOICE (a UTF8String) holding one record."""
    record = json.dumps([media_type, _b64url(value), IND_EVIDENCE], separators=(",", ":"))
    return bytes(asn1crypto.core.UTF8String(record).dump())


def decode_cmw(der: bytes, *, media_type: str = MEDIA_TYPE) -> bytes:
    """The value of a CMW evidence record of *media_type*; refuses anything else."""
    if len(der) > MAX_EXTENSION:
        raise EvidenceFormatError("the CMW extension is too large")
    try:
        parsed = asn1crypto.core.UTF8String.load(der, strict=True)
        text = parsed.native
    except (ValueError, TypeError) as exc:
        raise EvidenceFormatError(
            "the CMW extension is not the json alternative (a DER UTF8String)"
        ) from exc
    if not isinstance(text, str):
        raise EvidenceFormatError("the CMW extension is not a UTF8String")
    try:
        record: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvidenceFormatError("the CMW record is not JSON") from exc
    if not isinstance(record, list) or len(record) not in (2, 3):
        raise EvidenceFormatError("the CMW is not a record [type, value, ind]")
    kind, value = record[0], record[1]
    indicator = record[2] if len(record) == 3 else 0
    if kind != media_type:
        raise EvidenceFormatError(
            "the CMW record has another media type",
            failures=[f"cmw type: got {kind!r}, expected {media_type!r}"],
        )
    if not isinstance(value, str):
        raise EvidenceFormatError("the CMW record value must be a base64url string")
    if (
        isinstance(indicator, bool)
        or not isinstance(indicator, int)
        or not indicator & IND_EVIDENCE
    ):
        raise EvidenceFormatError("the CMW record is not marked as evidence")
    return _unb64url(value)
