"""Fixtures for the policy engine and the decision log: fixed keys, a fixed clock."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.policy import DecisionLog, content_digest


@pytest.fixture
def log_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture
def other_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


class Clock:
    """A clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(":memory:", check_same_thread=False)
    yield c
    c.close()


PARTIES = ("bank-a@example.com", "bank-b@example.com", "owner@example.com")


def fill(log: DecisionLog, n: int) -> None:
    """n decisions over two instances and three parties, every third denied."""
    for i in range(n):
        log.append(
            instance_id=f"inst-{i % 2}",
            action="predict",
            party=PARTIES[i % 3],
            decision=i % 3 != 2,
            reason=None if i % 3 != 2 else "query budget exhausted",
            policy_digest=content_digest(b"policy"),
            model_digest=content_digest(b"model"),
            request_digest=content_digest(f"request {i}".encode()),
            response_digest=content_digest(f"response {i}".encode()) if i % 3 != 2 else None,
        )


@pytest.fixture(name="fill")
def fill_fixture() -> Callable[[DecisionLog, int], None]:
    return fill


@pytest.fixture
def filled_log(
    conn: sqlite3.Connection, log_key: ed25519.Ed25519PrivateKey, clock: Clock
) -> DecisionLog:
    log = DecisionLog(conn, log_key, clock=clock)
    fill(log, 9)
    return log


@pytest.fixture
def make_log(
    conn: sqlite3.Connection, log_key: ed25519.Ed25519PrivateKey, clock: Clock
) -> Callable[[int], DecisionLog]:
    def make(n: int) -> DecisionLog:
        log = DecisionLog(conn, log_key, clock=clock)
        fill(log, n)
        return log

    return make
