"""The simulated TEE's measurement: a digest of the installed ``cleanroom`` code.

On real hardware the measurement is the launch digest the TEE computes. In
simulation it is SHA-384 over every file of the installed ``cleanroom``
package, so it changes whenever the code changes. Files are taken in sorted
order of their POSIX path relative to the package directory; each contributes
``len(path) || path || len(content) || content`` with 8-byte big-endian
lengths, so no two file sets encode alike. Byte-code caches (``__pycache__``,
``*.pyc``) are skipped: they depend on the interpreter, not on the code.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import cleanroom

__all__ = ["measure_tree", "package_measurement"]


def _files(root: Path) -> list[tuple[str, Path]]:
    out = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        relative = path.relative_to(root)
        if "__pycache__" in relative.parts or path.suffix == ".pyc":
            continue
        out.append((relative.as_posix(), path))
    out.sort(key=lambda item: item[0].encode("utf-8"))
    return out


def measure_tree(root: Path) -> bytes:
    """SHA-384 (48 bytes) over the files under *root*, encoded as described above."""
    digest = hashlib.sha384()
    for name, path in _files(root):
        encoded = name.encode("utf-8")
        content = path.read_bytes()
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
        digest.update(len(content).to_bytes(8, "big"))
        digest.update(content)
    return digest.digest()


@cache
def package_measurement() -> bytes:
    """The 48-byte measurement of the installed ``cleanroom`` package (cached
    for the life of the process, since the loaded code does not change)."""
    return measure_tree(Path(cleanroom.__file__).resolve().parent)
