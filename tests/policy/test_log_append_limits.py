"""DecisionLog.append: its argument limits sit exactly where documented, and a
refused append leaves the log writable.

Names (instance, action, party) are non-empty strings of at most 256
characters, a reason at most 1024; the policy and request digests are
required, the model and response digests optional. The clock must return
timezone-aware datetimes: a naive one would be read as the host's local time
and logged as UTC. An append that fails part-way (inside the write
transaction) is rolled back, so the next append succeeds and no entry is
half-written.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.policy.documents import entry_args

from cleanroom.errors import InvalidRequest
from cleanroom.policy import DecisionLog, content_digest, verify_log

D = content_digest(b"x")


ACCEPTED = [
    ("instance_id of 256 characters", {"instance_id": "i" * 256}),
    ("action of 256 characters", {"action": "a" * 256}),
    ("party of 256 characters", {"party": "p" * 256}),
    ("reason of 1024 characters", {"decision": False, "reason": "r" * 1024}),
    ("no model digest", {"model_digest": None}),
    ("no response digest", {"response_digest": None}),
]


@pytest.mark.parametrize(("name", "changes"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_values_at_the_limits_are_logged(
    filled_log: DecisionLog, name: str, changes: dict[str, Any]
) -> None:
    entry = filled_log.append(**entry_args(**changes))
    for field, value in changes.items():
        if field != "decision":
            assert getattr(entry, field) == value
    assert verify_log(filled_log.export(), filled_log.public_key).entries[-1] == entry


REFUSED = [
    ("instance_id of 257 characters", {"instance_id": "i" * 257}, "instance_id"),
    ("action of 257 characters", {"action": "a" * 257}, "action"),
    ("party of 257 characters", {"party": "p" * 257}, "party"),
    ("reason of 1025 characters", {"decision": False, "reason": "r" * 1025}, "reason"),
    ("no request digest", {"request_digest": None}, "request_digest"),
    ("no policy digest", {"policy_digest": None}, "policy_digest"),
]


@pytest.mark.parametrize(("name", "changes", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_values_beyond_the_limits_are_refused(
    filled_log: DecisionLog, name: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        filled_log.append(**entry_args(**changes))
    assert filled_log.size == 9


class _Clock:
    """A UTC clock a test can make naive, or failing, for one reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
        self.next: str | None = None

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        mode, self.next = self.next, None
        if mode == "naive":
            return self.now.replace(tzinfo=None)
        if mode == "fail":
            raise RuntimeError("the clock failed")
        return self.now


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [("naive", InvalidRequest, "timezone-aware"), ("fail", RuntimeError, "clock failed")],
)
def test_a_failed_append_is_rolled_back_and_the_log_stays_writable(
    conn: sqlite3.Connection,
    log_key: ed25519.Ed25519PrivateKey,
    mode: str,
    error: type[Exception],
    message: str,
) -> None:
    clock = _Clock()
    log = DecisionLog(conn, log_key, clock=clock)
    log.append(**entry_args())
    clock.next = mode
    with pytest.raises(error, match=message):
        log.append(**entry_args(party="q"))
    assert log.size == 1
    assert conn.execute("SELECT COUNT(*) FROM cleanroom_decision_log").fetchone() == (1,)
    # The write transaction was closed: the next append goes through.
    entry = log.append(**entry_args(party="r"))
    assert entry.seq == 1
    assert [e.party for e in verify_log(log.export(), log.public_key).entries] == ["p", "r"]
