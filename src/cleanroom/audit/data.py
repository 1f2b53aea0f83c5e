"""Labelled record sets for audits, their commitments, and the local file layouts.

An audit's member and non-member sets are committed to in the audit spec
*before* the audit runs; the runner refuses data whose commitment differs.
The commitment is over a normalised form (features float32, C order,
little-endian, two-dimensional; labels int64, one-dimensional), so the same
records give the same commitment whether they arrive as .npz, CSV or in
memory.

File layouts for the local CLI:

* ``.npz``: arrays ``features`` (shape [n, d]) and ``labels`` (shape [n],
  integer class indices). No other arrays; no pickled objects. Size limits and
  the checks made before inflating anything: :mod:`cleanroom.audit.npz`.
* ``.csv``: UTF-8, one header row, comma-separated; the column named
  ``label`` holds the class index and every other column, in file order, is a
  numeric feature.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cleanroom.audit._canonical import canonical_json
from cleanroom.audit.npz import read_npz_arrays
from cleanroom.errors import AuditError, ConfigurationError

__all__ = ["LabelledRecords", "load_records", "records_from_csv", "records_from_npz"]

_COMMITMENT_DOMAIN = b"cleanroom-audit-dataset/v1\n"
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class LabelledRecords:
    """Records (rows of ``features``) with their class ``labels``."""

    features: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        if self.features.ndim != 2:
            raise AuditError("features must be two-dimensional: [records, features]")
        if self.labels.ndim != 1 or self.labels.shape[0] != self.features.shape[0]:
            raise AuditError("labels must be one-dimensional with one label per record")
        if self.features.shape[0] == 0:
            raise AuditError("a record set must not be empty")
        if not np.isfinite(self.features).all():
            raise AuditError("features must be finite")
        if (self.labels < 0).any():
            raise AuditError("labels must be non-negative class indices")

    @classmethod
    def of(cls, features: npt.ArrayLike, labels: npt.ArrayLike) -> LabelledRecords:
        """Normalise arbitrary arrays (float32 features, int64 labels)."""
        f = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
        raw_labels = np.asarray(labels)
        if raw_labels.dtype.kind == "f":
            if not np.all(np.isfinite(raw_labels)) or not np.all(
                raw_labels == np.round(raw_labels)
            ):
                raise AuditError("labels must be integer class indices")
        elif raw_labels.dtype.kind not in "iub":
            raise AuditError("labels must be integer class indices")
        return cls(f, np.ascontiguousarray(raw_labels.astype(np.int64)))

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def commitment(self) -> str:
        """``sha256:…`` over the normalised arrays; goes into the audit spec."""
        header = canonical_json(
            {
                "features": {"dtype": "<f4", "shape": list(self.features.shape)},
                "labels": {"dtype": "<i8", "shape": list(self.labels.shape)},
            }
        )
        h = hashlib.sha256(_COMMITMENT_DOMAIN)
        h.update(header)
        h.update(b"\n")
        # Hashed in place (C order, little-endian): no copy when already normal.
        h.update(np.ascontiguousarray(self.features, dtype="<f4").data)
        h.update(np.ascontiguousarray(self.labels, dtype="<i8").data)
        return "sha256:" + h.hexdigest()

    def subset(self, index: npt.NDArray[np.intp]) -> LabelledRecords:
        return LabelledRecords(self.features[index], self.labels[index])


def records_from_npz(data: bytes, *, max_uncompressed_bytes: int | None = None) -> LabelledRecords:
    """An .npz record set from untrusted bytes, checked before anything is inflated.

    The checks and the default size limit: :func:`cleanroom.audit.npz.read_npz_arrays`.
    """
    features, labels = read_npz_arrays(data, max_uncompressed_bytes=max_uncompressed_bytes)
    return LabelledRecords.of(features, labels)


def records_from_csv(text: str) -> LabelledRecords:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise AuditError("empty CSV record set") from None
    if header.count(LABEL_COLUMN) != 1:
        raise AuditError(f"the CSV header must name exactly one {LABEL_COLUMN!r} column")
    label_at = header.index(LABEL_COLUMN)
    features: list[list[float]] = []
    labels: list[int] = []
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise AuditError(f"CSV line {line_no} has {len(row)} fields, expected {len(header)}")
        try:
            labels.append(int(row[label_at]))
            features.append([float(v) for i, v in enumerate(row) if i != label_at])
        except ValueError:
            raise AuditError(f"CSV line {line_no} holds a non-numeric value") from None
    if not labels:
        raise AuditError("the CSV record set has no rows")
    return LabelledRecords.of(np.array(features, dtype=np.float32), np.array(labels))


def load_records(path: Path) -> LabelledRecords:
    """Read a record set from an .npz or .csv file (layouts in the module docstring)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return records_from_npz(raw)
    if suffix == ".csv":
        try:
            return records_from_csv(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise AuditError(f"{path} is not UTF-8") from None
    raise ConfigurationError(f"{path}: record sets must be .npz or .csv files")
