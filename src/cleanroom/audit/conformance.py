"""DP-claim conformance: does a mechanism claiming (ε, δ) behave like one?

The mechanism runs ``trials`` times on an input D and ``trials`` times on a
neighbour D'; each output is mapped to a real score; the attack says "D'"
when the score crosses a threshold chosen by a :mod:`thresholds` policy (by
default split, searching both directions, so nothing needs to be known in
advance). The verdict is VIOLATION when ε_LB exceeds the claimed ε —
evidence, at the stated confidence, that the claim is false — and CONSISTENT
otherwise. CONSISTENT is not a proof of privacy: the ceiling is printed
next to it because no audit of this size could have shown more than that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import numpy as np

from cleanroom.audit.epsilon import EpsilonLowerBound
from cleanroom.audit.gaussian import GaussianDPBound, gdp_mu_lower_bound_from_counts
from cleanroom.audit.thresholds import (
    SplitThreshold,
    ThresholdPolicy,
    epsilon_lower_bound_from_scores,
    per_test_confidence,
)
from cleanroom.errors import AuditError, Error

__all__ = ["ConformanceResult", "GaussianConformanceResult", "check_dp_claim", "check_gdp_claim"]

InputT = TypeVar("InputT")

Mechanism = Callable[[InputT, np.random.Generator], object]


@dataclass(frozen=True)
class ConformanceResult:
    verdict: Literal["CONSISTENT", "VIOLATION"]
    claimed_epsilon: float
    claimed_delta: float
    trials: int
    bound: EpsilonLowerBound

    @property
    def ceiling(self) -> float:
        return self.bound.ceiling

    def to_json(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "claimed_epsilon": self.claimed_epsilon,
            "claimed_delta": self.claimed_delta,
            "trials": self.trials,
            "epsilon_lower_bound": self.bound.to_json(),
        }

    def summary(self) -> str:
        return (
            f"{self.verdict}: ε_LB = {self.bound.epsilon:.3f} vs claimed ε = "
            f"{self.claimed_epsilon:g} (δ = {self.claimed_delta:g}); this audit could certify "
            f"at most ε = {self.ceiling:.3f} at {self.bound.confidence:.0%} confidence"
        )


@dataclass(frozen=True)
class _Runner(Generic[InputT]):
    mechanism: Mechanism[InputT]
    score: Callable[[object], float]

    def scores(self, data: InputT, trials: int, rng: np.random.Generator) -> np.ndarray:
        out = np.empty(trials, dtype=np.float64)
        for i in range(trials):
            try:
                out[i] = self.score(self.mechanism(data, rng))
            except Error:
                raise
            except Exception as exc:
                raise AuditError(f"the mechanism failed: {type(exc).__name__}") from None
        return out


def _scalar(output: object) -> float:
    arr = np.asarray(output, dtype=np.float64)
    if arr.size != 1:
        raise AuditError("mechanism outputs must be scalars unless a score function is given")
    return float(arr.reshape(()))


def _scores_on_neighbours(
    mechanism: Mechanism[InputT],
    dataset: InputT,
    neighbour: InputT,
    trials: int,
    seed: int,
    score: Callable[[object], float] | None,
) -> tuple[np.ndarray, np.ndarray]:
    if trials < 4:
        raise AuditError("trials must be at least 4")
    runner: _Runner[InputT] = _Runner(mechanism, score if score is not None else _scalar)
    rng = np.random.default_rng(seed)
    return runner.scores(neighbour, trials, rng), runner.scores(dataset, trials, rng)


def check_dp_claim(
    mechanism: Mechanism[InputT],
    dataset: InputT,
    neighbour: InputT,
    *,
    epsilon: float,
    delta: float = 0.0,
    trials: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    policy: ThresholdPolicy | None = None,
    score: Callable[[object], float] | None = None,
) -> ConformanceResult:
    """Run *mechanism* ``trials`` times on each of two neighbours and test the (ε, δ) claim."""
    if epsilon < 0.0 or not np.isfinite(epsilon):
        raise AuditError("the claimed ε must be a finite non-negative number")
    on_neighbour, on_dataset = _scores_on_neighbours(
        mechanism, dataset, neighbour, trials, seed, score
    )
    bound = epsilon_lower_bound_from_scores(
        on_neighbour,
        on_dataset,
        delta=delta,
        confidence=confidence,
        policy=policy if policy is not None else SplitThreshold(seed=seed, both_directions=True),
    )
    return ConformanceResult(
        verdict="VIOLATION" if bound.epsilon > epsilon else "CONSISTENT",
        claimed_epsilon=epsilon,
        claimed_delta=delta,
        trials=trials,
        bound=bound,
    )


@dataclass(frozen=True)
class GaussianConformanceResult:
    """The verdict on a μ-GDP claim (Gaussian-shaped mechanisms, e.g. DP-SGD)."""

    verdict: Literal["CONSISTENT", "VIOLATION"]
    claimed_mu: float
    trials: int
    bound: GaussianDPBound

    @property
    def ceiling(self) -> float:
        return self.bound.ceiling

    def summary(self) -> str:
        return (
            f"{self.verdict}: mu_LB = {self.bound.mu:.3f} vs claimed mu = {self.claimed_mu:g}; "
            f"this audit could certify at most mu = {self.ceiling:.3f} at "
            f"{self.bound.confidence:.0%} confidence"
        )


def check_gdp_claim(
    mechanism: Mechanism[InputT],
    dataset: InputT,
    neighbour: InputT,
    *,
    mu: float,
    trials: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    policy: ThresholdPolicy | None = None,
    score: Callable[[object], float] | None = None,
) -> GaussianConformanceResult:
    """Test a μ-GDP claim: VIOLATION when μ_LB (Nasr et al. 2023) exceeds *mu*.

    The threshold is chosen exactly as for :func:`check_dp_claim` (by ε on the
    selection part); the μ bound is then computed from the held-out counts at
    that threshold, so the search is paid for in the same way.
    """
    if mu < 0.0 or not np.isfinite(mu):
        raise AuditError("the claimed mu must be a finite non-negative number")
    on_neighbour, on_dataset = _scores_on_neighbours(
        mechanism, dataset, neighbour, trials, seed, score
    )
    used = policy if policy is not None else SplitThreshold(seed=seed, both_directions=True)
    chosen = epsilon_lower_bound_from_scores(
        on_neighbour, on_dataset, confidence=confidence, policy=used
    )
    # The rates are bounded at the policy's per-candidate level (Bonferroni
    # pays for its K candidates there); the μ_LB at the chosen threshold then
    # holds at the family-wise *confidence*, which is what it is labelled with.
    bound = dataclasses.replace(
        gdp_mu_lower_bound_from_counts(
            chosen.counts, confidence=per_test_confidence(used, confidence)
        ),
        confidence=confidence,
    )
    return GaussianConformanceResult(
        verdict="VIOLATION" if bound.mu > mu else "CONSISTENT",
        claimed_mu=mu,
        trials=trials,
        bound=bound,
    )
