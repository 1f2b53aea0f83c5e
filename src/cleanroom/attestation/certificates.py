"""Reading certificate files and bundles: PEM or DER, one or many."""

from __future__ import annotations

import base64
import re

from cleanroom.errors import EvidenceFormatError

__all__ = ["split_certificates"]

_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----"
)
_MAX_DER_CERTIFICATE = 64 * 1024


def _der_length(data: bytes, offset: int) -> int:
    """The total length of the DER SEQUENCE starting at *offset* (X.690, 8.1.3)."""
    if data[offset] != 0x30 or offset + 2 > len(data):
        raise EvidenceFormatError("certificate data is neither PEM nor a DER SEQUENCE")
    first = data[offset + 1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or offset + 2 + count > len(data):
        raise EvidenceFormatError("certificate data has an invalid DER length")
    length = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
    return 2 + count + length


def split_certificates(data: bytes) -> list[bytes]:
    """The DER certificates in *data*: a PEM bundle, one DER certificate or several
    concatenated. Does not parse the certificates themselves.

    Raises :class:`EvidenceFormatError` when *data* holds no certificate.
    """
    data = bytes(data)
    if b"-----BEGIN" in data:
        out = []
        for match in _PEM_BLOCK.finditer(data):
            try:
                out.append(base64.b64decode(b"".join(match.group("body").split()), validate=True))
            except ValueError as exc:
                raise EvidenceFormatError("a PEM certificate is not valid base64") from exc
        if not out:
            raise EvidenceFormatError("no PEM certificate found")
        return out
    out = []
    offset = 0
    while offset < len(data):
        length = _der_length(data, offset)
        if length > _MAX_DER_CERTIFICATE or offset + length > len(data):
            raise EvidenceFormatError("truncated or oversized DER certificate")
        out.append(data[offset : offset + length])
        offset += length
    if not out:
        raise EvidenceFormatError("no certificate found")
    return out
