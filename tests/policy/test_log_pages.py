"""Pages of a filtered log export: bounded, in order, each verifiable on its own."""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.errors import ConfigurationError, LogIntegrityError
from cleanroom.policy import DecisionLog, verify_log


def _pages(log: DecisionLog, limit: int, **flt: Any) -> list[dict[str, Any]]:
    pages, after = [], -1
    while True:
        page = log.export(**flt, after=after, limit=limit)
        pages.append(page)
        if page["page"]["next_after"] is None:
            return pages
        after = page["page"]["next_after"]


@pytest.mark.parametrize("limit", [1, 2, 4, 5, 100])
@pytest.mark.parametrize(
    "flt", [{"instance_id": "inst-0"}, {"party": "bank-a@example.com"}, {"instance_id": "inst-1"}]
)
def test_pages_hold_exactly_the_filtered_export(
    make_log: Callable[[int], DecisionLog],
    log_key: ed25519.Ed25519PrivateKey,
    limit: int,
    flt: dict[str, str],
) -> None:
    log = make_log(17)
    whole = log.export(**flt)
    pages = _pages(log, limit, **flt)
    assert [e for p in pages for e in p["entries"]] == whole["entries"]
    assert all(len(p["entries"]) <= limit for p in pages)
    for page in pages:
        result = verify_log(page, log_key.public_key())
        assert result.next_after == page["page"]["next_after"]
        assert not result.complete


def test_a_page_is_of_a_filtered_export(make_log: Callable[[int], DecisionLog]) -> None:
    log = make_log(3)
    with pytest.raises(ConfigurationError):
        log.export(after=-1, limit=10)
    with pytest.raises(ConfigurationError):
        log.export(instance_id="inst-0", limit=0)


def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], None], str]]:
    def drop(key: str) -> Callable[[dict[str, Any]], None]:
        return lambda d: d["page"].pop(key)

    def set_(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
        return lambda d: d["page"].update({key: value})

    return [
        ("page without after", drop("after"), "page must name"),
        ("page with an extra field", set_("more", True), "page must name"),
        ("page is a list", lambda d: d.update(page=[1]), "page must name"),
        ("limit of zero", set_("limit", 0), "after and limit are integers"),
        ("after is a string", set_("after", "1"), "after and limit are integers"),
        ("limit below the entries", set_("limit", 1), "more than 1 entries"),
        ("next_after not the last entry", set_("next_after", 0), "next_after is not"),
        ("next_after a string", set_("next_after", "8"), "next_after is not"),
        ("an entry before the page", set_("after", 6), "is before the page"),
    ]


@pytest.mark.parametrize(("name", "mutate", "message"), _mutations())
def test_a_doctored_page_is_refused(
    conn: sqlite3.Connection,
    log_key: ed25519.Ed25519PrivateKey,
    make_log: Callable[[int], DecisionLog],
    name: str,
    mutate: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    log = make_log(12)
    page = log.export(instance_id="inst-0", after=-1, limit=3)
    assert [e["seq"] for e in page["entries"]] == [0, 2, 4]
    assert page["page"]["next_after"] == 4
    doctored = copy.deepcopy(page)
    mutate(doctored)
    with pytest.raises(LogIntegrityError, match=message):
        verify_log(doctored, log_key.public_key())


def test_receipts_are_checked_against_the_page_that_holds_them(
    log_key: ed25519.Ed25519PrivateKey, make_log: Callable[[int], DecisionLog]
) -> None:
    log = make_log(12)
    key = log_key.public_key()
    first = log.export(instance_id="inst-0", after=-1, limit=3)
    assert [e["seq"] for e in first["entries"]] == [0, 2, 4]
    second = log.export(instance_id="inst-0", after=4, limit=3)
    assert [e["seq"] for e in second["entries"]] == [6, 8, 10]
    assert second["page"]["next_after"] is None
    on_second = log.receipt(8).to_json()
    on_first = log.receipt(2).to_json()
    # Each page verifies with receipts of both pages: another page's entry is not missing.
    verify_log(first, key, receipts=[on_first, on_second])
    verify_log(second, key, receipts=[on_first, on_second])
    # A receipted entry removed from the page that should hold it is still reported.
    for page, seq in ((second, 8), (first, 2)):
        doctored = copy.deepcopy(page)
        i = [e["seq"] for e in doctored["entries"]].index(seq)
        del doctored["entries"][i], doctored["inclusion_proofs"][i]
        with pytest.raises(LogIntegrityError, match=f"removed entry: seq {seq}, held in a receipt"):
            verify_log(doctored, key, receipts=[on_first, on_second])
