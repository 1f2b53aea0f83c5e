"""Parsed reports for humans and for JSON: field name and value, spec names."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["report_fields"]


def _value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        if value.startswith(b"-----BEGIN"):
            # PEM text (a DCAP quote's PCK chain) reads better as text.
            return bytes(value).rstrip(b"\x00").decode("ascii", "replace")
        return bytes(value).hex()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return report_fields(value)
    if isinstance(value, Mapping):
        return {str(k): _value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    if isinstance(value, int | str | bool | float) or value is None:
        return value
    return str(value)


def report_fields(report: object) -> dict[str, Any]:
    """The public fields of a parsed report (a dataclass), JSON-ready: bytes as
    hex, nested structures as dicts. Fields whose name starts with ``_`` and
    the raw bytes (``raw``) are left out."""
    if not dataclasses.is_dataclass(report) or isinstance(report, type):
        return {"report": str(report)}
    out: dict[str, Any] = {}
    for field in dataclasses.fields(report):
        if field.name.startswith("_") or field.name == "raw":
            continue
        out[field.name] = _value(getattr(report, field.name))
    return out
