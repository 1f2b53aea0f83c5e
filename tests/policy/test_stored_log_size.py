"""stored_log_size: how many entries a data directory's log holds, read only.

The service reads it before it decides whether a missing sealed log key may
be made anew (only for a store that holds no entries), so "no log" must be
0 whichever way it is absent (no file, an empty file, a database without the
log's table), and a file that cannot be read is a service error, never 0.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.errors import ServiceUnavailable
from cleanroom.policy import DecisionLog
from cleanroom.policy.decision_log import stored_log_size


def _other_tables(path: Path) -> None:
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE accounts (email TEXT)")
        c.execute("INSERT INTO accounts VALUES ('a@example.com')")
    assert path.stat().st_size > 0


@pytest.mark.parametrize(
    "make",
    [lambda p: None, lambda p: p.touch(), _other_tables],
    ids=["no file", "an empty file", "a database without the log"],
)
def test_no_log_holds_no_entries(tmp_path: Path, make: Callable[[Path], None]) -> None:
    path = tmp_path / "cleanroom.sqlite3"
    make(path)
    assert stored_log_size(path) == 0


def test_the_entries_of_a_stored_log_are_counted(
    tmp_path: Path, log_key: ed25519.Ed25519PrivateKey, fill: Callable[[DecisionLog, int], None]
) -> None:
    path = tmp_path / "cleanroom.sqlite3"
    _other_tables(path)
    conn = sqlite3.connect(path, check_same_thread=False)
    log = DecisionLog(conn, log_key)
    assert stored_log_size(path) == 0
    fill(log, 5)
    conn.close()
    assert stored_log_size(path) == 5


def test_a_file_that_is_not_a_database_is_a_service_error(tmp_path: Path) -> None:
    path = tmp_path / "cleanroom.sqlite3"
    path.write_bytes(b"not a database, " * 256)
    with pytest.raises(ServiceUnavailable, match="cannot be read"):
        stored_log_size(path)
