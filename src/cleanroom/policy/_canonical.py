"""Canonical JSON: the exact bytes that digests and signatures cover.

Log entries, checkpoints and the policy bundle are hashed or signed as
canonical JSON: object members sorted by key, no insignificant whitespace,
UTF-8, no floating-point numbers. For documents made of strings, integers,
booleans, null, arrays and objects with ASCII keys this is the JSON
Canonicalization Scheme (RFC 8785) output, so any JCS library reproduces it.
Floats are refused because their textual form is where JSON encoders differ.
"""

from __future__ import annotations

import json
from typing import Any

from cleanroom.errors import InvalidRequest

__all__ = ["canonical_json"]


def _check(value: Any, path: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise InvalidRequest(f"canonical JSON keys must be ASCII strings (at {path})")
            _check(item, f"{path}.{key}")
        return
    raise InvalidRequest(f"{type(value).__name__} cannot be canonicalised (at {path})")


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 form of *value*, which must hold no floats."""
    _check(value, "$")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
