"""Gaussian differential privacy (μ-GDP) lower bounds (Nasr et al., USENIX Security 2023).

A mechanism is μ-GDP (Dong, Roth & Su, JRSS-B 2022, Def. 2.6) when every test
between neighbours has FNR ≥ G_μ(FPR) = Φ(Φ⁻¹(1 - FPR) - μ). Solving for μ,

    μ ≥ Φ⁻¹(1 - FPR) - Φ⁻¹(FNR),

which falls as either rate rises; Clopper-Pearson upper bounds on FPR and
FNR (each at (1 - confidence)/2) therefore give a μ lower bound holding with
probability ≥ ``confidence``. G_μ is symmetric, so the swapped form gives the
same value. :func:`gdp_epsilon` converts μ to the (ε, δ) curve it implies
(Dong, Roth & Su, Cor. 2.13). Applied to a μ_LB it gives an ε lower bound
only under the assumption that the mechanism's trade-off curve *is* G_μ for
some μ (the assumption Nasr et al. make for DP-SGD): gdp_epsilon is
increasing in μ, so then ε(δ) ≥ gdp_epsilon(μ_LB, δ). Without that
assumption it is no bound: ε-randomized response with ε = ln 3 has a test
with FPR = FNR = 1/4, hence μ_LB can approach 2Φ⁻¹(3/4) ≈ 1.35, and
gdp_epsilon(1.35, 1e-5) ≈ 6.2, yet the mechanism is (ln 3, 0)-DP. For ε lower
bounds that need no assumption use :mod:`cleanroom.audit.epsilon`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy.typing as npt
from scipy import optimize, stats

from cleanroom.audit._binomial import check_confidence, clopper_pearson_upper
from cleanroom.audit.epsilon import ConfusionCounts, _as_bool_vector
from cleanroom.errors import AuditError

__all__ = [
    "GaussianDPBound",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu_lower_bound",
    "gdp_mu_lower_bound_from_counts",
]


@dataclass(frozen=True)
class GaussianDPBound:
    """μ_LB: with probability ≥ ``confidence`` the mechanism is not μ'-GDP for μ' < ``mu``."""

    kind: ClassVar[str] = "lower-bound"
    method: ClassVar[str] = "clopper-pearson-gaussian-tradeoff"

    mu: float
    ceiling: float
    confidence: float
    counts: ConfusionCounts
    fpr_upper: float
    fnr_upper: float

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "method": self.method,
            "mu": self.mu,
            "ceiling": self.ceiling,
            "confidence": self.confidence,
            "counts": self.counts.to_json(),
            "fpr_upper": self.fpr_upper,
            "fnr_upper": self.fnr_upper,
        }


def _mu_from_rates(fpr: float, fnr: float) -> float:
    return max(0.0, float(stats.norm.isf(fpr) - stats.norm.ppf(fnr)))


def gdp_mu_lower_bound_from_counts(
    counts: ConfusionCounts, *, confidence: float = 0.95
) -> GaussianDPBound:
    check_confidence(confidence)
    if counts.members < 1 or counts.nonmembers < 1:
        raise AuditError("a μ lower bound needs at least one member and one non-member")
    alpha = (1.0 - confidence) / 2.0
    fpr_ub = float(clopper_pearson_upper(counts.false_positives, counts.nonmembers, alpha))
    fnr_ub = float(clopper_pearson_upper(counts.false_negatives, counts.members, alpha))
    ceiling = _mu_from_rates(
        float(clopper_pearson_upper(0, counts.nonmembers, alpha)),
        float(clopper_pearson_upper(0, counts.members, alpha)),
    )
    return GaussianDPBound(
        mu=_mu_from_rates(fpr_ub, fnr_ub),
        ceiling=ceiling,
        confidence=confidence,
        counts=counts,
        fpr_upper=fpr_ub,
        fnr_upper=fnr_ub,
    )


def gdp_mu_lower_bound(
    member_guesses: npt.ArrayLike, nonmember_guesses: npt.ArrayLike, *, confidence: float = 0.95
) -> GaussianDPBound:
    """μ_LB from boolean "member" decisions made with a rule fixed before the data."""
    # Decisions only (booleans or 0/1), as for epsilon_lower_bound: a cast
    # would silently turn scores such as 0.3 into "member".
    on_m = _as_bool_vector(member_guesses, "member_guesses")
    on_n = _as_bool_vector(nonmember_guesses, "nonmember_guesses")
    tp, fp = int(on_m.sum()), int(on_n.sum())
    counts = ConfusionCounts(tp, on_m.size - tp, fp, on_n.size - fp)
    return gdp_mu_lower_bound_from_counts(counts, confidence=confidence)


def gdp_delta(mu: float, epsilon: float) -> float:
    """δ(ε) of a μ-GDP mechanism: Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2)."""
    if mu <= 0.0:
        return 0.0
    a = stats.norm.cdf(-epsilon / mu + mu / 2.0)
    # e^ε Φ(x) computed in log space so large ε does not overflow.
    b = math.exp(epsilon + float(stats.norm.logcdf(-epsilon / mu - mu / 2.0)))
    return max(0.0, float(a) - b)


def gdp_epsilon(mu: float, delta: float) -> float:
    """The smallest ε with δ(ε) ≤ *delta* for a μ-GDP mechanism.

    A conversion of a GDP *guarantee*, not of a GDP lower bound: applied to a
    μ_LB it bounds ε only for mechanisms whose trade-off curve is Gaussian.
    """
    if not 0.0 < delta < 1.0:
        raise AuditError("delta must be in (0, 1) to convert μ-GDP to (ε, δ)")
    if mu < 0.0:
        raise AuditError("mu must not be negative")
    if gdp_delta(mu, 0.0) <= delta:
        return 0.0
    high = 1.0
    while gdp_delta(mu, high) > delta:
        high *= 2.0
    return float(optimize.brentq(lambda e: gdp_delta(mu, e) - delta, 0.0, high, xtol=1e-10))
