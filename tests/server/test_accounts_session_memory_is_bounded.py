"""Sessions remembered in memory (to answer on the event loop without the database)
are bounded: past the bound the memory starts again, and a forgotten session is
then answered from the store, never from stale memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.server.fast_setup import new_accounts

from cleanroom.server import accounts as accounts_module
from cleanroom.server.accounts import Accounts

PASSWORD = "correct horse battery staple"
BOUND = 3


@pytest.fixture
def accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Accounts:
    monkeypatch.setattr(accounts_module, "_MAX_KNOWN_SESSIONS", BOUND)
    accounts = new_accounts(tmp_path)
    accounts.add_user("a@example.org", PASSWORD)
    return accounts


def test_remembered_sessions_never_exceed_the_bound(accounts: Accounts) -> None:
    tokens = [accounts.sign_in("a@example.org", PASSWORD).token for _ in range(3 * BOUND + 1)]
    for n, token in enumerate(tokens, start=1):
        assert accounts.authenticate(token) == "a@example.org"
        assert 1 <= len(accounts._known) <= BOUND, n
    # Forgotten sessions are still valid: the store answers for them.
    for token in tokens:
        assert accounts.authenticate(token) == "a@example.org"
    assert len(accounts._known) <= BOUND
