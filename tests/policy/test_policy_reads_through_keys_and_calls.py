"""What a plan reads of the input when it goes through a dynamic key or a function.

The engine is handed only the paths of ``input`` the plan can read, and a
decision is remembered under exactly those values. A path missed here would
change decisions twice over: the engine would not see the value (so a rule
reading it is undefined), and two documents differing only there would share
a remembered decision.

- ``input.a[input.k]``: the key ``input.k`` is read, as well as ``input.a``.
- A function's result holds what its return value held: reading a field of
  ``f(input.x)`` is a read of ``input.x``'s field.
- A path below one read whole is not listed on its own.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.policy.documents import ingress_doc

from cleanroom.policy import PolicyBundle

CONTEXT = {"table": {"a": "yes", "b": "no"}, "key": "a", "inner": {"secret": "yes"}, "x": 1}


def _compile(body: str) -> PolicyBundle:
    return PolicyBundle.compile(f"package cleanroom\n{body}\n")


def _allowed(bundle: PolicyBundle, **changes: Any) -> bool:
    return bundle.evaluate_ingress(ingress_doc(context={**CONTEXT, **changes})).allowed


def test_a_key_taken_from_the_input_is_read() -> None:
    bundle = _compile('allow_ingress if input.context.table[input.context.key] == "yes"')
    assert bundle.ingress_reads.paths == {("context", "table"), ("context", "key")}
    assert _allowed(bundle)
    assert not _allowed(bundle, key="b")  # remembered per key, not shared
    assert _allowed(bundle, key="a")


@pytest.mark.parametrize(
    "body",
    [
        'pick(x) := x.inner\nallow_ingress if pick(input.context).secret == "yes"',
        'pick(x) := x\nallow_ingress if pick(input.context.inner).secret == "yes"',
    ],
    ids=["returns a field of its argument", "returns its argument"],
)
def test_what_a_function_returns_of_the_input_is_read(body: str) -> None:
    bundle = _compile(body)
    assert bundle.ingress_reads.paths == {("context", "inner")}
    assert _allowed(bundle)
    assert not _allowed(bundle, inner={"secret": "no"})
    assert _allowed(bundle)


def test_a_path_below_one_read_whole_is_not_listed() -> None:
    bundle = _compile("allow_ingress if { input.context.x == 1; count(input.context) == 4 }")
    assert bundle.ingress_reads.paths == {("context",)}
    assert _allowed(bundle)
    assert not _allowed(bundle, extra=True)
