"""When every password-hashing slot is taken and the queue for one is full, a further
sign-in is refused at once (503), without waiting: waiting callers hold server
threads, so only ``hash_queue`` of them may wait, each at most ``hash_wait_s``."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from tests.server.fast_setup import fast_hasher

from cleanroom.errors import ServiceUnavailable
from cleanroom.server.accounts import Accounts
from cleanroom.server.store import Store

PASSWORD = "correct horse battery staple"
ALICE = "alice@example.org"
WAIT_S = 3.0  # how long a queued caller may wait: far longer than "at once"
AT_ONCE_S = 1.0


def _accounts(tmp_path: Path, hash_queue: int) -> Accounts:
    accounts = Accounts(
        Store(tmp_path / "db.sqlite3"),
        open_registration=True,
        token_ttl_s=60,
        hash_slots=1,
        hash_queue=hash_queue,
        hash_wait_s=WAIT_S,
        hasher=fast_hasher(),
    )
    accounts.add_user(ALICE, PASSWORD)
    return accounts


def _refused_at_once(accounts: Accounts) -> None:
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="busy"):
        accounts.sign_in(ALICE, PASSWORD)
    assert time.monotonic() - started < AT_ONCE_S


def test_with_no_queue_a_caller_is_refused_at_once(tmp_path: Path) -> None:
    accounts = _accounts(tmp_path, hash_queue=0)
    with accounts._hashing():  # the one slot is taken
        _refused_at_once(accounts)
    assert accounts.sign_in(ALICE, PASSWORD).email == ALICE


def test_with_the_queue_full_a_further_caller_is_refused_at_once(tmp_path: Path) -> None:
    accounts = _accounts(tmp_path, hash_queue=1)
    queued: list[str] = []
    with accounts._hashing():  # the one slot is taken
        waiter = threading.Thread(
            target=lambda: queued.append(accounts.sign_in(ALICE, PASSWORD).email)
        )
        waiter.start()
        deadline = time.monotonic() + AT_ONCE_S
        while accounts._hash_admitted < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert accounts._hash_admitted == 2  # the slot's holder and one caller waiting
        _refused_at_once(accounts)
    waiter.join(WAIT_S + 1)
    assert queued == [ALICE]  # the queued caller got the slot once it was free
    assert accounts._hash_admitted == 0
