"""Conformance verdicts at the claim itself, and on neighbours that are not distinguishable.

VIOLATION means the lower bound *exceeds* the claim: a bound equal to the
claim is evidence of nothing. A mechanism whose output ignores its input has
μ_LB = ε_LB = 0, so a claim of exactly 0 is CONSISTENT.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from cleanroom.audit import FixedThreshold, SplitThreshold, check_dp_claim, check_gdp_claim
from cleanroom.errors import AuditError, PolicyDenied


def constant(_: float, rng: np.random.Generator) -> float:
    rng.random()
    return 0.5


@pytest.mark.parametrize(
    "policy",
    [None, FixedThreshold(0.5), SplitThreshold(seed=2)],
    ids=["default", "fixed", "split"],
)
def test_a_zero_mu_bound_is_consistent_with_a_zero_claim(policy: object) -> None:
    result = check_gdp_claim(constant, 0.0, 1.0, mu=0.0, trials=200, policy=policy)  # type: ignore[arg-type]
    assert result.bound.mu == 0.0
    assert result.verdict == "CONSISTENT"


def test_a_zero_epsilon_bound_is_consistent_with_a_zero_claim() -> None:
    result = check_dp_claim(constant, 0.0, 1.0, epsilon=0.0, trials=200)
    assert result.bound.epsilon == 0.0
    assert result.verdict == "CONSISTENT"


def vector(_: float, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=3)


@pytest.mark.parametrize(
    "check",
    [
        lambda: check_dp_claim(vector, 0.0, 1.0, epsilon=1.0, trials=8),
        lambda: check_gdp_claim(vector, 0.0, 1.0, mu=1.0, trials=8),
    ],
    ids=["dp", "gdp"],
)
def test_the_librarys_own_refusals_pass_through_unwrapped(check: Callable[[], object]) -> None:
    # A vector output without a score function is refused with its own reason,
    # not reported as a failure of the mechanism.
    with pytest.raises(AuditError, match="must be scalars") as caught:
        check()
    assert "the mechanism failed" not in str(caught.value)


def test_a_cleanroom_error_raised_by_the_mechanism_keeps_its_type() -> None:
    def denied(_: float, rng: np.random.Generator) -> float:
        raise PolicyDenied("no access to this input")

    with pytest.raises(PolicyDenied, match="no access"):
        check_dp_claim(denied, 0.0, 1.0, epsilon=1.0, trials=8)


@pytest.mark.parametrize("mu", [float("inf"), float("nan"), -0.5])
def test_a_gdp_claim_must_be_finite_and_non_negative(mu: float) -> None:
    # An infinite claim could never be found violated; NaN compares false to everything.
    with pytest.raises(AuditError, match="claimed mu must be a finite non-negative"):
        check_gdp_claim(constant, 0.0, 1.0, mu=mu, trials=8)


@pytest.mark.parametrize("epsilon", [float("inf"), float("nan"), -0.5])
def test_a_dp_claim_must_be_finite_and_non_negative(epsilon: float) -> None:
    with pytest.raises(AuditError, match="claimed ε must be a finite non-negative"):
        check_dp_claim(constant, 0.0, 1.0, epsilon=epsilon, trials=8)
