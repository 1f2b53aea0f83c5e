"""Record sets: file layouts, normalisation and commitments."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from cleanroom.audit import LabelledRecords, load_records
from cleanroom.audit.data import records_from_csv, records_from_npz
from cleanroom.errors import AuditError, ConfigurationError


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_npz_and_csv_give_the_same_commitment(tmp_path: Path) -> None:
    features = np.array([[0.5, 1.0], [2.0, -3.25]], dtype=np.float64)
    labels = np.array([1, 0], dtype=np.int32)
    npz_path = tmp_path / "records.npz"
    npz_path.write_bytes(_npz(features=features, labels=labels))
    csv_path = tmp_path / "records.csv"
    csv_path.write_text("a,label,b\n0.5,1,1.0\n2.0,0,-3.25\n", encoding="utf-8")
    from_npz = load_records(npz_path)
    from_csv = load_records(csv_path)
    assert from_npz.features.dtype == np.float32
    assert from_npz.labels.dtype == np.int64
    assert from_npz.commitment() == from_csv.commitment()
    assert from_npz.commitment() == LabelledRecords.of(features, labels).commitment()


def test_commitment_binds_values_shape_and_order() -> None:
    base = LabelledRecords.of([[1.0, 2.0], [3.0, 4.0]], [0, 1])
    variants = [
        LabelledRecords.of([[1.0, 2.0], [3.0, 4.5]], [0, 1]),
        LabelledRecords.of([[3.0, 4.0], [1.0, 2.0]], [1, 0]),
        LabelledRecords.of([[1.0, 2.0], [3.0, 4.0]], [0, 0]),
        LabelledRecords.of([[1.0], [2.0], [3.0], [4.0]], [0, 1, 0, 1]),
    ]
    commitments = {base.commitment(), *(v.commitment() for v in variants)}
    assert len(commitments) == 5


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("extra array", _npz(features=np.zeros((2, 2)), labels=np.zeros(2), ids=np.zeros(2))),
        ("missing labels", _npz(features=np.zeros((2, 2)))),
        ("pickled objects", _npz(features=np.array([{"a": 1}], dtype=object), labels=np.zeros(1))),
        ("not a zip", b"PK\x03\x04garbage"),
        ("fractional labels", _npz(features=np.zeros((2, 2)), labels=np.array([0.5, 1.0]))),
        ("negative labels", _npz(features=np.zeros((2, 2)), labels=np.array([-1, 1]))),
        ("string labels", _npz(features=np.zeros((2, 2)), labels=np.array(["a", "b"]))),
        ("label count mismatch", _npz(features=np.zeros((2, 2)), labels=np.zeros(3, int))),
        ("one-dimensional features", _npz(features=np.zeros(2), labels=np.zeros(2, int))),
        ("empty", _npz(features=np.zeros((0, 2)), labels=np.zeros(0, int))),
        ("non-finite", _npz(features=np.array([[np.inf]]), labels=np.zeros(1, int))),
    ],
)
def test_npz_refusals(name: str, data: bytes) -> None:
    with pytest.raises(AuditError):
        records_from_npz(data)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty", ""),
        ("no label column", "a,b\n1,2\n"),
        ("two label columns", "label,label\n1,2\n"),
        ("short row", "a,label\n1\n"),
        ("non-numeric", "a,label\nx,1\n"),
        ("fractional label", "a,label\n1,0.5\n"),
        ("header only", "a,label\n"),
    ],
)
def test_csv_refusals(name: str, text: str) -> None:
    with pytest.raises(AuditError):
        records_from_csv(text)


def test_file_refusals(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        load_records(tmp_path / "missing.npz")
    other = tmp_path / "records.json"
    other.write_text("{}")
    with pytest.raises(ConfigurationError):
        load_records(other)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"\xe9,label\n1,0\n")
    with pytest.raises(AuditError):
        load_records(latin)
