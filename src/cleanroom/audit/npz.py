"""Reading an .npz record set from untrusted bytes without inflating more than it declares.

An .npz file is a zip archive of .npy members; a DEFLATE member can inflate a
thousand times, and NumPy allocates whatever an .npy header declares. Here the
zip directory and both .npy headers are checked first, and the data is read
into buffers of exactly the checked size.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib import format as npy_format

from cleanroom.errors import AuditError, ConfigurationError

__all__ = [
    "NPZ_MAX_EXPANSION",
    "NPZ_MAX_UNCOMPRESSED_BYTES",
    "NPZ_MIN_UNCOMPRESSED_BYTES",
    "default_npz_limit",
    "read_npz_arrays",
]

_MIB = 1024 * 1024
#: Defaults of :func:`default_npz_limit` (reasons in :func:`records_from_npz`).
NPZ_MAX_EXPANSION = 20
NPZ_MIN_UNCOMPRESSED_BYTES = 64 * _MIB
NPZ_MAX_UNCOMPRESSED_BYTES = 1024 * _MIB

_NPZ_MEMBERS = ("features.npy", "labels.npy")
# Encrypted (bit 0), compressed patch data (bit 5), strong encryption (bit 6).
_UNSUPPORTED_FLAGS = 0x01 | 0x20 | 0x40
_CENTRAL_DIRECTORY_SIGNATURE = b"PK\x01\x02"
_MAX_CENTRAL_DIRECTORY_SIGNATURES = 64
_NPY_MAX_HEADER = 10_000  # numpy's own default for untrusted files
_NPY_PREFIX = npy_format.MAGIC_LEN + 4 + _NPY_MAX_HEADER
_READ_CHUNK = _MIB
_NUMERIC_KINDS = "biuf"


def default_npz_limit(archive_size: int) -> int:
    """The uncompressed bytes an .npz archive of ``archive_size`` bytes may declare.

    ``NPZ_MAX_EXPANSION`` times the archive's size, but at least
    ``NPZ_MIN_UNCOMPRESSED_BYTES`` and at most ``NPZ_MAX_UNCOMPRESSED_BYTES``.
    """
    return min(
        NPZ_MAX_UNCOMPRESSED_BYTES,
        max(NPZ_MIN_UNCOMPRESSED_BYTES, NPZ_MAX_EXPANSION * archive_size),
    )


def read_npz_arrays(
    data: bytes, *, max_uncompressed_bytes: int | None = None
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """The ``features`` and ``labels`` arrays of an .npz record set, from untrusted bytes.

    The archive is checked before anything is inflated, so a small upload cannot
    make us allocate much more than it declares:

    * exactly the members ``features.npy`` and ``labels.npy`` (the names
      ``numpy.savez`` and ``numpy.savez_compressed`` give them), stored or
      deflated, not encrypted;
    * the uncompressed sizes the zip directory declares, per member and in
      total, at most ``max_uncompressed_bytes``. By default that is
      :func:`default_npz_limit` of the archive's size: 20 times the archive,
      at least 64 MiB and at most 1 GiB. Real feature data barely compresses
      (``savez_compressed`` of random floats saves a few percent), so 20x
      leaves room for columns of zeros and one-hot encodings while refusing
      DEFLATE bombs, which reach 1000x; the 64 MiB floor lets small, very
      regular sets through whatever their ratio; the 1 GiB ceiling bounds
      what one upload can cost (100,000 records of 100 float64 features is
      80 MB; normalised to float32 they take half that);
    * each member's .npy header (format 1.0 or 2.0): a plain numeric or bool
      dtype (never Python objects), features two-dimensional and labels
      one-dimensional with one label per record, and exactly as many data
      bytes as the member declares.

    Only then are the arrays read, into buffers of the size checked above;
    :mod:`zipfile` stops every member at its declared size and checks its
    CRC-32, so a directory entry that understates a member only truncates it.
    """
    limit = (
        default_npz_limit(len(data)) if max_uncompressed_bytes is None else max_uncompressed_bytes
    )
    if limit <= 0:
        raise ConfigurationError("max_uncompressed_bytes must be positive")
    # Every entry zipfile builds starts with this signature somewhere in the
    # data; bounding it keeps a directory of millions of entries from costing
    # memory before the member names are even checked.
    if data.count(_CENTRAL_DIRECTORY_SIGNATURE) > _MAX_CENTRAL_DIRECTORY_SIGNATURES:
        raise AuditError("not a readable .npz record set: too many zip directory entries")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = _checked_members(archive, limit, default=max_uncompressed_bytes is None)
            headers = {name: _read_npy_header(archive, info) for name, info in members.items()}
            _check_headers(members, headers)
            features, labels = (
                _read_npy_data(archive, members[name], headers[name]) for name in _NPZ_MEMBERS
            )
    except (
        ValueError,
        TypeError,
        OverflowError,
        EOFError,
        OSError,
        NotImplementedError,
        zlib.error,
        zipfile.BadZipFile,
    ) as exc:
        raise AuditError(f"not a readable .npz record set: {type(exc).__name__}") from None
    return features, labels


@dataclass(frozen=True)
class _NpyHeader:
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype[Any]
    offset: int  # bytes of magic, version and header before the array data

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


def _checked_members(
    archive: zipfile.ZipFile, limit: int, *, default: bool
) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if sorted(info.filename for info in infos) != sorted(_NPZ_MEMBERS):
        raise AuditError("an .npz record set must hold exactly the arrays 'features' and 'labels'")
    remedy = (
        f"an .npz record set may inflate to {NPZ_MAX_EXPANSION} times its size, at least "
        f"{NPZ_MIN_UNCOMPRESSED_BYTES // _MIB} MiB and at most "
        f"{NPZ_MAX_UNCOMPRESSED_BYTES // _MIB} MiB; store features as float32 or use fewer records"
        if default
        else None
    )
    total = 0
    for info in infos:
        name = info.filename
        if info.flag_bits & _UNSUPPORTED_FLAGS:
            raise AuditError(
                f"the .npz member {name!r} is encrypted or uses an unsupported zip feature"
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise AuditError(
                f"the .npz member {name!r} is neither stored nor deflated",
                remedy="save record sets with numpy.savez or numpy.savez_compressed",
            )
        if info.file_size > limit:
            raise AuditError(
                f"the .npz member {name!r} declares {info.file_size} bytes uncompressed, "
                f"over the limit of {limit} bytes",
                remedy=remedy,
            )
        total += info.file_size
    if total > limit:
        raise AuditError(
            f"the .npz record set declares {total} bytes uncompressed, "
            f"over the limit of {limit} bytes",
            remedy=remedy,
        )
    return {info.filename: info for info in infos}


def _read_npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _NpyHeader:
    name = info.filename
    with archive.open(info) as stream:
        prefix = io.BytesIO(stream.read(min(info.file_size, _NPY_PREFIX)))
    try:
        version = npy_format.read_magic(prefix)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(
                prefix, max_header_size=_NPY_MAX_HEADER
            )
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(
                prefix, max_header_size=_NPY_MAX_HEADER
            )
        else:
            raise AuditError(
                f"the .npz member {name!r} is .npy format {version[0]}.{version[1]}; "
                "only 1.0 and 2.0 are read"
            )
    except ValueError:
        raise AuditError(
            f"the .npz member {name!r} does not start with a readable .npy header"
        ) from None
    if any(extent < 0 for extent in shape):
        raise AuditError(f"the .npy header of {name!r} declares a negative dimension")
    return _NpyHeader(tuple(shape), bool(fortran_order), dtype, prefix.tell())


def _check_headers(members: dict[str, zipfile.ZipInfo], headers: dict[str, _NpyHeader]) -> None:
    """Refuse what LabelledRecords.of would refuse, before the data is read."""
    features, labels = headers["features.npy"], headers["labels.npy"]
    if features.dtype.hasobject or labels.dtype.hasobject:
        raise AuditError("an .npz record set must not hold Python objects (pickles are refused)")
    if features.dtype.kind not in _NUMERIC_KINDS:
        raise AuditError("features must be numbers (bool, integer or floating point)")
    if labels.dtype.kind not in _NUMERIC_KINDS:
        raise AuditError("labels must be integer class indices")
    if len(features.shape) != 2:
        raise AuditError("features must be two-dimensional: [records, features]")
    if len(labels.shape) != 1 or labels.shape[0] != features.shape[0]:
        raise AuditError("labels must be one-dimensional with one label per record")
    if features.shape[0] == 0:
        raise AuditError("a record set must not be empty")
    for name, header in headers.items():
        held = members[name].file_size - header.offset
        if header.nbytes > held:
            raise AuditError(
                f"the .npy header of {name!r} declares more data than the member holds"
            )
        if header.nbytes < held:
            raise AuditError(f"the .npz member {name!r} holds bytes after its array")


def _read_npy_data(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, header: _NpyHeader
) -> npt.NDArray[Any]:
    """The member's array, read into a buffer of exactly the checked size."""
    buffer = bytearray(header.nbytes)
    view = memoryview(buffer)
    truncated = AuditError(f"the .npz member {info.filename!r} ends before its declared size")
    with archive.open(info) as stream:
        if len(stream.read(header.offset)) != header.offset:
            raise truncated
        position = 0
        while position < header.nbytes:
            chunk = stream.read(min(_READ_CHUNK, header.nbytes - position))
            if not chunk:
                raise truncated
            view[position : position + len(chunk)] = chunk
            position += len(chunk)
    view.release()
    array = np.frombuffer(buffer, dtype=header.dtype, count=header.count)
    return array.reshape(header.shape, order="F" if header.fortran_order else "C")
