"""Per-instance limits may lower the service's limits, never raise them."""

from __future__ import annotations

from typing import Any

import pytest

from cleanroom.errors import InvalidRequest
from cleanroom.runtime.base import RuntimeLimits
from cleanroom.server.limits import MAX_WORKERS, instance_limits

SERVICE = RuntimeLimits(request_timeout_s=30.0, memory_bytes=8 << 30, cpu_seconds=600)


def test_no_request_keeps_the_service_limits() -> None:
    assert instance_limits(SERVICE, None) is SERVICE
    assert instance_limits(SERVICE, {}) is SERVICE


def test_an_instance_may_lower_limits_and_choose_workers() -> None:
    got = instance_limits(SERVICE, {"request_timeout_s": 2, "workers": 3, "memory_bytes": 1 << 30})
    assert (got.request_timeout_s, got.workers, got.memory_bytes) == (2.0, 3, 1 << 30)
    assert got.cpu_seconds == SERVICE.cpu_seconds


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ({"memory_bytes": 9 << 30}, "memory_bytes"),
        ({"request_timeout_s": 31}, "request_timeout_s"),
        ({"workers": MAX_WORKERS + 1}, "workers"),
        ({"workers": 0}, "workers"),
        ({"cpu_seconds": 1.5}, "integer"),
        ({"open_files": "many"}, "number"),
        ({"workers": True}, "number"),
        ({"max_model_bytes": 1}, "unknown"),
        ({"bogus": 1, "workers": 99}, "bogus"),
    ],
)
def test_bad_limits_are_refused_by_name(requested: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        instance_limits(SERVICE, requested)
