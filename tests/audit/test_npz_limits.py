""".npz record sets from untrusted uploads: sizes, members and .npy headers are checked
before anything is inflated.

Hostile archives are written member by member here (local headers, central
directory, end record), so a test can declare sizes, CRCs and compression
methods that differ from the payload, and a compression bomb is deflated in
1 MiB chunks: no test holds more than a few MiB inflated.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from cleanroom.audit import LabelledRecords
from cleanroom.audit.data import records_from_npz
from cleanroom.audit.npz import (
    NPZ_MAX_UNCOMPRESSED_BYTES,
    NPZ_MIN_UNCOMPRESSED_BYTES,
    default_npz_limit,
)
from cleanroom.errors import AuditError, ConfigurationError

MIB = 1024 * 1024
FEATURES = np.arange(12.0).reshape(4, 3)
LABELS = np.array([0, 1, 0, 1])


# -- building archives ------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str
    payload: bytes  # as stored in the archive: compressed for ZIP_DEFLATED
    file_size: int  # the uncompressed size the zip directory declares
    crc: int
    method: int = zipfile.ZIP_STORED
    flags: int = 0


def stored(name: str, content: bytes, **changes: Any) -> Member:
    member = Member(name, content, len(content), zlib.crc32(content))
    return replace(member, **changes)


def deflated(name: str, pieces: Iterable[bytes], **changes: Any) -> Member:
    """Raw DEFLATE of the concatenated pieces, computed without joining them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out: list[bytes] = []
    size = crc = 0
    for piece in pieces:
        out.append(compressor.compress(piece))
        size += len(piece)
        crc = zlib.crc32(piece, crc)
    out.append(compressor.flush())
    member = Member(name, b"".join(out), size, crc, method=zipfile.ZIP_DEFLATED)
    return replace(member, **changes)


def archive(*members: Member) -> bytes:
    body = io.BytesIO()
    directory = io.BytesIO()
    for m in members:
        name = m.name.encode()
        offset = body.tell()
        body.write(
            struct.pack(
                "<4s5H3L2H",
                b"PK\x03\x04",
                20,
                m.flags,
                m.method,
                0,
                0x21,
                m.crc,
                len(m.payload),
                m.file_size,
                len(name),
                0,
            )
        )
        body.write(name)
        body.write(m.payload)
        directory.write(
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                20,
                20,
                m.flags,
                m.method,
                0,
                0x21,
                m.crc,
                len(m.payload),
                m.file_size,
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
        )
        directory.write(name)
    cd = directory.getvalue()
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(cd), body.tell(), 0
    )
    return body.getvalue() + cd + end


def npy(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], descr: Any = "<f8", *, fortran: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"shape": shape, "fortran_order": fortran, "descr": descr}
    )
    return buffer.getvalue()


def features_and_labels(features: bytes | Member, labels: bytes | Member | None = None) -> bytes:
    f = features if isinstance(features, Member) else stored("features.npy", features)
    raw_labels = npy(LABELS) if labels is None else labels
    lab = raw_labels if isinstance(raw_labels, Member) else stored("labels.npy", raw_labels)
    return archive(f, lab)


def bomb(rows: int, columns: int) -> Member:
    """An honest DEFLATE bomb: float64 zeros, about 1000:1, inflated in no test."""
    header = npy_header((rows, columns))
    nbytes = rows * columns * 8
    zeros = bytes(MIB)
    pieces = [header, *(zeros for _ in range(nbytes // MIB)), bytes(nbytes % MIB)]
    return deflated("features.npy", pieces)


def with_version(header: bytes, major: int) -> bytes:
    return header[:6] + bytes([major, 0]) + header[8:]


# -- hostile archives -------------------------------------------------------

F_NPY = npy(FEATURES)
SHORT = npy_header((8, 3)) + FEATURES.tobytes()  # declares 8 rows, holds 4


@dataclass(frozen=True)
class Case:
    build: Callable[[], bytes]
    match: str
    limit: int | None = None


HOSTILE: dict[str, Case] = {
    # sizes the zip directory declares
    "a member declares 2 GiB (tiny payload)": Case(
        lambda: features_and_labels(stored("features.npy", F_NPY, file_size=2**31)),
        r"'features\.npy' declares 2147483648 bytes uncompressed, over the limit of 67108864",
    ),
    "a member over an explicit limit": Case(
        lambda: features_and_labels(F_NPY),
        r"'features\.npy' declares 224 bytes uncompressed, over the limit of 200 bytes",
        limit=200,
    ),
    "members under the limit, total over it": Case(
        lambda: features_and_labels(F_NPY),
        r"record set declares 384 bytes uncompressed, over the limit of 300 bytes",
        limit=300,
    ),
    "more zip directory entries than any record set needs": Case(
        lambda: archive(*(stored(f"{i}.npy", b"") for i in range(65))),
        "too many zip directory entries",
    ),
    # members
    "an extra member": Case(
        lambda: archive(
            stored("features.npy", F_NPY),
            stored("labels.npy", npy(LABELS)),
            stored("ids.npy", npy(LABELS)),
        ),
        "exactly the arrays 'features' and 'labels'",
    ),
    "labels missing": Case(
        lambda: archive(stored("features.npy", F_NPY)),
        "exactly the arrays 'features' and 'labels'",
    ),
    "names without .npy": Case(
        lambda: archive(stored("features", F_NPY), stored("labels", npy(LABELS))),
        "exactly the arrays 'features' and 'labels'",
    ),
    "other names": Case(
        lambda: archive(stored("X.npy", F_NPY), stored("y.npy", npy(LABELS))),
        "exactly the arrays 'features' and 'labels'",
    ),
    "features twice": Case(
        lambda: archive(
            stored("features.npy", F_NPY),
            stored("features.npy", F_NPY),
            stored("labels.npy", npy(LABELS)),
        ),
        "exactly the arrays 'features' and 'labels'",
    ),
    "a directory entry": Case(
        lambda: archive(stored("features.npy/", b""), stored("labels.npy", npy(LABELS))),
        "exactly the arrays 'features' and 'labels'",
    ),
    "an encrypted member": Case(
        lambda: features_and_labels(stored("features.npy", F_NPY, flags=0x1)),
        r"'features\.npy' is encrypted or uses an unsupported zip feature",
    ),
    "an LZMA member": Case(
        lambda: features_and_labels(stored("features.npy", F_NPY, method=zipfile.ZIP_LZMA)),
        r"'features\.npy' is neither stored nor deflated",
    ),
    # .npy headers
    "a huge shape in a tiny member": Case(
        lambda: features_and_labels(npy_header((4, 10**12)) + FEATURES.tobytes()),
        r"header of 'features\.npy' declares more data than the member holds",
    ),
    "a header declaring less than the member holds": Case(
        lambda: features_and_labels(F_NPY + bytes(8)),
        r"'features\.npy' holds bytes after its array",
    ),
    "a negative dimension": Case(
        lambda: features_and_labels(npy_header((-4, 3)) + FEATURES.tobytes()),
        r"header of 'features\.npy' declares a negative dimension",
    ),
    "an unknown .npy version": Case(
        lambda: features_and_labels(with_version(F_NPY, 9)),
        r"'features\.npy' is \.npy format 9\.0; only 1\.0 and 2\.0 are read",
    ),
    "not an .npy member": Case(
        lambda: features_and_labels(b"features,label\n1,0\n"),
        r"'features\.npy' does not start with a readable \.npy header",
    ),
    "a header length past the member": Case(
        lambda: features_and_labels(b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**30) + b"{}"),
        r"'features\.npy' does not start with a readable \.npy header",
    ),
    # dtypes and shapes, refused from the header (messages as LabelledRecords)
    "object features": Case(
        lambda: features_and_labels(npy(FEATURES.astype(object), allow_pickle=True)),
        r"must not hold Python objects \(pickles are refused\)",
    ),
    "object labels": Case(
        lambda: features_and_labels(F_NPY, npy(LABELS.astype(object), allow_pickle=True)),
        r"must not hold Python objects \(pickles are refused\)",
    ),
    "complex features": Case(
        lambda: features_and_labels(npy(FEATURES.astype(np.complex128))),
        r"features must be numbers \(bool, integer or floating point\)",
    ),
    "structured features": Case(
        lambda: features_and_labels(npy(np.zeros((4, 3), dtype=[("a", "<f8"), ("b", "<i4")]))),
        r"features must be numbers \(bool, integer or floating point\)",
    ),
    "string features": Case(
        lambda: features_and_labels(npy(FEATURES.astype(str))),
        r"features must be numbers \(bool, integer or floating point\)",
    ),
    "string labels": Case(
        lambda: features_and_labels(F_NPY, npy(np.array(["a", "b", "a", "b"]))),
        "labels must be integer class indices",
    ),
    "datetime labels": Case(
        lambda: features_and_labels(F_NPY, npy(np.zeros(4, dtype="datetime64[s]"))),
        "labels must be integer class indices",
    ),
    "three-dimensional features": Case(
        lambda: features_and_labels(npy(FEATURES.reshape(4, 3, 1))),
        r"features must be two-dimensional: \[records, features\]",
    ),
    "two-dimensional labels": Case(
        lambda: features_and_labels(F_NPY, npy(LABELS.reshape(4, 1))),
        "labels must be one-dimensional with one label per record",
    ),
    "one label too many": Case(
        lambda: features_and_labels(F_NPY, npy(np.zeros(5, dtype=int))),
        "labels must be one-dimensional with one label per record",
    ),
    "no records, 10**30 features each": Case(
        lambda: features_and_labels(npy_header((0, 10**30)), npy(np.zeros(0, dtype=int))),
        "a record set must not be empty",
    ),
    # the zip directory lying about a member, and damaged members
    "directory understates a member (read stops, CRC-32 fails)": Case(
        lambda: features_and_labels(
            deflated("features.npy", [npy(np.ones((256, 256)))], file_size=1024),
            npy(np.zeros(256, dtype=int)),
        ),
        "not a readable .npz record set: BadZipFile",
    ),
    "directory understates a member past the header": Case(
        lambda: features_and_labels(
            deflated("features.npy", [npy(np.ones((256, 256)))], file_size=20_000),
            npy(np.zeros(256, dtype=int)),
        ),
        r"header of 'features\.npy' declares more data than the member holds",
    ),
    "directory and header overstate a deflated member": Case(
        lambda: features_and_labels(
            deflated("features.npy", [SHORT], file_size=len(SHORT) + 96),
            npy(np.zeros(8, dtype=int)),
        ),
        r"'features\.npy' ends before its declared size",
    ),
    "directory and header overstate a stored member": Case(
        lambda: features_and_labels(
            stored("features.npy", SHORT, file_size=len(SHORT) + 96),
            npy(np.zeros(8, dtype=int)),
        ),
        r"'features\.npy' ends before its declared size",
    ),
    "a wrong CRC-32": Case(
        lambda: features_and_labels(stored("features.npy", F_NPY, crc=zlib.crc32(F_NPY) ^ 1)),
        "not a readable .npz record set: BadZipFile",
    ),
    "a corrupt DEFLATE stream": Case(
        lambda: features_and_labels(
            replace(deflated("features.npy", [F_NPY]), payload=b"\xff" * 64)
        ),
        "not a readable .npz record set: error",
    ),
    "a truncated archive": Case(
        lambda: features_and_labels(F_NPY)[:-30],
        "not a readable .npz record set: BadZipFile",
    ),
}


@pytest.mark.parametrize("mutation", list(HOSTILE))
def test_hostile_archives_are_refused(mutation: str) -> None:
    case = HOSTILE[mutation]
    with pytest.raises(AuditError, match=case.match):
        records_from_npz(case.build(), max_uncompressed_bytes=case.limit)


def test_refusals_do_not_echo_member_names() -> None:
    data = archive(stored("secret-name.npy", F_NPY), stored("labels.npy", npy(LABELS)))
    with pytest.raises(AuditError) as refused:
        records_from_npz(data)
    assert "secret-name" not in str(refused.value)
    assert "secret-name" not in refused.value.diagnostics()


def test_a_deflate_bomb_is_refused_before_it_is_inflated() -> None:
    features = bomb(73_728, 128)  # 72 MiB of zeros in about 70 KiB
    labels = stored("labels.npy", npy(np.zeros(73_728, dtype=np.int8)))
    data = archive(features, labels)
    assert features.file_size > NPZ_MIN_UNCOMPRESSED_BYTES > 20 * len(data)
    tracemalloc.start()
    try:
        with pytest.raises(AuditError, match=r"declares 75497\d+ bytes uncompressed") as refused:
            records_from_npz(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MIB
    assert "float32" in refused.value.remedy


def test_a_member_understated_with_a_forged_crc_is_read_only_to_its_declared_size() -> None:
    # The directory declares (and the CRC-32 matches) just the small array; the
    # DEFLATE stream goes on with 8 MiB of zeros that must never be inflated.
    content = npy(FEATURES)
    member = deflated(
        "features.npy",
        [content, *(bytes(MIB) for _ in range(8))],
        file_size=len(content),
        crc=zlib.crc32(content),
    )
    data = features_and_labels(member)
    tracemalloc.start()
    try:
        records = records_from_npz(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MIB
    np.testing.assert_array_equal(records.features, FEATURES.astype(np.float32))


# -- legitimate record sets -------------------------------------------------


def _savez(compressed: bool, *, features: np.ndarray, labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    if compressed:
        np.savez_compressed(buffer, features=features, labels=labels)
    else:
        np.savez(buffer, features=features, labels=labels)
    return buffer.getvalue()


RNG = np.random.default_rng(7)
LEGITIMATE: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "float64 features, int32 labels": (RNG.normal(size=(50, 6)), RNG.integers(0, 3, 50, np.int32)),
    "float32 features, int64 labels": (
        RNG.normal(size=(50, 6)).astype(np.float32),
        RNG.integers(0, 3, 50),
    ),
    "float16 features, uint8 labels": (
        RNG.normal(size=(9, 2)).astype(np.float16),
        np.arange(9, dtype=np.uint8),
    ),
    "bool features, bool labels": (RNG.random((7, 4)) > 0.5, np.array([True, False] * 3 + [True])),
    "big-endian arrays": (RNG.normal(size=(5, 3)).astype(">f8"), np.arange(5, dtype=">i4")),
    "Fortran-order features": (np.asfortranarray(RNG.normal(size=(8, 5))), np.arange(8)),
    "integral float labels": (RNG.normal(size=(3, 2)), np.array([0.0, 2.0, 1.0])),
    "zip signatures inside the data": (
        np.frombuffer(b"PK\x01\x02" * 6, dtype="<f4").reshape(3, 2),
        np.zeros(3, dtype=int),
    ),
}


@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
@pytest.mark.parametrize("name", list(LEGITIMATE))
def test_numpy_archives_load_to_the_same_arrays(name: str, compressed: bool) -> None:
    features, labels = LEGITIMATE[name]
    records = records_from_npz(_savez(compressed, features=features, labels=labels))
    expected = LabelledRecords.of(features, labels)
    np.testing.assert_array_equal(records.features, features.astype(np.float32))
    np.testing.assert_array_equal(records.labels, labels.astype(np.int64))
    assert records.features.dtype == np.float32
    assert records.labels.dtype == np.int64
    assert records.commitment() == expected.commitment()


def test_a_very_compressible_set_under_the_floor_loads() -> None:
    features = np.zeros((512, 1024))  # 4 MiB of zeros: about 1000:1
    data = _savez(True, features=features, labels=np.zeros(512, dtype=int))
    assert len(data) * 20 < features.nbytes
    records = records_from_npz(data)
    assert records.features.shape == (512, 1024)
    assert not records.features.any()


def test_an_explicit_limit_is_inclusive() -> None:
    data = _savez(False, features=FEATURES, labels=LABELS)
    total = sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    assert len(records_from_npz(data, max_uncompressed_bytes=total)) == 4
    with pytest.raises(AuditError, match="over the limit"):
        records_from_npz(data, max_uncompressed_bytes=total - 1)


@pytest.mark.parametrize(
    ("archive_size", "limit"),
    [
        (0, 64 * MIB),
        (1 * MIB, 64 * MIB),
        (4 * MIB, 80 * MIB),
        (50 * MIB, 1000 * MIB),
        (52 * MIB, 1024 * MIB),
        (256 * MIB, 1024 * MIB),
    ],
)
def test_default_limit(archive_size: int, limit: int) -> None:
    assert default_npz_limit(archive_size) == limit
    assert NPZ_MIN_UNCOMPRESSED_BYTES <= limit <= NPZ_MAX_UNCOMPRESSED_BYTES


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_must_be_positive(limit: int) -> None:
    with pytest.raises(ConfigurationError):
        records_from_npz(
            _savez(False, features=FEATURES, labels=LABELS), max_uncompressed_bytes=limit
        )
