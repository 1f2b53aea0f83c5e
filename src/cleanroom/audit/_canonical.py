"""Canonical JSON (RFC 8785, JSON Canonicalization Scheme) for specs and certificates.

Digests and signatures are computed over these bytes, so two parties that
serialise the same object independently get the same digest. Only the JSON
data model is accepted: ``dict`` with ``str`` keys, ``list``/``tuple``,
``str``, ``int``, finite ``float``, ``bool`` and ``None``.
"""

from __future__ import annotations

import hashlib
import json
import math
from decimal import Decimal
from typing import Any

from cleanroom.errors import Error, InvalidRequest

__all__ = ["canonical_json", "parse_json", "sha256_digest"]

# RFC 8785 §3.2.2.3: numbers are I-JSON (IEEE 754 doubles); integers beyond
# 2**53 would silently lose precision in other implementations.
_MAX_SAFE_INTEGER = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 encoding of *value*."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts).encode("utf-8")


def parse_json(data: bytes, what: str, error: type[Error]) -> Any:
    """*data* as UTF-8 JSON, refusing what would let two readers see different documents.

    A name repeated in one object (RFC 8259 leaves which one counts to the
    parser: Python keeps the last, others the first or refuse) and the
    non-standard ``NaN`` and ``Infinity`` raise *error*, naming *what*.
    """

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise error(f"{what} repeats a name in one object")
        return dict(pairs)

    def constant(name: str) -> Any:
        raise error(f"{what}: {name} is not valid JSON")

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=unique, parse_constant=constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise error(f"{what} is not UTF-8 JSON") from None


def sha256_digest(data: bytes) -> str:
    """``"sha256:" + hex`` of *data*, the digest notation used in specs and certificates."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise InvalidRequest("integer outside the I-JSON safe range in canonical JSON")
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_format_number(value))
    elif isinstance(value, str):
        out.append(_encode_string(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise InvalidRequest("canonical JSON object keys must be strings")
        # RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names.
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        out.append("{")
        for i, key in enumerate(keys):
            if i:
                out.append(",")
            out.append(_encode_string(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    else:
        raise InvalidRequest(f"type {type(value).__name__} has no canonical JSON form")


def _encode_string(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest("lone surrogate in a canonical JSON string") from None
    # json.dumps with ensure_ascii=False escapes exactly what RFC 8785 §3.2.2.2
    # requires: quote, backslash, the five short control escapes and the other
    # control characters as lower-case \u00xx.
    return json.dumps(text, ensure_ascii=False)


def _format_number(x: float) -> str:
    """ECMAScript Number.prototype.toString, as RFC 8785 §3.2.2.3 prescribes."""
    if not math.isfinite(x):
        raise InvalidRequest("NaN and infinities have no JSON form")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr() yields the shortest digit string that round-trips, which is the
    # digit string ECMA-262 §6.1.6.1.20 (Number::toString) asks for.
    digits_tuple = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits).rstrip("0") or "0"
    exponent = int(digits_tuple.exponent)
    trailing_zeros = len(digits_tuple.digits) - len(digits)
    k = len(digits)
    n = k + exponent + trailing_zeros  # value = 0.digits x 10^n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body
