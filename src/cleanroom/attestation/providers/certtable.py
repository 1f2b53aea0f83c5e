"""The SEV-SNP extended-report certificate table (GHCB specification 56421,
section "SNP Extended Guest Request", certificate table format).

A table of 24-byte entries, GUID (16) || offset (u32 LE) || length (u32 LE),
ended by an all-zero entry; offsets are from the start of the table. The
kernel hands the same bytes to the guest in configfs-tsm ``auxblob`` and in
the SNP_GET_EXT_REPORT certificate buffer.
"""

from __future__ import annotations

import struct
import uuid

from cleanroom.errors import EvidenceFormatError

__all__ = ["ARK_GUID", "ASK_GUID", "VCEK_GUID", "VLEK_GUID", "build_cert_table", "parse_cert_table"]

VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
VLEK_GUID = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
# Leaf first, root last: the order evidence carries certificates in.
_ORDER = (VCEK_GUID, VLEK_GUID, ASK_GUID, ARK_GUID)
_ENTRY = struct.Struct("<16sII")
_MAX_ENTRIES = 64


def _known(raw: bytes) -> uuid.UUID | None:
    # Implementations differ on the GUID's byte order (RFC 4122 order versus
    # the little-endian "mixed" order); the four GUIDs are distinct either way.
    for candidate in (uuid.UUID(bytes=raw), uuid.UUID(bytes_le=raw)):
        if candidate in _ORDER:
            return candidate
    return None


def parse_cert_table(table: bytes) -> list[bytes]:
    """The certificates of the known GUIDs in *table*, leaf (VCEK/VLEK) first.

    Unknown GUIDs are skipped (the host may add its own blobs); a table that
    runs past its end, or overlapping nonsense, is an ``EvidenceFormatError``.
    """
    found: dict[uuid.UUID, bytes] = {}
    for index in range(_MAX_ENTRIES):
        start = index * _ENTRY.size
        if start + _ENTRY.size > len(table):
            raise EvidenceFormatError("the SNP certificate table has no terminating entry")
        guid, offset, length = _ENTRY.unpack_from(table, start)
        if guid == bytes(16) and offset == 0 and length == 0:
            break
        if offset + length > len(table) or offset < start + _ENTRY.size:
            raise EvidenceFormatError("an SNP certificate table entry points outside the table")
        known = _known(guid)
        if known is not None:
            found[known] = table[offset : offset + length]
    else:
        raise EvidenceFormatError("the SNP certificate table has too many entries")
    return [found[g] for g in _ORDER if g in found]


def build_cert_table(entries: list[tuple[uuid.UUID, bytes]]) -> bytes:
    """A certificate table holding *entries* (GUIDs in RFC 4122 byte order)."""
    header = _ENTRY.size * (len(entries) + 1)
    out = bytearray()
    blobs = bytearray()
    for guid, blob in entries:
        out += _ENTRY.pack(guid.bytes, header + len(blobs), len(blob))
        blobs += blob
    out += bytes(_ENTRY.size)
    return bytes(out + blobs)
