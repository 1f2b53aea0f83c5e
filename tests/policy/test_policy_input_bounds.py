"""The input document's bounds sit exactly where the engine's representation ends.

Values nest at most 32 levels below the document (the document itself is
level 0), integers are int64 (``-2**63`` to ``2**63 - 1``, both ends
included), and the document may be any dict, including a dict subclass such
as an ``OrderedDict``. Each bound holds on every path: the check of the
whole document, the direct conversion, and regopy's own converter; and
through a compiled policy both for a part of the document the policy reads
(converted) and a part it does not (checked only).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
from tests.policy.documents import ingress_doc

from cleanroom.errors import PolicyError
from cleanroom.policy import DEFAULT_POLICY, PolicyBundle
from cleanroom.policy._rego_input import MAX_DEPTH, check_document, to_input


def _nested(levels: int) -> Any:
    """A number inside *levels* arrays."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


# Under the document's "x", arrays down to level 32 hold the number at the last level allowed.
DEEPEST = MAX_DEPTH - 1
INT64 = (-(2**63), 2**63 - 1)

WITHIN = [
    ("values at level 32", _nested(DEEPEST)),
    ("the smallest int64", INT64[0]),
    ("the largest int64", INT64[1]),
]
BEYOND = [
    ("values at level 33", _nested(DEEPEST + 1), "nested too deeply"),
    ("below int64", INT64[0] - 1, "an integer outside int64"),
    ("above int64", INT64[1] + 1, "an integer outside int64"),
]

CONVERSIONS: list[tuple[str, Callable[[Any], Any]]] = [
    ("check", check_document),
    ("direct", to_input),
    ("regopy-converter", lambda doc: to_input(doc, fast=False)),
]


@pytest.mark.parametrize(("how", "convert"), CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
@pytest.mark.parametrize(("name", "value"), WITHIN, ids=[w[0] for w in WITHIN])
def test_values_within_the_bounds_are_accepted(
    how: str, convert: Callable[[Any], Any], name: str, value: Any
) -> None:
    convert({"x": value})


@pytest.mark.parametrize(("how", "convert"), CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
@pytest.mark.parametrize(("name", "value", "message"), BEYOND, ids=[b[0] for b in BEYOND])
def test_values_beyond_the_bounds_are_refused(
    how: str, convert: Callable[[Any], Any], name: str, value: Any, message: str
) -> None:
    with pytest.raises(PolicyError, match=f"not a JSON document: {message}"):
        convert({"x": value})


READS_CONTEXT = "package cleanroom\nallow_ingress if input.context.x == input.context.x\n"


# Under input.context.x, one level deeper than under the document's "x".
IN_CONTEXT = [
    ("values at level 32", _nested(DEEPEST - 1), True),
    ("values at level 33", _nested(DEEPEST), False),
    ("the smallest int64", INT64[0], True),
    ("below int64", INT64[0] - 1, False),
    ("the largest int64", INT64[1], True),
    ("above int64", INT64[1] + 1, False),
]


@pytest.mark.parametrize(
    "source", [READS_CONTEXT, DEFAULT_POLICY], ids=["context read", "context not read"]
)
@pytest.mark.parametrize(("name", "value", "allowed"), IN_CONTEXT, ids=[i[0] for i in IN_CONTEXT])
def test_a_policy_denies_exactly_beyond_the_bounds(
    source: str, name: str, value: Any, allowed: bool
) -> None:
    bundle = PolicyBundle.compile(source)
    decision = bundle.evaluate_ingress(ingress_doc(context={"x": value}))
    assert (decision.allowed, decision.evaluation_error) == (allowed, not allowed)


def test_a_dict_subclass_is_a_document() -> None:
    bundle = PolicyBundle.compile(DEFAULT_POLICY)
    doc = ingress_doc()
    assert bundle.evaluate_ingress(OrderedDict(doc)).allowed
    assert check_document(OrderedDict(doc)) == doc
