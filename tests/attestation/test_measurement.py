"""The simulated measurement: SHA-384 over the package files, unambiguous."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cleanroom.attestation.measurement import measure_tree, package_measurement


def _expected(files: dict[str, bytes]) -> bytes:
    digest = hashlib.sha384()
    for name in sorted(files):
        raw = name.encode()
        digest.update(len(raw).to_bytes(8, "big") + raw)
        digest.update(len(files[name]).to_bytes(8, "big") + files[name])
    return digest.digest()


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def test_measure_tree_follows_the_documented_encoding(tmp_path: Path) -> None:
    files = {"a.py": b"x = 1\n", "sub/b.pem": b"pem", "z/__init__.py": b""}
    assert measure_tree(_tree(tmp_path, files)) == _expected(files)


def test_byte_code_caches_are_skipped(tmp_path: Path) -> None:
    files = {"a.py": b"x = 1\n"}
    _tree(tmp_path, files)
    _tree(tmp_path, {"__pycache__/a.cpython-311.pyc": b"junk", "b.pyc": b"junk"})
    assert measure_tree(tmp_path) == _expected(files)


def test_changing_code_changes_the_measurement(tmp_path: Path) -> None:
    before = measure_tree(_tree(tmp_path / "one", {"a.py": b"x = 1\n"}))
    after = measure_tree(_tree(tmp_path / "two", {"a.py": b"x = 2\n"}))
    renamed = measure_tree(_tree(tmp_path / "three", {"b.py": b"x = 1\n"}))
    assert len({before, after, renamed}) == 3


def test_boundaries_between_path_and_content_are_unambiguous(tmp_path: Path) -> None:
    one = measure_tree(_tree(tmp_path / "one", {"ab": b"c"}))
    two = measure_tree(_tree(tmp_path / "two", {"a": b"bc"}))
    assert one != two


def test_package_measurement_is_48_bytes_and_stable() -> None:
    first = package_measurement()
    assert len(first) == 48
    assert package_measurement() == first
