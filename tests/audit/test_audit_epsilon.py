"""ε lower bounds from fixed decisions: closed forms, ceilings, the estimate's labelling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cleanroom.audit import (
    ConfusionCounts,
    EpsilonEstimate,
    EpsilonLowerBound,
    epsilon_ceiling,
    epsilon_lower_bound,
    epsilon_lower_bound_from_counts,
)
from cleanroom.audit._binomial import clopper_pearson_lower, clopper_pearson_upper
from cleanroom.audit.epsilon import epsilon_from_rates
from cleanroom.errors import AuditError

N_PER_SIDE = 5_000  # N = 10 000, split 50/50 as in the closed forms
ALPHA = 0.025  # each one-sided bound at (1 - 0.95)/2


def _bounds_for_counts(fp: np.ndarray, fn: np.ndarray, n: int) -> np.ndarray:
    """Vectorised ε_LB for many simulated audits (same maths as the library)."""
    return epsilon_from_rates(
        clopper_pearson_upper(fp, n, ALPHA), clopper_pearson_upper(fn, n, ALPHA), 0.0
    )


def test_clopper_pearson_matches_its_definition() -> None:
    # The upper bound u solves P(Binomial(n, u) <= k) = alpha.
    for k, n in [(0, 10), (3, 10), (250, 1000), (9, 10)]:
        u = float(clopper_pearson_upper(k, n, ALPHA))
        assert stats.binom.cdf(k, n, u) == pytest.approx(ALPHA, abs=1e-9)
        lo = float(clopper_pearson_lower(k + 1, n, ALPHA))
        assert stats.binom.sf(k, n, lo) == pytest.approx(ALPHA, abs=1e-9)
    assert float(clopper_pearson_upper(10, 10, ALPHA)) == 1.0
    assert float(clopper_pearson_lower(0, 10, ALPHA)) == 0.0


def test_randomized_response_ln3_median_and_exceedance() -> None:
    # Randomized response with ε = ln 3 answers truthfully w.p. 3/4, so the
    # attack "member iff the answer is 1" has FPR = FNR = 1/4 exactly.
    rng = np.random.default_rng(7)
    runs = 20_000
    fp = rng.binomial(N_PER_SIDE, 0.25, runs)
    fn = rng.binomial(N_PER_SIDE, 0.25, runs)
    eps = _bounds_for_counts(fp, fn, N_PER_SIDE)
    # Median: the bound at the expected counts is ln((1 - 0.262)/0.262) ≈ 1.04.
    # Between runs the median of 20 000 draws moves by ~0.0005; 0.01 is ample.
    assert np.median(eps) == pytest.approx(1.04, abs=0.01)
    # Exceeding ln 3 needs FNR_hat + 3 FPR_hat to fall ~2.5 sd below its mean
    # on either side: ~0.65 % each, ~1.3 % together. With 20 000 runs the
    # binomial sd of the rate is 0.08 %, so [0.5 %, 2 %] is a > 6 sd band; and
    # a valid 95 % bound must stay well under 5 %.
    exceed = float(np.mean(eps > math.log(3)))
    assert 0.005 < exceed < 0.02


def test_randomized_response_single_audit_through_public_api() -> None:
    rng = np.random.default_rng(11)
    truth_members = np.ones(N_PER_SIDE, dtype=bool)
    truth_nonmembers = np.zeros(N_PER_SIDE, dtype=bool)
    flip_m = rng.random(N_PER_SIDE) < 0.25
    flip_n = rng.random(N_PER_SIDE) < 0.25
    result = epsilon_lower_bound(truth_members ^ flip_m, truth_nonmembers ^ flip_n)
    # One draw: within ±0.1 of 1.04 (sd of a single run's ε_LB is ≈ 0.035).
    assert result.epsilon == pytest.approx(1.04, abs=0.1)
    assert result.epsilon < math.log(3) + 0.1


def test_laplace_counting_query_threshold_one() -> None:
    # Laplace(scale 1) on a count of 0 vs 1; "member iff output >= 1":
    # FPR = P(Lap >= 1) = e^-1/2, FNR = P(1 + Lap < 1) = 1/2.
    rng = np.random.default_rng(3)
    runs = 5_000
    fp = rng.binomial(N_PER_SIDE, 0.5 * math.exp(-1.0), runs)
    fn = rng.binomial(N_PER_SIDE, 0.5, runs)
    eps = _bounds_for_counts(fp, fn, N_PER_SIDE)
    # Bound at the expected counts: ln(0.486/0.195) ≈ 0.913; the median of
    # 5 000 runs sits within 0.002 of it.
    assert np.median(eps) == pytest.approx(0.91, abs=0.01)
    # A valid 95 % bound exceeds the true ε = 1 rarely.
    assert np.mean(eps > 1.0) < 0.05


def test_perfect_attack_hits_the_ceiling() -> None:
    perfect = epsilon_lower_bound(np.ones(N_PER_SIDE, bool), np.zeros(N_PER_SIDE, bool))
    # Closed form: FPR_ub = FNR_ub = 1 - 0.025^(1/5000); ε = ln((1 - u)/u).
    u = 1.0 - ALPHA ** (1.0 / N_PER_SIDE)
    assert perfect.epsilon == pytest.approx(math.log((1 - u) / u), rel=1e-9)
    assert perfect.epsilon == pytest.approx(7.21, abs=0.005)
    assert perfect.ceiling == perfect.epsilon
    assert epsilon_ceiling(N_PER_SIDE, N_PER_SIDE) == pytest.approx(7.2115, abs=1e-3)


@pytest.mark.parametrize(
    ("members", "nonmembers", "confidence", "expected"),
    [
        # Smaller samples certify less; higher confidence certifies less.
        (100, 100, 0.95, math.log((1 - (1 - 0.025**0.01)) / (1 - 0.025**0.01))),
        (1_000, 1_000, 0.99, math.log((0.005**0.001) / (1 - 0.005**0.001))),
    ],
)
def test_ceiling_closed_forms(
    members: int, nonmembers: int, confidence: float, expected: float
) -> None:
    assert epsilon_ceiling(members, nonmembers, confidence=confidence) == pytest.approx(expected)


def test_delta_lowers_the_bound() -> None:
    counts = ConfusionCounts(900, 100, 100, 900)
    without = epsilon_lower_bound_from_counts(counts)
    with_delta = epsilon_lower_bound_from_counts(counts, delta=0.05)
    assert with_delta.epsilon < without.epsilon
    # Formula check: ln((1 - δ - FNR_ub)/FPR_ub).
    expected = math.log((1 - 0.05 - with_delta.fnr_upper) / with_delta.fpr_upper)
    assert with_delta.epsilon == pytest.approx(expected)


def test_no_better_than_chance_gives_zero() -> None:
    bound = epsilon_lower_bound_from_counts(ConfusionCounts(500, 500, 500, 500))
    assert bound.epsilon == 0.0


def test_estimate_is_typed_and_labelled_as_an_estimate() -> None:
    bound = epsilon_lower_bound_from_counts(ConfusionCounts(3750, 1250, 1250, 3750))
    assert isinstance(bound, EpsilonLowerBound)
    assert bound.kind == "lower-bound"
    estimate = bound.estimate
    assert isinstance(estimate, EpsilonEstimate)
    assert not isinstance(estimate, EpsilonLowerBound)
    # An estimate has no ``epsilon``: it cannot be passed off as the bound.
    assert not hasattr(estimate, "epsilon")
    doc = bound.to_json()
    est_doc = doc["estimate"]
    assert isinstance(est_doc, dict)
    assert est_doc["kind"] == "bayesian-estimate"
    assert "epsilon" not in est_doc
    assert doc["kind"] == "lower-bound"
    assert doc["epsilon"] == bound.epsilon
    # Jeffreys posterior around FPR = FNR = 1/4: median near ln 3, and the
    # credible interval brackets it; the bound sits below the estimate.
    assert estimate.median == pytest.approx(math.log(3), abs=0.1)
    low, high = estimate.credible_interval
    assert low < estimate.median < high
    assert bound.epsilon < estimate.median


@pytest.mark.parametrize("counts", [(700, 300, 200, 800), (4990, 10, 3, 4997), (40, 60, 55, 45)])
def test_estimate_matches_monte_carlo_posterior(counts: tuple[int, int, int, int]) -> None:
    # Independent check of the grid integration: sample the Jeffreys posteriors.
    tp, fn, fp, tn = counts
    estimate = epsilon_lower_bound_from_counts(ConfusionCounts(tp, fn, fp, tn)).estimate
    rng = np.random.default_rng(0)
    draws = epsilon_from_rates(
        rng.beta(fp + 0.5, tn + 0.5, 400_000), rng.beta(fn + 0.5, tp + 0.5, 400_000), 0.0
    )
    low, median, high = np.quantile(draws, [0.025, 0.5, 0.975])
    # The grid resolves each marginal to 1/200 of its mass; the Monte Carlo
    # median of 400 000 draws is within ~0.002·sd. 2 % of the interval width
    # covers both.
    width = high - low
    assert estimate.median == pytest.approx(median, abs=0.02 * width + 1e-9)
    assert estimate.credible_interval[0] == pytest.approx(low, abs=0.03 * width + 1e-9)
    assert estimate.credible_interval[1] == pytest.approx(high, abs=0.03 * width + 1e-9)


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("negative delta", lambda: epsilon_lower_bound([True], [False], delta=-0.1)),
        ("delta of one", lambda: epsilon_lower_bound([True], [False], delta=1.0)),
        ("confidence one", lambda: epsilon_lower_bound([True], [False], confidence=1.0)),
        ("confidence below half", lambda: epsilon_lower_bound([True], [False], confidence=0.4)),
        ("no members", lambda: epsilon_lower_bound([], [False])),
        ("no nonmembers", lambda: epsilon_lower_bound([True], [])),
        ("non-boolean guesses", lambda: epsilon_lower_bound([0.3], [1])),
        ("two-dimensional guesses", lambda: epsilon_lower_bound([[True]], [False])),
        (
            "negative counts",
            lambda: epsilon_lower_bound_from_counts(ConfusionCounts(-1, 2, 1, 1)),
        ),
    ],
)
def test_refusals(name: str, call: object) -> None:
    with pytest.raises(AuditError):
        call()  # type: ignore[operator]
