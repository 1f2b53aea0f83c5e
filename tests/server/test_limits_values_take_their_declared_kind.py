"""A limit an instance chooses is stored as the kind the runtime expects: a whole
number given for a timeout in seconds becomes a float."""

from __future__ import annotations

from cleanroom.runtime.base import RuntimeLimits
from cleanroom.server.limits import instance_limits

SERVICE = RuntimeLimits(request_timeout_s=30.0, memory_bytes=8 << 30, cpu_seconds=600)


def test_a_whole_number_timeout_becomes_a_float() -> None:
    got = instance_limits(SERVICE, {"request_timeout_s": 2, "workers": 3})
    assert type(got.request_timeout_s) is float
    assert got.request_timeout_s == 2.0
    assert type(got.workers) is int
