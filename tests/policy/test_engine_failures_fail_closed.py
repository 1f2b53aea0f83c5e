"""An engine that fails denies, says so, and is asked again next time.

A failure inside rego-cpp (an exception from the binding while the input is
set or the rule queried) is a deny with ``evaluation_error`` set and a
fixed reason naming the rule. Because it is an error and not the policy's
answer, it is never remembered: once the engine works again the same
document gets the policy's own decision.

A shaping rule that the engine cannot evaluate refuses the compile with the
engine's error code, not as an undefined shaping.
"""

from __future__ import annotations

from typing import Any

import pytest
from regopy import RegoError
from tests.policy.documents import ingress_doc

from cleanroom.errors import PolicyError
from cleanroom.policy import DEFAULT_POLICY, PolicyBundle


class _Failing:
    """Makes one bundle method raise *error* while ``on`` is true."""

    def __init__(
        self, bundle: PolicyBundle, name: str, error: Exception, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.on = True
        real = getattr(bundle, name)

        def call(*args: Any) -> Any:
            if self.on:
                raise error
            return real(*args)

        monkeypatch.setattr(bundle, name, call)


@pytest.mark.parametrize(
    "error",
    [RegoError("engine"), OSError("engine"), ValueError("engine"), TypeError("engine")],
    ids=["RegoError", "OSError", "ValueError", "TypeError"],
)
def test_an_engine_failure_denies_and_is_not_remembered(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    bundle = PolicyBundle.compile(DEFAULT_POLICY)
    assert bundle.ingress_reads.deterministic  # its decisions are remembered
    failing = _Failing(bundle, "_query", error, monkeypatch)
    denied = bundle.evaluate_ingress(ingress_doc())
    assert (denied.allowed, denied.evaluation_error, denied.cached) == (False, True, False)
    assert denied.reason == (
        "policy evaluation error in data.cleanroom.allow_ingress (engine failure)"
    )
    failing.on = False
    allowed = bundle.evaluate_ingress(ingress_doc())
    assert (allowed.allowed, allowed.evaluation_error, allowed.cached) == (True, False, False)


def test_a_failure_to_convert_the_input_denies_and_is_not_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = PolicyBundle.compile(DEFAULT_POLICY)
    failing = _Failing(bundle._runner, "set_input", RegoError("input"), monkeypatch)
    denied = bundle.evaluate_egress({"direction": "egress"})
    assert (denied.allowed, denied.evaluation_error) == (False, True)
    assert "engine failure" in (denied.reason or "")
    failing.on = False
    assert not bundle.evaluate_egress({"direction": "egress"}).cached


@pytest.mark.parametrize(
    "shaping",
    ['{"score": {"round": 1 / 0}}', '{"score": {"round": to_number("x")}}'],
    ids=["divide by zero", "bad conversion"],
)
def test_a_shaping_the_engine_cannot_evaluate_is_refused_with_its_code(shaping: str) -> None:
    with pytest.raises(PolicyError, match=r"shaping could not be evaluated \(.+\)"):
        PolicyBundle.compile(f"package cleanroom\nshaping := {shaping}\n")
