"""Swapped index columns are caught by filtered exports, although the counts agree.

Filtered exports select rows by the ``instance_id`` and ``party`` columns,
which no hash covers: only the stored entry is. An edit that swaps the
column values of two rows keeps the number of rows each filter selects, so
counting alone cannot see it; each selected entry must also be checked
against the filter. Otherwise the export would hand one party's entry out
as another's (with a valid inclusion proof), and leave one of theirs out.

In the log of six entries, bank-a holds seq 0 and 3, bank-b seq 1 and 4;
inst-0 holds 0, 2, 4 and inst-1 holds 1, 3, 5.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.errors import LogIntegrityError
from cleanroom.policy import DecisionLog

BANK_A = {"party": "bank-a@example.com"}
INST_0 = {"instance_id": "inst-0"}


def _swap(path: Path, column: str, a: int, b: int) -> None:
    with sqlite3.connect(path) as c:
        rows = dict(c.execute(f"SELECT seq, {column} FROM cleanroom_decision_log"))
        for seq, other in ((a, b), (b, a)):
            c.execute(
                f"UPDATE cleanroom_decision_log SET {column} = ? WHERE seq = ?",
                (rows[other], seq),
            )


@pytest.fixture
def log_at(
    tmp_path: Path, log_key: ed25519.Ed25519PrivateKey, fill: Callable[[DecisionLog, int], None]
) -> tuple[DecisionLog, Path]:
    path = tmp_path / "log.db"
    log = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)
    fill(log, 6)
    assert [e["seq"] for e in log.export(**BANK_A)["entries"]] == [0, 3]
    assert [e["seq"] for e in log.export(**INST_0)["entries"]] == [0, 2, 4]
    return log, path


# (column, the filter's row, another filter's row, the filter)
SWAPS = [
    ("party", 0, 1, BANK_A),
    ("party", 3, 4, BANK_A),
    ("instance_id", 0, 1, INST_0),
    ("instance_id", 4, 5, INST_0),
]


@pytest.mark.parametrize(("column", "mine", "theirs", "selection"), SWAPS)
def test_a_whole_filtered_export_catches_swapped_columns(
    log_at: tuple[DecisionLog, Path],
    column: str,
    mine: int,
    theirs: int,
    selection: dict[str, Any],
) -> None:
    log, path = log_at
    _swap(path, column, mine, theirs)
    with pytest.raises(LogIntegrityError, match="index was altered"):
        log.export(**selection)


@pytest.mark.parametrize(("column", "mine", "theirs", "selection"), SWAPS)
def test_the_page_serving_the_relabelled_row_catches_swapped_columns(
    log_at: tuple[DecisionLog, Path],
    column: str,
    mine: int,
    theirs: int,
    selection: dict[str, Any],
) -> None:
    log, path = log_at
    _swap(path, column, mine, theirs)
    # The page whose first row is the relabelled one (seq *theirs*).
    with pytest.raises(LogIntegrityError, match="index was altered"):
        log.export(**selection, after=theirs - 1, limit=1)


# (swapped rows, page after, page limit): bank-a's seq *hidden* is relabelled
# bank-b and bank-b's seq *shown* relabelled bank-a, and the page holds
# neither: the index offers another entry, or none, where the log holds *hidden*.
HIDDEN_FROM_A_PAGE = [
    ("hidden before the page's row", (0, 4), -1, 1),
    ("hidden after the page's rows", (3, 1), 1, 5),
]


@pytest.mark.parametrize(
    ("name", "rows", "after", "limit"), HIDDEN_FROM_A_PAGE, ids=[h[0] for h in HIDDEN_FROM_A_PAGE]
)
def test_a_page_missing_an_entry_hidden_by_a_swap_is_refused(
    log_at: tuple[DecisionLog, Path], name: str, rows: tuple[int, int], after: int, limit: int
) -> None:
    log, path = log_at
    _swap(path, "party", *rows)
    with pytest.raises(LogIntegrityError, match="index was altered"):
        log.export(**BANK_A, after=after, limit=limit)
