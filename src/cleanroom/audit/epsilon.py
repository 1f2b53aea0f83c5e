"""ε lower bounds from a membership attack's decisions, and the Bayesian ε estimate.

A mechanism M is (ε, δ)-DP only if every test distinguishing neighbouring
inputs satisfies FPR + e^ε·FNR ≥ 1 - δ and FNR + e^ε·FPR ≥ 1 - δ
(Kairouz, Oh & Viswanath 2015, the hypothesis-testing view). Solving for ε,

    ε ≥ max{0, ln((1 - δ - FNR)/FPR), ln((1 - δ - FPR)/FNR)}.

The right-hand side falls as FPR and FNR rise, so plugging one-sided
Clopper-Pearson *upper* bounds on FPR and FNR, each at level
(1 - confidence)/2, gives an ε lower bound that holds with probability at
least ``confidence`` (union bound; Jagielski, Ullman & Oprea 2020; Nasr et
al. 2021).

The estimate of Zanella-Béguelin et al. (ICML 2023, arXiv 2206.05199) places
Jeffreys priors Beta(½, ½) on FPR and FNR, takes their independent posteriors
and pushes them through the same ε function. It is an *estimate* (median and
equal-tailed credible interval) and is typed and labelled as one: it has no
``epsilon`` attribute and it is never a bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from scipy import special

from cleanroom.audit._binomial import check_confidence, clopper_pearson_upper
from cleanroom.errors import AuditError

__all__ = [
    "ConfusionCounts",
    "EpsilonEstimate",
    "EpsilonLowerBound",
    "epsilon_ceiling",
    "epsilon_from_rates",
    "epsilon_lower_bound",
    "epsilon_lower_bound_from_counts",
]

FloatArray = npt.NDArray[np.float64]

# The posterior is integrated on a K x K grid of equal-probability cells (the
# mid-quantiles of each Beta posterior), deterministic and without sampling
# noise; with K = 200 each marginal is resolved to 0.5 % of its mass.
_POSTERIOR_GRID = 200


@dataclass(frozen=True)
class ConfusionCounts:
    """Outcomes of an attack whose positive decision is "member"."""

    true_positives: int
    false_negatives: int
    false_positives: int
    true_negatives: int

    @property
    def members(self) -> int:
        return self.true_positives + self.false_negatives

    @property
    def nonmembers(self) -> int:
        return self.false_positives + self.true_negatives

    def to_json(self) -> dict[str, int]:
        return {
            "true_positives": self.true_positives,
            "false_negatives": self.false_negatives,
            "false_positives": self.false_positives,
            "true_negatives": self.true_negatives,
        }


@dataclass(frozen=True)
class EpsilonEstimate:
    """A Bayesian *estimate* of ε. Not a bound: never certify with it."""

    kind: ClassVar[str] = "bayesian-estimate"
    method: ClassVar[str] = "jeffreys-posterior-zanella-beguelin-2022"

    median: float
    credible_interval: tuple[float, float]
    credible_level: float

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "method": self.method,
            "median": self.median,
            "credible_interval": list(self.credible_interval),
            "credible_level": self.credible_level,
        }


@dataclass(frozen=True)
class EpsilonLowerBound:
    """ε_LB: with probability ≥ ``confidence``, the true ε is at least ``epsilon``.

    ``ceiling`` is the largest ε these sample sizes could ever certify (a
    perfect attack): a small ε_LB next to a small ceiling says the audit was
    too small, not that the mechanism is private.
    """

    kind: ClassVar[str] = "lower-bound"

    epsilon: float
    ceiling: float
    confidence: float
    delta: float
    method: str
    counts: ConfusionCounts
    fpr_upper: float
    fnr_upper: float
    estimate: EpsilonEstimate
    threshold: float | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": self.kind,
            "epsilon": self.epsilon,
            "ceiling": self.ceiling,
            "confidence": self.confidence,
            "delta": self.delta,
            "method": self.method,
            "counts": self.counts.to_json(),
            "fpr_upper": self.fpr_upper,
            "fnr_upper": self.fnr_upper,
            "estimate": self.estimate.to_json(),
        }
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out


def epsilon_from_rates(fpr: npt.ArrayLike, fnr: npt.ArrayLike, delta: float) -> FloatArray:
    """max{0, ln((1-δ-FNR)/FPR), ln((1-δ-FPR)/FNR)}, elementwise.

    A zero rate with a positive numerator gives ``inf``: that is the
    mathematics, and callers pass upper bounds (never zero) when they bound.
    """
    fpr_a = np.asarray(fpr, dtype=np.float64)
    fnr_a = np.asarray(fnr, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.log(np.maximum(1.0 - delta - fnr_a, 0.0)) - np.log(fpr_a)
        second = np.log(np.maximum(1.0 - delta - fpr_a, 0.0)) - np.log(fnr_a)
    # 0/0 (both rates zero with no room left by δ) carries no evidence: treat as 0.
    first = np.where(np.isnan(first), 0.0, first)
    second = np.where(np.isnan(second), 0.0, second)
    best = np.maximum(first, second)
    return np.asarray(np.maximum(best, 0.0), dtype=np.float64)


def _check_delta(delta: float) -> None:
    if not 0.0 <= delta < 1.0:
        raise AuditError(f"delta must be in [0, 1), got {delta}")


def _bounded_rates(
    false_positives: npt.ArrayLike,
    nonmembers: int,
    false_negatives: npt.ArrayLike,
    members: int,
    confidence: float,
) -> tuple[FloatArray, FloatArray]:
    alpha = (1.0 - confidence) / 2.0
    fpr_ub = clopper_pearson_upper(np.asarray(false_positives), nonmembers, alpha)
    fnr_ub = clopper_pearson_upper(np.asarray(false_negatives), members, alpha)
    return fpr_ub, fnr_ub


def epsilon_ceiling(
    members: int, nonmembers: int, *, delta: float = 0.0, confidence: float = 0.95
) -> float:
    """The ε_LB of a perfect attack (no errors) on this many members and non-members."""
    _check_delta(delta)
    check_confidence(confidence)
    if members < 1 or nonmembers < 1:
        return 0.0
    fpr_ub, fnr_ub = _bounded_rates(0, nonmembers, 0, members, confidence)
    return float(epsilon_from_rates(fpr_ub, fnr_ub, delta))


def _estimate(counts: ConfusionCounts, delta: float, confidence: float) -> EpsilonEstimate:
    mid_quantiles = (np.arange(_POSTERIOR_GRID) + 0.5) / _POSTERIOR_GRID
    # Jeffreys prior Beta(1/2, 1/2): posterior Beta(errors + 1/2, correct + 1/2);
    # FPR and FNR are independent a posteriori (disjoint records).
    fpr = special.betaincinv(
        counts.false_positives + 0.5, counts.true_negatives + 0.5, mid_quantiles
    )
    fnr = special.betaincinv(
        counts.false_negatives + 0.5, counts.true_positives + 0.5, mid_quantiles
    )
    cells = np.sort(epsilon_from_rates(fpr[:, None], fnr[None, :], delta).ravel())
    tail = (1.0 - confidence) / 2.0

    def quantile(q: float) -> float:
        # Every cell carries probability 1/K^2: the q-quantile is the cell at rank q·K^2.
        index = min(int(np.floor(q * cells.size)), cells.size - 1)
        return float(cells[index])

    return EpsilonEstimate(
        median=quantile(0.5),
        credible_interval=(quantile(tail), quantile(1.0 - tail)),
        credible_level=confidence,
    )


def epsilon_lower_bound_from_counts(
    counts: ConfusionCounts,
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
    method: str = "clopper-pearson-fixed-rule",
    threshold: float | None = None,
) -> EpsilonLowerBound:
    """ε_LB from the confusion counts of one attack decided before the data was seen."""
    _check_delta(delta)
    check_confidence(confidence)
    for name, value in counts.to_json().items():
        if value < 0:
            raise AuditError(f"{name} must not be negative")
    if counts.members < 1 or counts.nonmembers < 1:
        raise AuditError("an ε lower bound needs at least one member and one non-member")
    fpr_ub, fnr_ub = _bounded_rates(
        counts.false_positives,
        counts.nonmembers,
        counts.false_negatives,
        counts.members,
        confidence,
    )
    return EpsilonLowerBound(
        epsilon=float(epsilon_from_rates(fpr_ub, fnr_ub, delta)),
        ceiling=epsilon_ceiling(
            counts.members, counts.nonmembers, delta=delta, confidence=confidence
        ),
        confidence=confidence,
        delta=delta,
        method=method,
        counts=counts,
        fpr_upper=float(fpr_ub),
        fnr_upper=float(fnr_ub),
        estimate=_estimate(counts, delta, confidence),
        threshold=threshold,
    )


def _as_bool_vector(values: npt.ArrayLike, name: str) -> npt.NDArray[np.bool_]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise AuditError(f"{name} must be a one-dimensional array of decisions")
    if arr.dtype != np.bool_:
        if not np.isin(arr, (0, 1)).all():
            raise AuditError(f"{name} must hold booleans (or 0/1)")
        arr = arr.astype(np.bool_)
    return arr


def epsilon_lower_bound(
    member_guesses: npt.ArrayLike,
    nonmember_guesses: npt.ArrayLike,
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
) -> EpsilonLowerBound:
    """ε_LB from boolean "member" decisions on members and on non-members.

    The decision rule (threshold included) must have been fixed before the
    data was seen; for thresholds searched over scores use
    :func:`cleanroom.audit.epsilon_lower_bound_from_scores`.
    """
    on_members = _as_bool_vector(member_guesses, "member_guesses")
    on_nonmembers = _as_bool_vector(nonmember_guesses, "nonmember_guesses")
    tp = int(on_members.sum())
    fp = int(on_nonmembers.sum())
    counts = ConfusionCounts(
        true_positives=tp,
        false_negatives=on_members.size - tp,
        false_positives=fp,
        true_negatives=on_nonmembers.size - fp,
    )
    return epsilon_lower_bound_from_counts(counts, delta=delta, confidence=confidence)
