"""Which entries a filtered export or page may hold, and which receipts it must.

A filtered export proves that each entry it holds is in the signed log; its
filter and page window say which entries those may be. Each refusal row
inserts one genuine, signed-log entry (with its genuine inclusion proof) that
the export must not hold, so only the membership check can refuse it:

* an entry of another instance in an export filtered by instance (and, for
  an export filtered by both, an entry matching only one of the two);
* on a page, the previous page's last entry (``seq == after``);
* an entry numbered exactly the signed tree size.

The receipt rows are the converse: a kept receipt that the export should not
hold (another instance's entry, or the previous page's last one) is not
reported as a removed entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from cleanroom.errors import LogIntegrityError
from cleanroom.policy import DecisionLog, verify_log

Doc = dict[str, Any]


def _export(log: DecisionLog, **kwargs: Any) -> Doc:
    doc: Doc = json.loads(json.dumps(log.export(**kwargs)))
    return doc


def _insert(log: DecisionLog, doc: Doc, seq: int, at: int) -> None:
    """Insert the log's genuine entry *seq*, with its genuine proof, at position *at*."""
    receipt = log.receipt(seq).to_json()
    doc["entries"].insert(at, receipt["entry"])
    doc["inclusion_proofs"].insert(at, receipt["inclusion_proof"])


# The filled log: entry i has instance inst-(i % 2) and party PARTIES[i % 3]
# (bank-a, bank-b, owner), 9 entries.
Case = tuple[str, dict[str, Any], Callable[[DecisionLog, Doc], None], str]

MEMBERSHIP: list[Case] = [
    (
        "another instance's entry in an instance export",
        {"instance_id": "inst-0"},
        lambda log, d: _insert(log, d, 1, 1),
        "seq 1 is outside the export's filter",
    ),
    (
        "another party's entry in a party export",
        {"party": "bank-a@example.com"},
        lambda log, d: _insert(log, d, 1, 1),
        "seq 1 is outside the export's filter",
    ),
    (
        "right instance, another party, in an export filtered by both",
        {"instance_id": "inst-0", "party": "bank-a@example.com"},
        lambda log, d: _insert(log, d, 2, 1),  # inst-0, owner
        "seq 2 is outside the export's filter",
    ),
    (
        "right party, another instance, in an export filtered by both",
        {"instance_id": "inst-0", "party": "bank-a@example.com"},
        lambda log, d: _insert(log, d, 3, 1),  # inst-1, bank-a
        "seq 3 is outside the export's filter",
    ),
    (
        "the previous page's last entry repeated on the next page",
        {"party": "bank-a@example.com", "after": 3, "limit": 2},
        lambda log, d: _insert(log, d, 3, 0),
        r"seq 3 is before the page \(after 3\)",
    ),
]


@pytest.mark.parametrize(
    ("name", "flt", "insert", "message"), MEMBERSHIP, ids=[c[0] for c in MEMBERSHIP]
)
def test_an_entry_the_export_must_not_hold_is_refused(
    filled_log: DecisionLog,
    name: str,
    flt: dict[str, Any],
    insert: Callable[[DecisionLog, Doc], None],
    message: str,
) -> None:
    doc = _export(filled_log, **flt)
    verify_log(doc, filled_log.public_key)
    insert(filled_log, doc)
    with pytest.raises(LogIntegrityError, match=message):
        verify_log(doc, filled_log.public_key)


def test_an_entry_numbered_the_tree_size_is_beyond_the_checkpoint(
    filled_log: DecisionLog,
) -> None:
    doc = _export(filled_log, party="bank-a@example.com")
    size = doc["checkpoint"]["tree_size"]
    forged = dict(doc["entries"][-1], seq=size)
    doc["entries"].append(forged)
    doc["inclusion_proofs"].append(doc["inclusion_proofs"][-1])
    with pytest.raises(LogIntegrityError, match=f"seq {size} is beyond the signed checkpoint"):
        verify_log(doc, filled_log.public_key)


def test_receipts_the_export_need_not_hold_are_not_reported_missing(
    filled_log: DecisionLog,
) -> None:
    key = filled_log.public_key
    # inst-0's export holds 0, 2, 4, 6, 8: receipts of inst-1's entries are not its.
    by_instance = _export(filled_log, instance_id="inst-0")
    others = [filled_log.receipt(seq).to_json() for seq in (1, 3, 5)]
    assert verify_log(by_instance, key, receipts=others).complete is False
    # bank-a's second page (after 3) holds 6: entry 3 is the first page's.
    second = _export(filled_log, party="bank-a@example.com", after=3, limit=2)
    assert [e["seq"] for e in second["entries"]] == [6]
    verify_log(second, key, receipts=[filled_log.receipt(3).to_json()])
    # ... but a receipt of an entry the page should hold still is.
    second["entries"].pop()
    second["inclusion_proofs"].pop()
    with pytest.raises(LogIntegrityError, match="removed entry: seq 6, held in a receipt"):
        verify_log(second, key, receipts=[filled_log.receipt(6).to_json()])
