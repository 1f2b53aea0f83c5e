"""Fixtures for the runtime tests: the committed model corpus and one shared supervisor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cleanroom.runtime import RuntimeLimits, Supervisor

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"

# Small limits so hostile models hit them quickly; ample for the fixtures.
TEST_LIMITS = RuntimeLimits(
    max_model_bytes=64 * 1024 * 1024,
    request_timeout_s=20.0,
    memory_bytes=2 * 1024**3,
    cpu_seconds=120,
    open_files=64,
    workers=1,
    intra_op_threads=1,
)


@pytest.fixture(scope="session")
def limits() -> RuntimeLimits:
    return TEST_LIMITS


@pytest.fixture(scope="session")
def model_bytes() -> Callable[[str], bytes]:
    """Read a committed fixture (regenerate with scripts/make_test_models.py)."""

    def read(name: str) -> bytes:
        return (MODELS / name).read_bytes()

    return read


@pytest.fixture(scope="session")
def supervisor() -> Iterator[Supervisor]:
    sup = Supervisor(TEST_LIMITS)
    yield sup
    sup.close()
