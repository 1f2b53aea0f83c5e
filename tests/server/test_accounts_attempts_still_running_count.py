"""Sign-in attempts for one email that are still running keep counting against its
lockout threshold when one of them finishes: finishing one attempt must not forget
the others (parallel guesses could then run past the threshold)."""

from __future__ import annotations

import pytest

from cleanroom.errors import AuthenticationFailed
from cleanroom.server.accounts import FAILURES_BEFORE_LOCKOUT, _Throttle

ALICE = "alice@example.org"


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("outcome", [False, None], ids=["a failure", "undecided"])
def test_finishing_one_attempt_keeps_the_others_counted(outcome: bool | None) -> None:
    throttle = _Throttle(Clock(), max_emails=10)
    for _ in range(FAILURES_BEFORE_LOCKOUT):  # all at once
        throttle.begin(ALICE)
    throttle.end(ALICE, succeeded=outcome)
    still_running = FAILURES_BEFORE_LOCKOUT - 1
    failures = 1 if outcome is False else 0
    if failures + still_running >= FAILURES_BEFORE_LOCKOUT:
        with pytest.raises(AuthenticationFailed, match="paused"):
            throttle.begin(ALICE)
    else:  # undecided: its place is free again, and only that one
        throttle.begin(ALICE)
        with pytest.raises(AuthenticationFailed, match="paused"):
            throttle.begin(ALICE)


def test_finished_attempts_leave_nothing_running() -> None:
    throttle = _Throttle(Clock(), max_emails=10)
    for _ in range(3):
        throttle.begin(ALICE)
    for _ in range(3):
        throttle.end(ALICE, succeeded=None)
    assert throttle._running == {}
