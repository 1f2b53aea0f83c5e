"""Per-instance limits may lower the service's limits, never raise them."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

from cleanroom.errors import InvalidRequest
from cleanroom.runtime.base import RuntimeLimits
from cleanroom.server.limits import MAX_WORKERS, available_cpus, instance_limits

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


# F10: every ceiling is finite. The service's intra_op_threads 0 means "the runtime's
# default" (a thread per core), so its ceiling is the core count; the tests pin it at 4.
CORES = 4


@pytest.fixture
def four_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cleanroom.server.limits.available_cpus", lambda: CORES)


@pytest.mark.parametrize(
    ("service", "requested", "expected"),
    [
        # the service runs with the runtime's default (0): up to a thread per core
        (SERVICE, 0, 0),
        (SERVICE, 1, 1),
        (SERVICE, CORES, CORES),
        # the service sets a count: up to that count, and not "the runtime's default"
        (RuntimeLimits(intra_op_threads=2), 1, 1),
        (RuntimeLimits(intra_op_threads=2), 2, 2),
        (RuntimeLimits(intra_op_threads=64), CORES + 1, CORES + 1),
    ],
)
def test_intra_op_threads_within_bounds_are_accepted(
    four_cores: None, service: RuntimeLimits, requested: int, expected: int
) -> None:
    assert instance_limits(service, {"intra_op_threads": requested}).intra_op_threads == expected


@pytest.mark.parametrize(
    ("service", "requested", "message"),
    [
        (SERVICE, CORES + 1, r"intra_op_threads: 5 is outside 0\.\.4"),
        (SERVICE, 256, r"intra_op_threads: 256 is outside 0\.\.4"),
        (SERVICE, 1 << 62, r"intra_op_threads: 4611686018427387904 is outside 0\.\.4"),
        (SERVICE, -1, r"intra_op_threads: -1 is outside 0\.\.4"),
        pytest.param(
            SERVICE,
            10**5000,
            r"intra_op_threads: an integer of 16610 bits is outside 0\.\.4",
            id="an integer too long to print",
        ),
        (RuntimeLimits(intra_op_threads=2), 3, r"intra_op_threads: 3 is outside 1\.\.2"),
        # 0 would be the runtime's default: a thread per core, more than the service's 2
        (RuntimeLimits(intra_op_threads=2), 0, r"intra_op_threads: 0 is outside 1\.\.2"),
    ],
)
def test_intra_op_threads_beyond_the_service_are_refused(
    four_cores: None, service: RuntimeLimits, requested: int, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        instance_limits(service, {"intra_op_threads": requested})


def test_threads_times_workers_stay_within_what_the_default_allows(four_cores: None) -> None:
    got = instance_limits(SERVICE, {"workers": MAX_WORKERS, "intra_op_threads": CORES})
    assert got.workers * got.intra_op_threads == MAX_WORKERS * CORES
    with pytest.raises(InvalidRequest, match="intra_op_threads"):
        instance_limits(SERVICE, {"workers": MAX_WORKERS, "intra_op_threads": 256})


@pytest.mark.parametrize("name", ["request_timeout_s", "memory_bytes", "cpu_seconds", "open_files"])
@pytest.mark.parametrize("requested", [1, 10**6, 1 << 62])
def test_a_zero_service_limit_is_a_ceiling_not_unlimited(name: str, requested: int) -> None:
    zero: dict[str, Any] = {name: 0}
    service = dataclasses.replace(RuntimeLimits(), **zero)
    with pytest.raises(InvalidRequest, match=rf"{name}: {requested} is outside 1\.\.0"):
        instance_limits(service, {name: requested})


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        (float("inf"), r"request_timeout_s: inf is outside 1\.\.30"),
        (float("nan"), r"request_timeout_s: nan is outside 1\.\.30"),
        (-float("inf"), r"request_timeout_s: -inf is outside 1\.\.30"),
        (0.5, r"request_timeout_s: 0\.5 is outside 1\.\.30"),
    ],
)
def test_non_finite_or_tiny_timeouts_are_refused(requested: float, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        instance_limits(SERVICE, {"request_timeout_s": requested})


def test_available_cpus_is_what_this_process_may_use() -> None:
    cpus = available_cpus()
    assert 1 <= cpus <= (os.cpu_count() or cpus)
