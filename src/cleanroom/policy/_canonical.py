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

__all__ = ["canonical_json", "utf8_text"]


def _problem(value: Any, path: str) -> str | None:
    """Where *value* stops being canonicalisable, as a message; ``None`` if it is fine."""
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _problem(item, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                return f"canonical JSON keys must be ASCII strings (at {path})"
            found = _problem(item, f"{path}.{key}")
            if found is not None:
                return found
        return None
    return f"{type(value).__name__} cannot be canonicalised (at {path})"


def _fine(value: Any) -> bool:
    """Whether *value* holds only what canonical JSON allows (no paths built: the hot path)."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return True
    if kind is dict:
        return all(type(k) is str and k.isascii() and _fine(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_fine(v) for v in value)
    return _problem(value, "$") is None  # subclasses: the careful walk decides


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 form of *value*, which must hold no floats."""
    if not _fine(value):
        raise InvalidRequest(_problem(value, "$") or "the value cannot be canonicalised")
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(
            "canonical JSON is UTF-8 text; a string holds an unpaired surrogate"
        ) from None


def utf8_text(text: str) -> str:
    """*text* with every unpaired surrogate replaced by ``?``: always encodes as UTF-8.

    A Rego string may hold ``"\\ud800"``; a reason holding one could not be
    logged (canonical JSON is UTF-8), and every deny must be.
    """
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")
