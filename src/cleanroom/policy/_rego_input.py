"""The input document, checked and handed to rego-cpp in one pass.

``regopy.Input(value)`` walks the value with abstract-base-class checks and
copies every string into a fresh buffer; for a document of a hundred values
that is most of an evaluation's cost. This module walks the document once,
refuses anything that is not plain JSON (the engine must never see a value
it would misread), and feeds rego-cpp's input builder (``regoInput*`` in its
C API) directly.

Refused: non-finite floats, integers outside int64, non-string keys, other
types, nesting deeper than 32, strings holding NUL (the C API takes
NUL-terminated strings, so ``"alice\\x00-evil"`` would reach the policy as
``"alice"``), and strings that are not UTF-8 text (a lone UTF-16 surrogate
such as ``"\\ud800"``, which ``json.loads`` accepts from ``\\u`` escapes).
"""

from __future__ import annotations

import math
from typing import Any

from regopy import Input

from cleanroom.errors import PolicyError

__all__ = ["MAX_DEPTH", "check_document", "to_input"]

MAX_DEPTH = 32
_INT64 = (-(2**63), 2**63 - 1)

try:  # rego-cpp's C API as regopy loads it; without it, regopy's own converter.
    from regopy import rego_shared as _shared

    _lib: Any = _shared.rego
    _new_input: Any = _shared.rego_new_input
    _put_null = _lib.regoInputNull
    _put_bool = _lib.regoInputBoolean
    _put_int = _lib.regoInputInt
    _put_float = _lib.regoInputFloat
    _put_str = _lib.regoInputString
    _put_item = _lib.regoInputObjectItem
    _put_object = _lib.regoInputObject
    _put_array = _lib.regoInputArray
except (ImportError, AttributeError):  # pragma: no cover - depends on the regopy build
    _lib = None


def _refuse(message: str) -> PolicyError:
    return PolicyError(f"the policy input is not a JSON document: {message}")


def _check_string(value: str) -> bytes:
    if "\x00" in value:
        raise _refuse("a string holds NUL")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse("a string holds an unpaired surrogate (it is not UTF-8 text)") from None


def _check_text(value: str) -> None:
    """:func:`_check_string` without keeping the bytes (ASCII needs no encoding)."""
    if not value.isascii() or "\x00" in value:
        _check_string(value)


def _check(value: Any, depth: int) -> None:
    """Validation only, for the fallback path and for parts not converted."""
    if depth > MAX_DEPTH:
        raise _refuse("nested too deeply")
    kind = type(value)
    if kind is str:
        _check_text(value)
    elif value is None or kind is bool:
        return
    elif kind is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise _refuse("an integer outside int64")
    elif kind is float:
        if not math.isfinite(value):
            raise _refuse("a non-finite number")
    elif kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise _refuse("a non-string key")
            _check_text(key)
            _check(item, depth + 1)
    elif kind is list or kind is tuple:
        for item in value:
            _check(item, depth + 1)
    else:
        raise _refuse(f"a {kind.__name__}")


def _put(p: Any, value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _refuse("nested too deeply")
    kind = type(value)
    if value is None:
        code = _put_null(p)
    elif kind is bool:
        code = _put_bool(p, value)
    elif kind is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise _refuse("an integer outside int64")
        code = _put_int(p, value)
    elif kind is float:
        if not math.isfinite(value):
            raise _refuse("a non-finite number")
        code = _put_float(p, value)
    elif kind is str:
        code = _put_str(p, _check_string(value))
    elif kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise _refuse("a non-string key")
            if _put_str(p, _check_string(key)) != 0:
                raise _refuse("the engine refused a key")
            _put(p, item, depth + 1)
            if _put_item(p) != 0:
                raise _refuse("the engine refused an object member")
        code = _put_object(p, len(value))
    elif kind is list or kind is tuple:
        for item in value:
            _put(p, item, depth + 1)
        code = _put_array(p, len(value))
    else:
        raise _refuse(f"a {kind.__name__}")
    if code != 0:
        raise _refuse("the engine refused a value")


def _as_dict(doc: Any) -> dict[str, Any]:
    if type(doc) is dict:
        return doc
    try:
        return dict(doc)
    except (TypeError, ValueError):
        raise _refuse("the document is not an object") from None


def check_document(doc: Any) -> dict[str, Any]:
    """*doc* as a dict; :class:`PolicyError` if it is not plain JSON (nothing is converted)."""
    checked = _as_dict(doc)
    _check(checked, 0)
    return checked


def to_input(doc: Any, *, fast: bool = True) -> Any:
    """A ``regopy.Input`` holding *doc*; :class:`PolicyError` if it is not plain JSON."""
    doc = _as_dict(doc)
    if fast and _lib is not None:
        built = Input.__new__(Input)
        # Owned by *built* from here on: Input.__del__ frees it, also when
        # the conversion below fails half-way.
        built._impl = _new_input()
        _put(built._impl, doc, 0)
        return built
    _check(doc, 0)
    return Input(doc)
