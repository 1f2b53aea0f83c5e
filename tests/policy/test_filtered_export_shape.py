"""A filtered export or page of the wrong shape is a LogIntegrityError, never a crash.

The export comes from the host being audited, so every field may be of any
JSON type. A filter or page that is a list (naming the right keys), inclusion
proofs that are missing, null or an object, a page limit that is a string, or
a page ``after`` below -1, or a ``next_after`` that equals the last entry's
number without being an integer (``3.0``) or that names an entry of an empty
page, must be refused with the typed error that callers
(the CLI, an auditor's script) handle, and that names what is wrong, not
escape as a TypeError or KeyError from deeper code, nor be accepted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from cleanroom.errors import LogIntegrityError
from cleanroom.policy import DecisionLog, verify_log

Doc = dict[str, Any]


@pytest.fixture
def party_export(filled_log: DecisionLog) -> Doc:
    doc: Doc = json.loads(json.dumps(filled_log.export(party="bank-a@example.com")))
    assert [e["seq"] for e in doc["entries"]] == [0, 3, 6]
    return doc


def _proofs_as_object(d: Doc) -> None:
    d["inclusion_proofs"] = {str(i): p for i, p in enumerate(d["inclusion_proofs"])}


def _proofs_as_string(d: Doc) -> None:
    # As many characters as there are entries.
    d["inclusion_proofs"] = "abc"


SHAPES: list[tuple[str, Callable[[Doc], None], str]] = [
    (
        "filter a list of the right keys",
        lambda d: d.update(filter=["instance_id", "party"]),
        "filter must name instance_id and party",
    ),
    (
        "filter a string",
        lambda d: d.update(filter="instance_id"),
        "filter must name instance_id and party",
    ),
    (
        "inclusion proofs missing",
        lambda d: d.pop("inclusion_proofs"),
        "one inclusion proof per entry",
    ),
    (
        "inclusion proofs null",
        lambda d: d.update(inclusion_proofs=None),
        "one inclusion proof per entry",
    ),
    ("inclusion proofs an object", _proofs_as_object, "one inclusion proof per entry"),
    ("inclusion proofs a string", _proofs_as_string, "one inclusion proof per entry"),
]


@pytest.mark.parametrize(("name", "mutate", "message"), SHAPES, ids=[s[0] for s in SHAPES])
def test_a_filtered_export_of_the_wrong_shape_is_refused(
    filled_log: DecisionLog,
    party_export: Doc,
    name: str,
    mutate: Callable[[Doc], None],
    message: str,
) -> None:
    verify_log(party_export, filled_log.public_key)
    mutate(party_export)
    with pytest.raises(LogIntegrityError, match=message):
        verify_log(party_export, filled_log.public_key)


@pytest.fixture
def page_export(filled_log: DecisionLog) -> Doc:
    doc: Doc = json.loads(
        json.dumps(filled_log.export(party="bank-a@example.com", after=-1, limit=2))
    )
    assert [e["seq"] for e in doc["entries"]] == [0, 3]
    assert doc["page"] == {"after": -1, "limit": 2, "next_after": 3}
    return doc


def _emptied(d: Doc) -> None:
    d["entries"], d["inclusion_proofs"] = [], []


PAGE_SHAPES: list[tuple[str, Callable[[Doc], None], str]] = [
    (
        "page a list of the right keys",
        lambda d: d.update(page=["after", "limit", "next_after"]),
        "page must name after, limit, next_after",
    ),
    (
        "limit a string",
        lambda d: d["page"].update(limit="2"),
        "after and limit are integers",
    ),
    (
        "limit a float",
        lambda d: d["page"].update(limit=2.0),
        "after and limit are integers",
    ),
    (
        "limit a bool",
        lambda d: d["page"].update(limit=True),
        "after and limit are integers",
    ),
    (
        "after below -1",
        lambda d: d["page"].update(after=-2),
        "after and limit are integers",
    ),
    (
        "after a float",
        lambda d: d["page"].update(after=-1.0),
        "after and limit are integers",
    ),
    (
        "next_after a float",
        lambda d: d["page"].update(next_after=3.0),
        "next_after is not",
    ),
    (
        "next_after a string",
        lambda d: d["page"].update(next_after="3"),
        "next_after is not",
    ),
    ("next_after on an empty page", _emptied, "next_after is not"),
]


@pytest.mark.parametrize(
    ("name", "mutate", "message"), PAGE_SHAPES, ids=[s[0] for s in PAGE_SHAPES]
)
def test_a_page_of_the_wrong_shape_is_refused(
    filled_log: DecisionLog,
    page_export: Doc,
    name: str,
    mutate: Callable[[Doc], None],
    message: str,
) -> None:
    assert verify_log(page_export, filled_log.public_key).next_after == 3
    mutate(page_export)
    with pytest.raises(LogIntegrityError, match=message):
        verify_log(page_export, filled_log.public_key)
