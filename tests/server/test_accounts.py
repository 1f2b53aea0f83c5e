"""Accounts: Argon2id hashes, expiring opaque tokens, closed registration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher

from cleanroom.errors import (
    AccessDenied,
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    ServiceUnavailable,
)
from cleanroom.server.accounts import (
    FAILURES_BEFORE_LOCKOUT,
    FORGET_FAILURES_AFTER_S,
    LOCKOUT_MAX_S,
    Accounts,
    _Throttle,
)
from cleanroom.server.store import Store

PASSWORD = "correct horse battery staple"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite3")


def test_passwords_are_stored_as_argon2id_hashes(store: Store) -> None:
    Accounts(store, open_registration=True, token_ttl_s=60).sign_up("A@Example.org", PASSWORD)
    stored = store.password_hash("a@example.org")
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_expired_token_is_refused(store: Store) -> None:
    accounts = Accounts(store, open_registration=True, token_ttl_s=-1)
    accounts.sign_up("a@example.org", PASSWORD)
    session = accounts.sign_in("a@example.org", PASSWORD)
    with pytest.raises(AuthenticationFailed, match="expired"):
        accounts.authenticate(session.token)


def test_tokens_are_stored_as_digests_and_forgeries_fail(store: Store) -> None:
    accounts = Accounts(store, open_registration=True, token_ttl_s=60)
    accounts.sign_up("a@example.org", PASSWORD)
    session = accounts.sign_in("a@example.org", PASSWORD)
    assert accounts.authenticate(session.token) == "a@example.org"
    rows = store.connection.execute("SELECT token_digest FROM sessions").fetchall()
    assert all(session.token.encode() not in bytes(r[0]) for r in rows)
    for forged in ("", session.token[:-1], session.token + "x"):
        with pytest.raises(AuthenticationFailed):
            accounts.authenticate(forged)


def test_a_remembered_session_still_expires(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = Accounts(store, open_registration=True, token_ttl_s=60)
    accounts.sign_up("a@example.org", PASSWORD)
    session = accounts.sign_in("a@example.org", PASSWORD)
    assert accounts.authenticate_from_memory(session.token) is None  # not seen yet
    assert accounts.authenticate(session.token) == "a@example.org"
    assert accounts.authenticate_from_memory(session.token) == "a@example.org"
    later = session.expires + 1.0
    monkeypatch.setattr("cleanroom.server.accounts.time.time", lambda: later)
    for check in (accounts.authenticate, accounts.authenticate_from_memory):
        with pytest.raises(AuthenticationFailed, match="expired"):
            check(session.token)


def test_memory_never_answers_for_an_unknown_or_missing_token(store: Store) -> None:
    accounts = Accounts(store, open_registration=True, token_ttl_s=60)
    accounts.sign_up("a@example.org", PASSWORD)
    session = accounts.sign_in("a@example.org", PASSWORD)
    accounts.authenticate(session.token)
    assert accounts.authenticate_from_memory(session.token + "x") is None
    with pytest.raises(AuthenticationFailed, match="bearer token"):
        accounts.authenticate_from_memory(None)
    with pytest.raises(AuthenticationFailed, match="not valid"):
        accounts.authenticate(session.token + "x")


@pytest.mark.parametrize(
    ("email", "password", "error"),
    [
        ("not-an-email", PASSWORD, InvalidRequest),
        ("a@example.org", "short", InvalidRequest),
    ],
)
def test_bad_sign_ups(store: Store, email: str, password: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        Accounts(store, open_registration=True, token_ttl_s=60).sign_up(email, password)


def test_duplicate_and_closed_registration(store: Store) -> None:
    accounts = Accounts(store, open_registration=True, token_ttl_s=60)
    accounts.sign_up("a@example.org", PASSWORD)
    with pytest.raises(Conflict):
        accounts.sign_up("A@example.org", PASSWORD)
    closed = Accounts(store, open_registration=False, token_ttl_s=60)
    with pytest.raises(AccessDenied, match="closed"):
        closed.sign_up("b@example.org", PASSWORD)
    closed.add_user("b@example.org", PASSWORD)
    assert closed.sign_in("b@example.org", PASSWORD).email == "b@example.org"


# --- F7: rationed password hashing and per-email lockouts --------------------------------

WRONG = "not the password at all"
ALICE = "alice@example.org"
NOBODY = "nobody@example.org"  # no account


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingHasher(PasswordHasher):
    """Argon2id with small parameters (the tests hash often), counting verifications."""

    __slots__ = ("verified",)

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


def _accounts(store: Store, clock: Clock, hasher: CountingHasher, **kw: Any) -> Accounts:
    accounts = Accounts(
        store, open_registration=True, token_ttl_s=60, clock=clock, hasher=hasher, **kw
    )
    accounts.add_user(ALICE, PASSWORD)
    return accounts


def _fail(accounts: Accounts, email: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(AuthenticationFailed, match="wrong email or password"):
            accounts.sign_in(email, WRONG)


def _paused(accounts: Accounts, email: str, password: str, wait_s: int) -> None:
    with pytest.raises(AuthenticationFailed, match="sign-in is paused") as refused:
        accounts.sign_in(email, password)
    assert refused.value.status == 401
    assert refused.value.remedy == f"wait {wait_s} s before trying again"
    assert password not in refused.value.diagnostics()


def test_five_failures_pause_sign_in_even_with_the_right_password(
    store: Store, clock: Clock, hasher: CountingHasher
) -> None:
    accounts = _accounts(store, clock, hasher)
    _fail(accounts, ALICE, FAILURES_BEFORE_LOCKOUT)
    hashed = hasher.verified
    _paused(accounts, ALICE, PASSWORD, wait_s=1)
    _paused(accounts, ALICE, WRONG, wait_s=1)
    assert hasher.verified == hashed  # no hash runs while locked out
    clock.now += 1
    _fail(accounts, ALICE, 1)  # the lockout over, one more failure doubles it
    _paused(accounts, ALICE, PASSWORD, wait_s=2)
    clock.now += 1
    _paused(accounts, ALICE, PASSWORD, wait_s=1)
    clock.now += 1
    assert accounts.sign_in(ALICE, PASSWORD).email == ALICE


def test_a_success_resets_the_count(store: Store, clock: Clock, hasher: CountingHasher) -> None:
    accounts = _accounts(store, clock, hasher)
    _fail(accounts, ALICE, FAILURES_BEFORE_LOCKOUT - 1)
    accounts.sign_in(ALICE, PASSWORD)
    _fail(accounts, ALICE, FAILURES_BEFORE_LOCKOUT - 1)  # not locked: the count restarted
    assert accounts.sign_in(ALICE, PASSWORD).email == ALICE


def test_emails_without_an_account_are_treated_the_same(
    store: Store, clock: Clock, hasher: CountingHasher
) -> None:
    accounts = _accounts(store, clock, hasher)

    def answers(email: str) -> list[tuple[str, str, str]]:
        seen = []
        for _ in range(FAILURES_BEFORE_LOCKOUT + 2):
            with pytest.raises(AuthenticationFailed) as refused:
                accounts.sign_in(email, WRONG)
            seen.append((refused.value.code, refused.value.message, refused.value.remedy))
        return seen

    before = hasher.verified
    known = answers(ALICE)
    hashes_known = hasher.verified - before
    unknown = answers(NOBODY)
    assert known == unknown
    assert hasher.verified - before == 2 * hashes_known == 2 * FAILURES_BEFORE_LOCKOUT
    assert "paused" in known[-1][1]


def test_a_lockout_is_per_email_and_spares_issued_sessions(
    store: Store, clock: Clock, hasher: CountingHasher
) -> None:
    accounts = _accounts(store, clock, hasher)
    accounts.add_user("bob@example.org", PASSWORD)
    session = accounts.sign_in(ALICE, PASSWORD)
    _fail(accounts, " Alice@Example.org ", FAILURES_BEFORE_LOCKOUT)  # the same account
    _paused(accounts, ALICE, PASSWORD, wait_s=1)
    assert accounts.authenticate(session.token) == ALICE
    assert accounts.sign_in("bob@example.org", PASSWORD).email == "bob@example.org"


@pytest.mark.parametrize(
    ("failures", "locked_s"),
    [
        (1, 0),
        (FAILURES_BEFORE_LOCKOUT - 1, 0),
        (5, 1),
        (6, 2),
        (7, 4),
        (14, 512),
        (15, 900),
        (40, 900),
        (200, 900),
    ],
)
def test_lockouts_double_up_to_fifteen_minutes(failures: int, locked_s: int) -> None:
    clock = Clock()
    throttle = _Throttle(clock, max_emails=10)
    for _ in range(failures):
        throttle.begin(ALICE)
        throttle.end(ALICE, succeeded=False)
        clock.now += LOCKOUT_MAX_S  # each attempt after the lockout before it
    clock.now -= LOCKOUT_MAX_S  # back to the last failure
    if locked_s:
        clock.now += locked_s - 0.5
        with pytest.raises(AuthenticationFailed, match="paused"):
            throttle.begin(ALICE)
        clock.now += 0.5
    throttle.begin(ALICE)  # admitted once the lockout is over


def test_parallel_attempts_cannot_overshoot_the_threshold() -> None:
    throttle = _Throttle(Clock(), max_emails=10)
    for _ in range(FAILURES_BEFORE_LOCKOUT):  # all at once, none finished yet
        throttle.begin(ALICE)
    with pytest.raises(AuthenticationFailed, match="paused"):
        throttle.begin(ALICE)
    for _ in range(FAILURES_BEFORE_LOCKOUT):
        throttle.end(ALICE, succeeded=None)  # undecided (for instance: the server was busy)
    throttle.begin(ALICE)  # undecided attempts count nothing


def test_a_count_is_forgotten_after_a_quiet_day() -> None:
    clock = Clock()
    throttle = _Throttle(clock, max_emails=10)
    for _ in range(FAILURES_BEFORE_LOCKOUT - 1):
        throttle.begin(ALICE)
        throttle.end(ALICE, succeeded=False)
    clock.now += FORGET_FAILURES_AFTER_S
    throttle.begin(ALICE)
    throttle.end(ALICE, succeeded=False)  # the first of a new count: no lockout
    throttle.begin(ALICE)


def test_the_table_is_bounded_and_forgets_the_oldest_failure_first(
    store: Store, clock: Clock, hasher: CountingHasher
) -> None:
    accounts = _accounts(store, clock, hasher, max_throttled_emails=3)
    _fail(accounts, ALICE, FAILURES_BEFORE_LOCKOUT)
    _fail(accounts, "stranger0@example.org", 1)
    _fail(accounts, "stranger1@example.org", 1)
    assert len(accounts._throttle) == 3
    _paused(accounts, ALICE, PASSWORD, wait_s=1)  # still remembered
    for n in range(2, 10):
        _fail(accounts, f"stranger{n}@example.org", 1)
    assert len(accounts._throttle) == 3
    # Pushed out by three later failures (max_throttled_emails of them; 10,000 by default).
    assert accounts.sign_in(ALICE, PASSWORD).email == ALICE


@pytest.mark.parametrize(
    ("hash_queue", "call"),
    [
        (0, lambda a: a.sign_in(ALICE, PASSWORD)),  # no room to wait: refused at once
        (1, lambda a: a.sign_in(ALICE, PASSWORD)),  # waited hash_wait_s for the slot
        (0, lambda a: a.sign_in(NOBODY, WRONG)),
        (1, lambda a: a.sign_up("new@example.org", PASSWORD)),
        (0, lambda a: a.add_user("new@example.org", PASSWORD)),
    ],
    ids=["sign-in, queue full", "sign-in, wait over", "unknown email", "sign-up", "add user"],
)
def test_busy_hashing_answers_service_unavailable(
    store: Store,
    clock: Clock,
    hasher: CountingHasher,
    hash_queue: int,
    call: Callable[[Accounts], object],
) -> None:
    accounts = _accounts(
        store, clock, hasher, hash_slots=1, hash_queue=hash_queue, hash_wait_s=0.01
    )
    hashed = hasher.verified
    with accounts._hashing():  # the one slot is taken
        for _ in range(FAILURES_BEFORE_LOCKOUT + 1):
            with pytest.raises(ServiceUnavailable, match="busy") as refused:
                call(accounts)
            assert refused.value.status == 503
    assert hasher.verified == hashed
    assert len(accounts._throttle) == 0  # nothing was decided, nothing counted
    # the slot is free again: the same call goes through (or fails on its merits)
    assert accounts.sign_in(ALICE, PASSWORD).email == ALICE
    assert store.password_hash("new@example.org") is None
