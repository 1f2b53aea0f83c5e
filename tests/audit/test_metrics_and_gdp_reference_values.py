"""TPR at a fixed FPR and the μ-GDP bound on hand-worked cases.

* "TPR at FPR a" is the best TPR over thresholds whose empirical FPR is at
  most a, inclusive: a threshold with exactly a·n false positives counts.
* μ_LB = max{0, Φ⁻¹(1 - FPR_ub) - Φ⁻¹(FNR_ub)} with Clopper-Pearson upper
  bounds at (1 - confidence)/2 (docs/privacy-audits.md), recomputed here
  with scipy; an attack worse than chance gives 0, never a negative μ.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cleanroom.audit import ConfusionCounts, gdp_mu_lower_bound_from_counts, membership_metrics


def test_tpr_at_fpr_includes_a_threshold_at_exactly_that_fpr() -> None:
    # 1 000 non-members: 10 score 5, the rest 0; every member scores 5. The
    # threshold 5 has FPR = 10/1000 = 1 % exactly and TPR = 1.
    members = np.full(200, 5.0)
    nonmembers = np.r_[np.full(10, 5.0), np.zeros(990)]
    metrics = membership_metrics(members, nonmembers, fprs=(0.01,))
    (row,) = metrics.tpr_at_fpr
    assert (row.status, row.tpr) == ("ok", 1.0)


def test_tpr_at_fpr_is_zero_when_every_threshold_exceeds_that_fpr() -> None:
    # Every non-member outscores every member: only "nobody is a member"
    # (the threshold above all scores) keeps FPR at 1 %, with TPR 0.
    metrics = membership_metrics(np.zeros(100), np.ones(1000), fprs=(0.01,))
    (row,) = metrics.tpr_at_fpr
    assert (row.status, row.tpr) == ("ok", 0.0)
    assert metrics.advantage == 0.0
    assert metrics.auc == 0.0


def _cp_upper(k: int, n: int, alpha: float) -> float:
    return 1.0 if k >= n else float(stats.beta.ppf(1.0 - alpha, k + 1, n - k))


@pytest.mark.parametrize(
    ("counts", "confidence"),
    [((90, 10, 5, 95), 0.95), ((90, 10, 5, 95), 0.99), ((30, 20, 10, 40), 0.9)],
)
def test_mu_bound_equals_the_hand_computed_formula(
    counts: tuple[int, int, int, int], confidence: float
) -> None:
    tp, fn, fp, tn = counts
    alpha = (1.0 - confidence) / 2.0
    fpr, fnr = _cp_upper(fp, fp + tn, alpha), _cp_upper(fn, tp + fn, alpha)
    bound = gdp_mu_lower_bound_from_counts(ConfusionCounts(*counts), confidence=confidence)
    expected = max(0.0, float(stats.norm.isf(fpr) - stats.norm.ppf(fnr)))
    assert expected > 0.0
    assert bound.mu == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("counts", [(5, 95, 90, 10), (0, 50, 50, 0), (50, 50, 50, 50)])
def test_an_attack_no_better_than_chance_gives_mu_zero(counts: tuple[int, int, int, int]) -> None:
    assert gdp_mu_lower_bound_from_counts(ConfusionCounts(*counts)).mu == 0.0
