"""The audit statistics against values computed independently in the test.

Every expected value here comes from scipy.stats or from the formulas of
docs/privacy-audits.md and ADR 0005 worked out in the test itself, never from
the library's own helpers:

* Clopper-Pearson upper bound on k errors in n trials at level alpha: the
  (1 - alpha)-quantile of Beta(k + 1, n - k), and 1 when k = n;
* ε_LB = max{0, ln((1-δ-FNR_ub)/FPR_ub), ln((1-δ-FPR_ub)/FNR_ub)}, each rate
  bounded at (1 - confidence)/2;
* the Bayesian estimate: Jeffreys posteriors Beta(errors + ½, correct + ½)
  evaluated on a 200 x 200 grid of mid-quantiles, the q-quantile being the
  sorted cell at rank ⌊q·K²⌋.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cleanroom.audit import (
    ConfusionCounts,
    epsilon_ceiling,
    epsilon_lower_bound_from_counts,
)
from cleanroom.audit._binomial import clopper_pearson_upper
from cleanroom.audit.epsilon import epsilon_from_rates


def _cp_upper(k: int, n: int, alpha: float) -> float:
    return 1.0 if k >= n else float(stats.beta.ppf(1.0 - alpha, k + 1, n - k))


def _eps(fpr: float, fnr: float, delta: float) -> float:
    terms = [0.0]
    if 1.0 - delta - fnr > 0.0:
        terms.append(math.log((1.0 - delta - fnr) / fpr))
    if 1.0 - delta - fpr > 0.0:
        terms.append(math.log((1.0 - delta - fpr) / fnr))
    return max(terms)


@pytest.mark.parametrize("n", [1, 4, 37])
@pytest.mark.parametrize("alpha", [0.025, 0.005])
def test_a_sweep_of_many_counts_matches_the_beta_quantile(n: int, alpha: float) -> None:
    # More counts than the n + 1 possible values (a threshold sweep over many
    # candidates) are answered from a table: each entry must still be the
    # bound of its own count, not of a neighbouring one.
    counts = np.concatenate([np.arange(n + 1), np.arange(n, -1, -1), [0, n]])
    assert counts.size > n + 1
    swept = clopper_pearson_upper(counts, n, alpha)
    expected = np.array([_cp_upper(int(k), n, alpha) for k in counts])
    np.testing.assert_allclose(swept, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("counts", "confidence", "delta"),
    [
        ((9, 1, 1, 9), 0.95, 0.0),
        ((9, 1, 1, 9), 0.9, 0.0),
        ((30, 10, 3, 57), 0.95, 0.0),
        ((30, 10, 3, 57), 0.99, 0.01),
        ((2, 48, 0, 50), 0.95, 0.0),
    ],
)
def test_bound_equals_the_hand_computed_formula(
    counts: tuple[int, int, int, int], confidence: float, delta: float
) -> None:
    tp, fn, fp, tn = counts
    alpha = (1.0 - confidence) / 2.0
    fpr_ub = _cp_upper(fp, fp + tn, alpha)
    fnr_ub = _cp_upper(fn, tp + fn, alpha)
    bound = epsilon_lower_bound_from_counts(
        ConfusionCounts(tp, fn, fp, tn), delta=delta, confidence=confidence
    )
    assert bound.fpr_upper == pytest.approx(fpr_ub, rel=1e-10)
    assert bound.fnr_upper == pytest.approx(fnr_ub, rel=1e-10)
    assert bound.epsilon == pytest.approx(_eps(fpr_ub, fnr_ub, delta), rel=1e-9, abs=1e-12)
    ceiling = _eps(_cp_upper(0, fp + tn, alpha), _cp_upper(0, tp + fn, alpha), delta)
    assert bound.ceiling == pytest.approx(ceiling, rel=1e-9)
    assert bound.confidence == confidence


@pytest.mark.parametrize(
    ("fpr", "fnr", "delta"),
    [(0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5)],
)
def test_a_zero_rate_with_no_room_left_carries_no_evidence(
    fpr: float, fnr: float, delta: float
) -> None:
    # 0/0: a rate of zero whose numerator 1 - δ - (other rate) is zero as well
    # says nothing about ε; it must not read as an infinite bound.
    assert float(epsilon_from_rates(fpr, fnr, delta)) == 0.0


@pytest.mark.parametrize(("members", "nonmembers"), [(0, 10), (10, 0), (0, 0)])
def test_the_ceiling_of_an_empty_side_is_zero(members: int, nonmembers: int) -> None:
    assert epsilon_ceiling(members, nonmembers) == 0.0


def _reference_estimate(
    counts: tuple[int, int, int, int], delta: float, confidence: float
) -> tuple[float, float, float]:
    tp, fn, fp, tn = counts
    k = 200
    mid = (np.arange(k) + 0.5) / k
    fpr = stats.beta.ppf(mid, fp + 0.5, tn + 0.5)
    fnr = stats.beta.ppf(mid, fn + 0.5, tp + 0.5)
    cells = np.sort(
        np.array([_eps(float(a), float(b), delta) for a in fpr for b in fnr], dtype=np.float64)
    )
    tail = (1.0 - confidence) / 2.0

    def quantile(q: float) -> float:
        return float(cells[min(math.floor(q * cells.size), cells.size - 1)])

    return quantile(0.5), quantile(tail), quantile(1.0 - tail)


@pytest.mark.parametrize(
    ("counts", "confidence"),
    [((70, 30, 20, 80), 0.95), ((70, 30, 20, 80), 0.9), ((12, 8, 5, 15), 0.8)],
)
def test_the_estimate_follows_the_documented_grid(
    counts: tuple[int, int, int, int], confidence: float
) -> None:
    bound = epsilon_lower_bound_from_counts(ConfusionCounts(*counts), confidence=confidence)
    median, low, high = _reference_estimate(counts, 0.0, confidence)
    estimate = bound.estimate
    assert estimate.median == pytest.approx(median, rel=1e-9, abs=1e-12)
    assert estimate.credible_interval[0] == pytest.approx(low, rel=1e-9, abs=1e-12)
    assert estimate.credible_interval[1] == pytest.approx(high, rel=1e-9, abs=1e-12)
    # The interval is labelled with the level it was computed at.
    assert estimate.credible_level == confidence
