"""Membership-inference metrics: AUC, advantage, TPR at low FPR."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cleanroom.audit import membership_metrics
from cleanroom.errors import AuditError


def test_auc_of_unit_separation() -> None:
    # Member scores N(1, 1) vs non-member N(0, 1): AUC = Φ(1/√2) ≈ 0.760. With
    # 20 000 + 20 000 scores the sd of the empirical AUC is ≈ 0.0026; ±0.01 is ~4 sd.
    rng = np.random.default_rng(21)
    metrics = membership_metrics(rng.normal(1.0, 1.0, 20_000), rng.normal(0.0, 1.0, 20_000))
    assert metrics.auc == pytest.approx(stats.norm.cdf(1 / math.sqrt(2)), abs=0.01)
    assert metrics.auc == pytest.approx(0.760, abs=0.01)
    # Advantage max(TPR - FPR) = 2Φ(½) - 1 ≈ 0.383 for this pair.
    assert metrics.advantage == pytest.approx(2 * stats.norm.cdf(0.5) - 1, abs=0.02)
    # TPR at FPR 1 %: 1 - Φ(Φ⁻¹(0.99) - 1) ≈ 0.0919; sd ≈ 0.004 (+ threshold noise).
    at_1 = metrics.tpr_at_fpr[0]
    assert at_1.status == "ok"
    assert at_1.tpr == pytest.approx(stats.norm.sf(stats.norm.ppf(0.99) - 1), abs=0.02)
    assert metrics.kind == "empirical"


def test_ties_count_half() -> None:
    metrics = membership_metrics([1.0, 1.0], [1.0, 1.0])
    assert metrics.auc == 0.5
    assert metrics.advantage == 0.0


def test_perfect_separation() -> None:
    metrics = membership_metrics(np.arange(10, 20.0), np.arange(0, 10.0))
    assert metrics.auc == 1.0
    assert metrics.advantage == 1.0


@pytest.mark.parametrize(
    ("nonmembers", "expected"),
    [
        # 999 · 1 % = 9.99 < 10 non-members in the tail: not enough.
        (999, ("insufficient-samples", "insufficient-samples")),
        (1_000, ("ok", "insufficient-samples")),
        (10_000, ("ok", "ok")),
        (500, ("insufficient-samples", "insufficient-samples")),
    ],
)
def test_thin_tails_are_reported_as_insufficient(
    nonmembers: int, expected: tuple[str, str]
) -> None:
    rng = np.random.default_rng(3)
    metrics = membership_metrics(rng.normal(size=100), rng.normal(size=nonmembers))
    statuses = tuple(t.status for t in metrics.tpr_at_fpr)
    assert statuses == expected
    for row in metrics.tpr_at_fpr:
        assert (row.tpr is None) == (row.status == "insufficient-samples")


@pytest.mark.parametrize(
    ("name", "members", "nonmembers", "fprs"),
    [
        ("empty", [], [1.0], (0.01,)),
        ("nan", [float("nan")], [1.0], (0.01,)),
        ("2-d", [[1.0]], [1.0], (0.01,)),
        ("fpr zero", [1.0], [1.0], (0.0,)),
        ("fpr one", [1.0], [1.0], (1.0,)),
    ],
)
def test_refusals(
    name: str, members: list[object], nonmembers: list[float], fprs: tuple[float, ...]
) -> None:
    with pytest.raises(AuditError):
        membership_metrics(members, nonmembers, fprs=fprs)
