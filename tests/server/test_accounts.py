"""Accounts: Argon2id hashes, expiring opaque tokens, closed registration."""

from __future__ import annotations

from pathlib import Path

import pytest

from cleanroom.errors import AccessDenied, AuthenticationFailed, Conflict, InvalidRequest
from cleanroom.server.accounts import Accounts
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
