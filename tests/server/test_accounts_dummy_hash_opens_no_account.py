"""The dummy hash that times sign-ins for unknown emails opens no account.

For an email with no account, sign-in verifies the password against a fixed
dummy hash so that it takes as long as a wrong password. The dummy password
then verifies: it must still be refused like any other wrong password, counted
as a failure, and give no session.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.server.fast_setup import new_accounts

from cleanroom.errors import AuthenticationFailed
from cleanroom.server.accounts import _DUMMY_PASSWORD, FAILURES_BEFORE_LOCKOUT, Accounts

NOBODY = "nobody@example.org"


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    return new_accounts(tmp_path)


@pytest.mark.parametrize("email", [NOBODY, " Nobody@Example.org "])
def test_the_dummy_password_signs_in_to_no_account(accounts: Accounts, email: str) -> None:
    with pytest.raises(AuthenticationFailed, match="wrong email or password"):
        accounts.sign_in(email, _DUMMY_PASSWORD)


def test_the_dummy_password_counts_as_a_failed_sign_in(accounts: Accounts) -> None:
    for _ in range(FAILURES_BEFORE_LOCKOUT):
        with pytest.raises(AuthenticationFailed, match="wrong email or password"):
            accounts.sign_in(NOBODY, _DUMMY_PASSWORD)
    with pytest.raises(AuthenticationFailed, match="paused"):
        accounts.sign_in(NOBODY, _DUMMY_PASSWORD)
