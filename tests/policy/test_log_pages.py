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
