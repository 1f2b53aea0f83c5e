"""How a deny_reason value becomes the logged reason.

``docs/policies.md``: ``deny_reason`` is a string or a set of strings; it is
folded to one line and cut to 512 characters (the last one an ellipsis when
cut). Any other value (a set mixing strings with numbers, an empty set, a
blank string) is ignored, and the reason says the rule was not true: a
malformed reason is still a policy's deny, never an engine failure.
"""

from __future__ import annotations

import pytest
from tests.policy.documents import ingress_doc

from cleanroom.policy import PolicyBundle

RULE = "data.cleanroom.allow_ingress"


def _reason(rules: str) -> tuple[str | None, bool]:
    bundle = PolicyBundle.compile(f"package cleanroom\nallow_ingress := false\n{rules}\n")
    decision = bundle.evaluate_ingress(ingress_doc())
    assert not decision.allowed
    return decision.reason, decision.evaluation_error


@pytest.mark.parametrize(
    ("length", "reason"),
    [
        (511, "x" * 511),
        (512, "x" * 512),
        (513, "x" * 511 + "…"),
        (600, "x" * 511 + "…"),
    ],
)
def test_a_reason_is_cut_after_512_characters(length: int, reason: str) -> None:
    assert _reason(f'deny_reason := "{"x" * length}"') == (reason, False)


@pytest.mark.parametrize(
    "value",
    ['{"a", 1}', "{1, 2}", '["a", null]', "set()", '"   "', '{"a": "b"}'],
    ids=["string and number", "numbers", "string and null", "empty set", "blank", "object"],
)
def test_a_reason_that_is_not_text_is_ignored(value: str) -> None:
    assert _reason(f"deny_reason := {value}") == (f"denied by policy: {RULE} is not true", False)


def test_an_undefined_rule_is_named_as_undefined() -> None:
    bundle = PolicyBundle.compile("package cleanroom\nallow_egress := true\n")
    decision = bundle.evaluate_ingress(ingress_doc())
    assert (decision.allowed, decision.reason, decision.evaluation_error) == (
        False,
        f"denied by policy: {RULE} is undefined",
        False,
    )
