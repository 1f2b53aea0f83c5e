"""Per-instance runtime limits: chosen by the model owner, bounded by the operator.

An instance may lower any limit the service runs under and choose how many
sandboxed workers serve it; it may never exceed the service's own limits.

Every ceiling is finite. The service's limits are ceilings as they are (a
service limit of 0 leaves an instance nothing to choose: 0 never means
"unlimited" here), with one exception: ``intra_op_threads`` 0 means "the
runtime's default", which is a thread per core the process may run on, so the
ceiling is then that core count. An instance may ask for 0 (the runtime's
default) only when the service runs with it too: under an explicit service
count, 0 would mean more threads than the service's.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

from cleanroom.errors import InvalidRequest
from cleanroom.runtime.base import RuntimeLimits

__all__ = ["INSTANCE_LIMITS", "MAX_WORKERS", "available_cpus", "instance_limits"]

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
        floor, ceiling = _bounds(service, name)
        finite = not isinstance(value, float) or math.isfinite(value)
        if not (finite and floor <= value <= ceiling):
            problems.append(f"{name}: {_shown(value)} is outside {floor}..{ceiling}")
            continue
        changes[name] = kind(value)
    if problems:
        raise InvalidRequest("invalid instance limits: " + "; ".join(problems))
    return dataclasses.replace(service, **changes)


def _bounds(service: RuntimeLimits, name: str) -> tuple[int, float]:
    """The lowest and highest value an instance may choose for the limit *name*."""
    if name == "workers":
        return 1, MAX_WORKERS
    ceiling = getattr(service, name)
    if name != "intra_op_threads":
        return 1, ceiling
    if ceiling > 0:
        return 1, ceiling
    # The service runs with the runtime's default: a thread per available core.
    return 0, available_cpus()


def available_cpus() -> int:
    """The number of cores this process may run on (its affinity mask, where known)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _shown(value: float) -> str:
    # str() of an integer past 4300 digits raises; no limit is anywhere near 64 bits.
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return str(value)
