"""A sealed request is accepted once, and only while its creation time is in the window.

:class:`ReplayGuard` refuses a request created more than ``window_s`` seconds
before the clock, one dated more than a minute ahead of it, and any token it
has already seen. It remembers the tokens it accepted until they are too old to
pass the window check anyway, and forgets only those: a token that could still
be replayed is never dropped, however many are remembered.

The clock is injected (``now=``); the edges are the code's own constants,
named below.
"""

from __future__ import annotations

import pytest

from cleanroom.errors import ReplayDetected
from cleanroom.server.replay import ReplayGuard
from cleanroom.server.settings import ServerSettings

WINDOW_S = ServerSettings.replay_window_s  # the service's default window
FUTURE_SKEW_S = 60  # how far ahead of the clock a request may be dated (docs/envelope.md)
CAPACITY = 4096  # enough tokens that remembering them all would matter
NOW = 1_800_000_000  # an arbitrary, whole-second clock reading
JUST = 0.001  # far above float resolution at NOW, far below a second


def _token(n: int) -> bytes:
    return n.to_bytes(32, "big")


@pytest.fixture
def guard() -> ReplayGuard:
    return ReplayGuard(WINDOW_S)


@pytest.mark.parametrize(
    ("created", "now"),
    [
        pytest.param(NOW, NOW, id="created now"),
        pytest.param(NOW - WINDOW_S, NOW, id="exactly at the window's old edge"),
        pytest.param(NOW + FUTURE_SKEW_S, NOW, id="exactly at the allowed future skew"),
    ],
)
def test_a_request_inside_the_window_is_accepted(
    guard: ReplayGuard, created: int, now: float
) -> None:
    guard.check(_token(1), created, now=now)


@pytest.mark.parametrize(
    ("created", "now", "message"),
    [
        pytest.param(NOW - WINDOW_S - 1, NOW, "older than", id="a second past the old edge"),
        pytest.param(NOW, NOW + WINDOW_S + JUST, "older than", id="just past the old edge"),
        pytest.param(
            NOW + FUTURE_SKEW_S + 1, NOW, "in the future", id="a second past the future skew"
        ),
        pytest.param(
            NOW, NOW - FUTURE_SKEW_S - JUST, "in the future", id="just past the future skew"
        ),
    ],
)
def test_a_request_outside_the_window_is_refused(
    guard: ReplayGuard, created: int, now: float, message: str
) -> None:
    with pytest.raises(ReplayDetected, match=message):
        guard.check(_token(1), created, now=now)
    # Refused for its date, not remembered: the same token inside the window passes.
    guard.check(_token(1), NOW, now=NOW)


def test_the_window_is_the_one_the_guard_was_given() -> None:
    short = ReplayGuard(10)
    short.check(_token(1), NOW - 10, now=NOW)
    with pytest.raises(ReplayDetected, match="older than the 10 s replay window"):
        short.check(_token(2), NOW - 11, now=NOW)


@pytest.mark.parametrize(
    "replayed_at",
    [
        pytest.param(NOW, id="at once"),
        pytest.param(NOW + WINDOW_S, id="at the last instant the window admits it"),
    ],
)
def test_a_token_already_received_is_refused(guard: ReplayGuard, replayed_at: float) -> None:
    guard.check(_token(1), NOW, now=NOW)
    with pytest.raises(ReplayDetected, match="already received"):
        guard.check(_token(1), NOW, now=replayed_at)
    # The refusal is the token's, not the time's: another token passes.
    guard.check(_token(2), NOW, now=replayed_at)


def test_a_duplicate_is_refused_whatever_creation_time_it_claims(guard: ReplayGuard) -> None:
    guard.check(_token(1), NOW, now=NOW)
    with pytest.raises(ReplayDetected, match="already received"):
        guard.check(_token(1), NOW + 1, now=NOW)


def test_the_guard_forgets_only_expired_tokens(guard: ReplayGuard) -> None:
    # Half of the tokens are accepted at the oldest creation time the window
    # admits, half at the newest; all are remembered until the guard is full.
    old = NOW - WINDOW_S
    for n in range(CAPACITY // 2):
        guard.check(_token(n), old, now=NOW)
    for n in range(CAPACITY // 2, CAPACITY):
        guard.check(_token(n), NOW, now=NOW)
    assert len(guard._seen) == CAPACITY
    for n in (0, CAPACITY // 2 - 1, CAPACITY // 2, CAPACITY - 1):
        with pytest.raises(ReplayDetected, match="already received"):
            guard.check(_token(n), old if n < CAPACITY // 2 else NOW, now=NOW)

    # Later, the old half can no longer pass the window check: the next new
    # token's check forgets exactly that half.
    later = old + WINDOW_S + FUTURE_SKEW_S + 1
    guard.check(_token(CAPACITY), later, now=later)
    assert len(guard._seen) == CAPACITY // 2 + 1
    with pytest.raises(ReplayDetected, match="older than"):
        guard.check(_token(0), old, now=later)  # pruned, and still refused
    # The newer half is still replayable by its date, so it was kept.
    for n in (CAPACITY // 2, CAPACITY - 1, CAPACITY):
        with pytest.raises(ReplayDetected, match="already received"):
            guard.check(_token(n), NOW, now=later)


def test_pruning_keeps_a_token_until_the_window_no_longer_admits_it(guard: ReplayGuard) -> None:
    # Accepted at the newest date the clock allows, then the guard fills up and
    # prunes at the last instant that token's date still passes the window check.
    guard.check(_token(0), NOW + FUTURE_SKEW_S, now=NOW)
    for n in range(1, CAPACITY + 1):
        guard.check(_token(n), NOW, now=NOW)
    last_instant = NOW + FUTURE_SKEW_S + WINDOW_S
    guard.check(_token(CAPACITY + 1), last_instant, now=last_instant)
    with pytest.raises(ReplayDetected, match="already received"):
        guard.check(_token(0), NOW + FUTURE_SKEW_S, now=last_instant)
