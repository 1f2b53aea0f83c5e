"""Per-instance runtime limits: chosen by the model owner, bounded by the operator.

An instance may lower any limit the service runs under and choose how many
sandboxed workers serve it; it may never exceed the service's own limits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cleanroom.errors import InvalidRequest
from cleanroom.runtime.base import RuntimeLimits

__all__ = ["INSTANCE_LIMITS", "MAX_WORKERS", "instance_limits"]

# The fields an instance may set, and whether each is an integer or a number.
INSTANCE_LIMITS: dict[str, type] = {
    "request_timeout_s": float,
    "memory_bytes": int,
    "cpu_seconds": int,
    "open_files": int,
    "workers": int,
    "intra_op_threads": int,
}
MAX_WORKERS = 8


def instance_limits(service: RuntimeLimits, requested: Mapping[str, Any] | None) -> RuntimeLimits:
    """The limits for one instance; :class:`InvalidRequest` names every bad field."""
    if not requested:
        return service
    problems: list[str] = []
    changes: dict[str, Any] = {}
    for name, value in requested.items():
        kind = INSTANCE_LIMITS.get(name)
        if kind is None:
            problems.append(f"{name}: unknown (allowed: {sorted(INSTANCE_LIMITS)})")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{name}: must be a number")
            continue
        if kind is int and not isinstance(value, int):
            problems.append(f"{name}: must be an integer")
            continue
        ceiling = MAX_WORKERS if name == "workers" else getattr(service, name)
        floor = 0 if name == "intra_op_threads" else 1
        if not floor <= value <= (ceiling if ceiling else value):
            problems.append(f"{name}: {value} is outside {floor}..{ceiling}")
            continue
        changes[name] = kind(value)
    if problems:
        raise InvalidRequest("invalid instance limits: " + "; ".join(problems))
    return dataclasses.replace(service, **changes)
