"""A new account's password needs at least 12 characters: 11 are refused, 12 accepted,
on both paths that set one (open sign-up and the operator's add_user)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.server.fast_setup import new_accounts

from cleanroom.errors import InvalidRequest
from cleanroom.server.accounts import MIN_PASSWORD_LENGTH, Accounts


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    return new_accounts(tmp_path)


@pytest.mark.parametrize("path", ["sign_up", "add_user"])
def test_the_minimum_password_length_is_inclusive(accounts: Accounts, path: str) -> None:
    assert MIN_PASSWORD_LENGTH == 12
    create = getattr(accounts, path)
    with pytest.raises(InvalidRequest, match="at least 12 characters"):
        create("short@example.org", "p" * (MIN_PASSWORD_LENGTH - 1))
    assert create("exact@example.org", "p" * MIN_PASSWORD_LENGTH) == "exact@example.org"
    assert accounts.sign_in("exact@example.org", "p" * MIN_PASSWORD_LENGTH).email == (
        "exact@example.org"
    )
