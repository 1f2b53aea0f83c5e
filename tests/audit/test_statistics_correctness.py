"""Independent checks of the audit statistics: exact coverage, monotonicity, edge cases.

Every reference value here is computed without the library's own formulas:
binomial tails from exact sums of log-gamma terms or ``scipy.stats.binom``
(not ``special.betaincinv``, which the library uses), privacy profiles by
numerical integration, the one-run p-value by the loop of Steinke, Nasr &
Jagielski (2023, Appendix D) written out again. Coverage is computed
*exactly* where the sampling distribution is a (product of) binomial(s), so
the assertions carry no Monte Carlo noise; the few Monte Carlo checks use
fixed seeds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy import integrate, optimize, special, stats

from cleanroom.audit import (
    AuditSpec,
    BonferroniThresholds,
    ConfusionCounts,
    FixedThreshold,
    SplitThreshold,
    check_dp_claim,
    check_gdp_claim,
    epsilon_ceiling,
    epsilon_lower_bound,
    epsilon_lower_bound_from_counts,
    epsilon_lower_bound_from_scores,
    gdp_epsilon,
    gdp_mu_lower_bound,
    gdp_mu_lower_bound_from_counts,
    one_run_epsilon_lower_bound,
    run_membership_audit,
)
from cleanroom.audit._binomial import clopper_pearson_lower, clopper_pearson_upper
from cleanroom.audit.epsilon import epsilon_from_rates
from cleanroom.audit.gaussian import gdp_delta
from cleanroom.audit.local import load_onnx_model
from cleanroom.audit.one_run import one_run_p_value
from cleanroom.audit.report import format_report
from cleanroom.errors import AuditError

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k) as an explicit sum of log-gamma terms."""
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for j in range(k + 1):
        total += math.exp(
            math.lgamma(n + 1)
            - math.lgamma(j + 1)
            - math.lgamma(n - j + 1)
            + j * log_p
            + (n - j) * log_q
        )
    return min(total, 1.0)


def _cp_upper_by_bisection(k: int, n: int, alpha: float) -> float:
    """The p with P(Binomial(n, p) <= k) = alpha (1 when k = n), by bisection."""
    if k >= n:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        if _binom_cdf(k, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def _cp_upper_vector(counts: npt.ArrayLike, n: int, alpha: float) -> FloatArray:
    """Vectorised bisection of P(Binomial(n, p) <= k) = alpha with scipy.stats.binom."""
    k = np.asarray(counts, dtype=np.float64)
    lo, hi = np.zeros_like(k), np.ones_like(k)
    for _ in range(60):
        mid = (lo + hi) / 2.0
        above = stats.binom.cdf(k, n, mid) > alpha
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return np.asarray(np.where(k >= n, 1.0, (lo + hi) / 2.0), dtype=np.float64)


def _cp_upper_scalar(k: int, n: int, alpha: float) -> float:
    return float(_cp_upper_vector([k], n, alpha)[0])


def _exact_exceedance(
    n_members: int,
    n_nonmembers: int,
    fpr: float,
    fnr: float,
    true_epsilon: float,
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
) -> float:
    """P(ε_LB > true ε) for an attack with these true rates, summed exactly.

    FP ~ Bin(n_nonmembers, fpr) and FN ~ Bin(n_members, fnr) independently;
    every (FP, FN) pair goes through the public API.
    """
    fp = np.arange(n_nonmembers + 1)
    fn = np.arange(n_members + 1)
    eps = np.array(
        [
            [
                epsilon_lower_bound_from_counts(
                    ConfusionCounts(n_members - b, b, a, n_nonmembers - a),
                    delta=delta,
                    confidence=confidence,
                ).epsilon
                for b in range(n_members + 1)
            ]
            for a in range(n_nonmembers + 1)
        ]
    )
    mass = stats.binom.pmf(fp, n_nonmembers, fpr)[:, None] * stats.binom.pmf(fn, n_members, fnr)
    return float(mass[eps > true_epsilon + 1e-12].sum())


def _vectorised_exceedance(
    n: int, fpr: float, fnr: float, true_epsilon: float, delta: float, confidence: float
) -> float:
    """As :func:`_exact_exceedance` for larger n, through the rate-level functions."""
    alpha = (1.0 - confidence) / 2.0
    k = np.arange(n + 1)
    fpr_ub = _cp_upper_vector(k, n, alpha)
    fnr_ub = fpr_ub  # same n on both sides
    eps = epsilon_from_rates(fpr_ub[:, None], fnr_ub[None, :], delta)
    mass = stats.binom.pmf(k, n, fpr)[:, None] * stats.binom.pmf(k, n, fnr)[None, :]
    return float(mass[eps > true_epsilon + 1e-12].sum())


def _gaussian_profile(mu: float, epsilon: float) -> float:
    """δ(ε) between N(μ, 1) and N(0, 1) by integrating (p - e^ε q)_+."""

    def excess(x: float) -> float:
        return max(0.0, float(stats.norm.pdf(x, mu, 1.0) - math.exp(epsilon) * stats.norm.pdf(x)))

    crossing = epsilon / mu + mu / 2.0  # where the likelihood ratio equals e^ε
    value, _ = integrate.quad(excess, crossing, crossing + 40.0, limit=200, epsabs=1e-14)
    return float(value)


def _one_run_p_value_reference(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """Theorem 5.2 of Steinke, Nasr & Jagielski (2023), written as in their Appendix D."""
    q = 1.0 / (1.0 + math.exp(-eps))
    tail = float(stats.binom.sf(v - 1, r, q))  # P[Bin(r, q) >= v]
    if delta == 0.0:
        return min(tail, 1.0)
    slope = 0.0
    partial = 0.0  # P[v > Bin(r, q) >= v - i]
    for i in range(1, v + 1):
        partial += float(stats.binom.pmf(v - i, r, q))
        slope = max(slope, partial / i)
    return min(tail + 2.0 * m * delta * slope, 1.0)


def _one_run_bound_reference(m: int, r: int, v: int, delta: float, significance: float) -> float:
    """Largest ε with p-value < significance, by bisection (their get_eps_audit)."""
    lo, hi = 0.0, 1.0
    if _one_run_p_value_reference(m, r, v, 0.0, delta) >= significance:
        return 0.0
    while _one_run_p_value_reference(m, r, v, hi, delta) < significance:
        lo, hi = hi, 2.0 * hi
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if _one_run_p_value_reference(m, r, v, mid, delta) < significance:
            lo = mid
        else:
            hi = mid
    return lo


# --------------------------------------------------------------------------
# Clopper-Pearson
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 101])
@pytest.mark.parametrize("alpha", [0.25, 0.025, 0.00125])
def test_clopper_pearson_matches_bisection_on_exact_binomial_sums(n: int, alpha: float) -> None:
    for k in range(n + 1):
        expected = _cp_upper_by_bisection(k, n, alpha)
        assert float(clopper_pearson_upper(k, n, alpha)) == pytest.approx(expected, abs=1e-12)
        # The lower bound is the mirror image: 1 - upper bound on the failures.
        expected_lower = 1.0 - _cp_upper_by_bisection(n - k, n, alpha)
        assert float(clopper_pearson_lower(k, n, alpha)) == pytest.approx(expected_lower, abs=1e-12)


def test_clopper_pearson_closed_forms_at_the_edges() -> None:
    # k = 0: (1 - u)^n = alpha. k = n: the upper bound is 1 (nothing to bound).
    for n in (1, 10, 5_000):
        assert float(clopper_pearson_upper(0, n, 0.025)) == pytest.approx(1 - 0.025 ** (1 / n))
        assert float(clopper_pearson_upper(n, n, 0.025)) == 1.0
        assert float(clopper_pearson_lower(0, n, 0.025)) == 0.0
        assert float(clopper_pearson_lower(n, n, 0.025)) == pytest.approx(0.025 ** (1 / n))


def test_clopper_pearson_table_path_equals_the_direct_path() -> None:
    # A sweep of many counts out of one n takes a tabulated path.
    n = 300
    counts = np.arange(n + 1)
    swept = clopper_pearson_upper(counts, n, 0.01)
    one_by_one = np.array([float(clopper_pearson_upper(int(k), n, 0.01)) for k in counts])
    np.testing.assert_allclose(swept, one_by_one, rtol=0, atol=1e-15)


@pytest.mark.parametrize("n", [1, 5, 30, 200])
@pytest.mark.parametrize("alpha", [0.025, 0.05, 0.005])
def test_clopper_pearson_exact_coverage_on_a_grid_of_rates(n: int, alpha: float) -> None:
    # Exact, not simulated: P_p(upper(K) < p) = sum of Bin(n, p) masses of the
    # counts whose bound misses p. One-sided CP guarantees <= alpha for all p.
    k = np.arange(n + 1)
    upper = clopper_pearson_upper(k, n, alpha)
    lower = clopper_pearson_lower(k, n, alpha)
    worst_upper = worst_lower = 0.0
    for p in np.linspace(0.0005, 0.9995, 400):
        mass = stats.binom.pmf(k, n, p)
        worst_upper = max(worst_upper, float(mass[upper < p].sum()))
        worst_lower = max(worst_lower, float(mass[lower > p].sum()))
    assert worst_upper <= alpha + 1e-12
    assert worst_lower <= alpha + 1e-12
    # ...and it is not vacuous: somewhere the miss rate comes near alpha
    # (the supremum over p is alpha itself).
    if n >= 30:
        assert worst_upper > 0.6 * alpha


def test_clopper_pearson_monte_carlo_coverage() -> None:
    rng = np.random.default_rng(20_240_611)
    runs = 20_000
    for n, p in [(50, 0.1), (400, 0.5), (1_000, 0.02)]:
        k = rng.binomial(n, p, runs)
        misses = float(np.mean(clopper_pearson_upper(k, n, 0.05) < p))
        # <= 5 % in truth; with 20 000 runs 1 % of slack is > 6 sd.
        assert misses < 0.06


def test_clopper_pearson_is_monotone() -> None:
    n = 60
    k = np.arange(n + 1)
    for alpha in (0.1, 0.025, 0.001):
        upper = clopper_pearson_upper(k, n, alpha)
        assert np.all(np.diff(upper) > 0)
        assert np.all(upper[:-1] > k[:-1] / n)  # strictly above the point estimate
    # A smaller alpha (more confidence) widens the bound; more trials tighten it.
    assert float(clopper_pearson_upper(5, 60, 0.001)) > float(clopper_pearson_upper(5, 60, 0.1))
    assert float(clopper_pearson_upper(10, 120, 0.025)) < float(clopper_pearson_upper(5, 60, 0.025))


# --------------------------------------------------------------------------
# ε lower bounds from fixed decisions
# --------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.0, 0.5, math.log(3), 2.0, 4.0])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_randomized_response_exact_exceedance_is_within_the_level(
    epsilon: float, confidence: float
) -> None:
    # ε-randomized response: the attack "member iff the answer is 1" has
    # FPR = FNR = 1/(1 + e^ε) and the mechanism is exactly ε-DP. The bound
    # may exceed ε with probability at most 1 - confidence.
    rate = 1.0 / (1.0 + math.exp(epsilon))
    for n in (10, 25):
        p = _exact_exceedance(n, n, rate, rate, epsilon, confidence=confidence)
        assert p <= 1.0 - confidence
    p = _vectorised_exceedance(400, rate, rate, epsilon, 0.0, confidence)
    assert p <= 1.0 - confidence


def test_randomized_response_unequal_group_sizes() -> None:
    epsilon = 1.5
    rate = 1.0 / (1.0 + math.exp(epsilon))
    assert _exact_exceedance(7, 60, rate, rate, epsilon) <= 0.05
    assert _exact_exceedance(60, 7, rate, rate, epsilon) <= 0.05


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("delta", [1e-5, 1e-2, 0.1])
def test_gaussian_mechanism_never_exceeds_its_true_epsilon_at_delta(
    sigma: float, delta: float
) -> None:
    # Gaussian mechanism, sensitivity 1, sd sigma: its exact ε(δ) comes from the
    # privacy profile, integrated numerically here (not via gdp_epsilon).
    mu = 1.0 / sigma
    true_eps = float(
        optimize.brentq(lambda e: _gaussian_profile(mu, e) - delta, 0.0, 60.0, xtol=1e-12)
    )
    for threshold in np.linspace(-1.0, 2.0, 7):
        fpr = float(stats.norm.sf(threshold, 0.0, sigma))
        fnr = float(stats.norm.cdf(threshold, 1.0, sigma))
        # Best case for the attack: the rates alone (no sampling) never beat ε(δ).
        assert float(epsilon_from_rates(fpr, fnr, delta)) <= true_eps + 1e-9
        p = _vectorised_exceedance(300, fpr, fnr, true_eps, delta, 0.95)
        assert p <= 0.05


def test_epsilon_lower_bound_monte_carlo_randomized_response() -> None:
    # End to end through boolean decisions: ε = 1 randomized response.
    rng = np.random.default_rng(99)
    epsilon = 1.0
    truthful = special.expit(epsilon)
    runs, n = 400, 500
    exceed = 0
    for _ in range(runs):
        on_members = rng.random(n) < truthful
        on_nonmembers = rng.random(n) >= truthful
        exceed += epsilon_lower_bound(on_members, on_nonmembers).epsilon > epsilon
    # The exact exceedance here is 0.88 %; with 400 runs its sd is 0.47 %,
    # so 4 % sits > 6 sd above it and still below the 5 % a valid bound allows.
    assert exceed / runs < 0.04


def test_epsilon_lower_bound_is_monotone() -> None:
    n = 200

    def eps(fp: int, fn: int, *, delta: float = 0.0, confidence: float = 0.95) -> float:
        counts = ConfusionCounts(n - fn, fn, fp, n - fp)
        return epsilon_lower_bound_from_counts(counts, delta=delta, confidence=confidence).epsilon

    fps = [0, 1, 5, 20, 60, 100]
    for fn in (0, 3, 30):
        values = [eps(fp, fn) for fp in fps]
        assert all(a >= b for a, b in itertools.pairwise(values))
    deltas = [0.0, 1e-6, 1e-3, 0.05, 0.3, 0.9]
    values = [eps(5, 30, delta=d) for d in deltas]
    assert all(a >= b for a, b in itertools.pairwise(values))
    levels = [0.5, 0.8, 0.9, 0.95, 0.99, 0.999]
    values = [eps(5, 30, confidence=c) for c in levels]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_epsilon_bound_symmetries_and_direction() -> None:
    # The two branches are the two orders of the neighbours: swapping the
    # roles of FPR and FNR leaves the bound unchanged.
    good = epsilon_lower_bound_from_counts(ConfusionCounts(180, 20, 30, 170))
    swapped = epsilon_lower_bound_from_counts(ConfusionCounts(170, 30, 20, 180))
    assert swapped.epsilon == pytest.approx(good.epsilon)
    assert good.epsilon > 0
    # The rule's direction is part of the rule: the complement of a good rule
    # (member iff the good rule says non-member) is bounded with upper bounds
    # on its own, large, error rates and shows nothing. Turning the rule
    # round must be decided in advance (or searched on a split part with
    # both_directions=True), never after seeing the counts.
    inverted = epsilon_lower_bound_from_counts(ConfusionCounts(20, 180, 170, 30))
    assert inverted.epsilon == 0.0


@pytest.mark.parametrize(("members", "nonmembers"), [(1, 1), (1, 50), (50, 1), (3, 4)])
def test_tiny_samples_and_perfect_attacks(members: int, nonmembers: int) -> None:
    perfect = ConfusionCounts(members, 0, 0, nonmembers)
    bound = epsilon_lower_bound_from_counts(perfect)
    u_fpr = 1.0 - 0.025 ** (1.0 / nonmembers)
    u_fnr = 1.0 - 0.025 ** (1.0 / members)
    expected = max(0.0, math.log((1 - u_fnr) / u_fpr), math.log((1 - u_fpr) / u_fnr))
    assert bound.epsilon == pytest.approx(expected)
    assert bound.epsilon == pytest.approx(bound.ceiling)
    assert bound.ceiling == pytest.approx(epsilon_ceiling(members, nonmembers))
    # Everything wrong shows the same leakage; everything "member" shows none.
    wrong = epsilon_lower_bound_from_counts(ConfusionCounts(0, members, nonmembers, 0))
    assert wrong.epsilon == pytest.approx(bound.epsilon)
    everyone = epsilon_lower_bound_from_counts(ConfusionCounts(members, 0, nonmembers, 0))
    nobody = epsilon_lower_bound_from_counts(ConfusionCounts(0, members, 0, nonmembers))
    assert everyone.epsilon == 0.0
    assert nobody.epsilon == 0.0


def test_a_single_record_per_side_certifies_nothing() -> None:
    # With one member and one non-member the 97.5 % upper bounds are 0.975,
    # so even a perfect attack gives ln(0.025/0.975) < 0: ε_LB = 0.
    assert epsilon_lower_bound([True], [False]).epsilon == 0.0
    assert epsilon_ceiling(1, 1) == 0.0


def test_delta_edge_values() -> None:
    counts = ConfusionCounts(4_990, 10, 10, 4_990)
    at_zero = epsilon_lower_bound_from_counts(counts, delta=0.0)
    tiny = epsilon_lower_bound_from_counts(counts, delta=1e-300)
    assert tiny.epsilon == pytest.approx(at_zero.epsilon, rel=1e-12)
    # δ eats the whole numerator: nothing can be shown.
    assert epsilon_lower_bound_from_counts(counts, delta=0.999).epsilon == 0.0
    # Closed form with δ: ln((1 - δ - FNR_ub)/FPR_ub).
    delta = 0.2
    u = at_zero.fpr_upper
    bound = epsilon_lower_bound_from_counts(counts, delta=delta)
    assert bound.epsilon == pytest.approx(math.log((1 - delta - u) / u))
    ceiling = epsilon_ceiling(5_000, 5_000, delta=delta)
    u0 = 1 - 0.025 ** (1 / 5_000)
    assert ceiling == pytest.approx(math.log((1 - delta - u0) / u0))
    for bad in (1.0, -1e-9, 1.5):
        with pytest.raises(AuditError):
            epsilon_lower_bound_from_counts(counts, delta=bad)


def test_union_bound_uses_half_the_error_per_side() -> None:
    counts = ConfusionCounts(700, 300, 100, 900)
    for confidence in (0.9, 0.95, 0.99):
        bound = epsilon_lower_bound_from_counts(counts, confidence=confidence)
        alpha = (1 - confidence) / 2
        assert bound.fpr_upper == pytest.approx(_cp_upper_scalar(100, 1_000, alpha))
        assert bound.fnr_upper == pytest.approx(_cp_upper_scalar(300, 1_000, alpha))


# --------------------------------------------------------------------------
# Searched thresholds
# --------------------------------------------------------------------------


def _shifted_scores(seed: int, n: int = 2_000) -> tuple[FloatArray, FloatArray]:
    rng = np.random.default_rng(seed)
    return rng.normal(1.5, 1.0, n), rng.normal(0.0, 1.0, n)


@pytest.mark.parametrize("k", [1, 2, 5, 20])
def test_bonferroni_bounds_each_candidate_at_the_split_error(k: int) -> None:
    members, nonmembers = _shifted_scores(1)
    candidates = tuple(np.linspace(0.75, 3.0, k))
    bound = epsilon_lower_bound_from_scores(
        members, nonmembers, policy=BonferroniThresholds(candidates)
    )
    # Each of the 2k one-sided bounds is at (1 - confidence)/(2k).
    alpha = 0.05 / (2 * k)
    assert bound.threshold is not None
    fp = int(np.sum(nonmembers >= bound.threshold))
    fn = int(np.sum(members < bound.threshold))
    assert bound.counts.false_positives == fp
    assert bound.fpr_upper == pytest.approx(_cp_upper_scalar(fp, nonmembers.size, alpha))
    assert bound.fnr_upper == pytest.approx(_cp_upper_scalar(fn, members.size, alpha))
    # The reported ε_LB is the best over the candidates at that level.
    best = max(
        float(
            epsilon_from_rates(
                _cp_upper_scalar(int(np.sum(nonmembers >= t)), nonmembers.size, alpha),
                _cp_upper_scalar(int(np.sum(members < t)), members.size, alpha),
                0.0,
            )
        )
        for t in candidates
    )
    assert bound.epsilon == pytest.approx(best)
    if k == 1:
        fixed = epsilon_lower_bound_from_scores(
            members, nonmembers, policy=FixedThreshold(candidates[0])
        )
        assert bound.epsilon == pytest.approx(fixed.epsilon)


def test_bonferroni_reports_the_family_wise_confidence() -> None:
    # The reported ε_LB is the maximum of K bounds, so it fails whenever any of
    # them fails: it holds with probability ≥ 1 - K·(1 - confidence)/K =
    # confidence, not with the per-candidate 1 - (1 - confidence)/K.
    members, nonmembers = _shifted_scores(2)
    for confidence in (0.9, 0.95):
        bound = epsilon_lower_bound_from_scores(
            members,
            nonmembers,
            confidence=confidence,
            policy=BonferroniThresholds((0.5, 1.0, 1.5, 2.0)),
        )
        assert bound.confidence == pytest.approx(confidence)
        per_candidate = 1 - (1 - confidence) / 4
        assert bound.fpr_upper == pytest.approx(
            float(
                clopper_pearson_upper(bound.counts.false_positives, 2_000, (1 - per_candidate) / 2)
            )
        )
        # The ceiling is that of the method actually used (per-candidate level).
        assert bound.ceiling == pytest.approx(
            epsilon_ceiling(2_000, 2_000, confidence=per_candidate)
        )


def test_bonferroni_correction_grows_with_the_number_of_candidates() -> None:
    members, nonmembers = _shifted_scores(3)
    best = 1.0
    previous = math.inf
    for k in (1, 2, 4, 16, 64):
        candidates = (best, *(10.0 + i for i in range(k - 1)))  # useless extras
        bound = epsilon_lower_bound_from_scores(
            members, nonmembers, policy=BonferroniThresholds(candidates)
        )
        assert bound.threshold == best
        assert bound.epsilon < previous
        previous = bound.epsilon


def test_split_bounds_only_the_held_out_records_at_the_full_confidence() -> None:
    members, nonmembers = _shifted_scores(4, n=800)
    policy = SplitThreshold(seed=11, selection_fraction=0.25)
    # Reproduce the parts from the documented seeded split (members first).
    rng = np.random.default_rng(11)
    order_m, order_n = rng.permutation(800), rng.permutation(800)
    held_m, held_n = members[order_m[200:]], nonmembers[order_n[200:]]
    # Whatever the selection part holds, the result is the fixed-threshold
    # bound on the held-out part at the threshold the selection chose.
    for scale in (1.0, 0.5, 3.0):
        m, n = members.copy(), nonmembers.copy()
        m[order_m[:200]] *= scale
        n[order_n[:200]] *= scale
        bound = epsilon_lower_bound_from_scores(m, n, policy=policy)
        assert bound.threshold is not None
        fixed = epsilon_lower_bound_from_scores(
            held_m, held_n, policy=FixedThreshold(bound.threshold)
        )
        assert bound.counts == fixed.counts
        assert bound.epsilon == pytest.approx(fixed.epsilon)
        assert bound.confidence == 0.95
        assert bound.ceiling == pytest.approx(epsilon_ceiling(600, 600))


def test_split_false_alarms_on_a_discrete_null() -> None:
    # ε = 0 with heavy ties (scores on 5 values): tie handling must not leak
    # the selection into the bound. 300 runs; the fixed-rule rate is ≪ 1 %.
    rng = np.random.default_rng(5)
    alarms = 0
    for rep in range(300):
        members = rng.integers(0, 5, 400).astype(float)
        nonmembers = rng.integers(0, 5, 400).astype(float)
        policy = SplitThreshold(seed=rep, both_directions=True)
        alarms += epsilon_lower_bound_from_scores(members, nonmembers, policy=policy).epsilon > 0
    assert alarms / 300 < 0.02


# --------------------------------------------------------------------------
# Gaussian DP
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mu", [0.2, 0.5, 1.0, 2.0, 4.0])
def test_gdp_delta_matches_the_integrated_privacy_profile(mu: float) -> None:
    for epsilon in (0.0, 0.1, 0.5, 1.0, 3.0):
        assert gdp_delta(mu, epsilon) == pytest.approx(_gaussian_profile(mu, epsilon), abs=1e-10)


@pytest.mark.parametrize(("mu", "delta"), [(0.5, 1e-5), (1.0, 1e-3), (2.0, 1e-6), (1.0, 0.2)])
def test_gdp_epsilon_is_the_smallest_epsilon_of_the_profile(mu: float, delta: float) -> None:
    expected = float(
        optimize.brentq(lambda e: _gaussian_profile(mu, e) - delta, 0.0, 60.0, xtol=1e-12)
    )
    assert gdp_epsilon(mu, delta) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("mu", [0.3, 1.0, 2.5])
def test_mu_formula_inverts_the_gaussian_tradeoff(mu: float) -> None:
    # On the trade-off curve FNR = G_μ(FPR) = Φ(Φ⁻¹(1 - FPR) - μ) the formula
    # returns μ itself, at every FPR: the test is exact, not conservative.
    for fpr in (0.001, 0.05, 0.3, 0.5, 0.9):
        fnr = float(stats.norm.cdf(stats.norm.ppf(1 - fpr) - mu))
        recovered = float(stats.norm.isf(fpr) - stats.norm.ppf(fnr))
        assert recovered == pytest.approx(mu)


@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0])
def test_mu_lower_bound_exact_exceedance(mu: float) -> None:
    # A μ-GDP Gaussian mechanism, threshold tests at several points: the
    # chance that μ_LB exceeds μ, summed exactly over both binomials.
    n = 250
    alpha = 0.025
    k = np.arange(n + 1)
    upper = _cp_upper_vector(k, n, alpha)
    with np.errstate(divide="ignore"):
        mus = np.maximum(0.0, stats.norm.isf(upper)[:, None] - stats.norm.ppf(upper)[None, :])
    for threshold in np.linspace(-1.0, mu + 1.0, 9):
        fpr = float(stats.norm.sf(threshold))
        fnr = float(stats.norm.cdf(threshold - mu))
        mass = stats.binom.pmf(k, n, fpr)[:, None] * stats.binom.pmf(k, n, fnr)[None, :]
        assert float(mass[mus > mu + 1e-12].sum()) <= 0.05
    # The library's μ_LB is this same quantity.
    counts = ConfusionCounts(n - 40, 40, 30, n - 30)
    assert gdp_mu_lower_bound_from_counts(counts).mu == pytest.approx(float(mus[30, 40]))


def test_gdp_guesses_must_be_decisions() -> None:
    # Scores passed where decisions are expected would be silently cast to
    # True (0.3 -> True) and bound a different attack; refuse them, as
    # epsilon_lower_bound does.
    with pytest.raises(AuditError):
        gdp_mu_lower_bound([0.3, 0.9, 0.1], [0.2, 0.0, 0.4])
    with pytest.raises(AuditError):
        gdp_mu_lower_bound([2, 1], [0, 1])
    ok = gdp_mu_lower_bound([1, 1, 0], [0, 0, 1])
    assert ok.counts == ConfusionCounts(2, 1, 1, 2)


# --------------------------------------------------------------------------
# One training run
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("m", "r", "v"), [(1_000, 100, 80), (1_000, 100, 100), (10_000, 200, 150), (100, 100, 60)]
)
@pytest.mark.parametrize("delta", [0.0, 1e-5, 1e-3])
def test_one_run_matches_the_papers_procedure(m: int, r: int, v: int, delta: float) -> None:
    for eps in (0.0, 0.5, 1.0, 3.0):
        assert one_run_p_value(m, r, v, eps, delta) == pytest.approx(
            _one_run_p_value_reference(m, r, v, eps, delta), rel=1e-9, abs=1e-15
        )
    bound = one_run_epsilon_lower_bound(m, r, v, delta=delta)
    assert bound.epsilon == pytest.approx(_one_run_bound_reference(m, r, v, delta, 0.05), abs=1e-7)


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 2.0])
def test_one_run_exact_exceedance_for_randomized_response(epsilon: float) -> None:
    # Each canary's bit goes through ε-randomized response, so right guesses
    # are exactly Binomial(r, e^ε/(1 + e^ε)): sum the exceedance exactly.
    r = 300
    q = float(special.expit(epsilon))
    correct = np.arange(r + 1)
    bounds = np.array([one_run_epsilon_lower_bound(r, r, int(c)).epsilon for c in correct])
    assert np.all(np.diff(bounds) >= 0)  # more right guesses never lower the bound
    exceed = float(stats.binom.pmf(correct, r, q)[bounds > epsilon].sum())
    assert exceed <= 0.05
    assert exceed > 0.02  # tight: the δ = 0 test is exact up to discreteness


def test_one_run_with_delta_is_valid_for_an_approximate_dp_mechanism() -> None:
    # Each canary's bit is revealed outright with probability δ and otherwise
    # goes through ε-randomized response: (ε, δ)-DP in each canary.
    epsilon, delta, m = 1.0, 1e-3, 400
    q = float(special.expit(epsilon))
    hit = delta + (1 - delta) * q
    correct = np.arange(int(m * 0.6), m + 1)
    bounds = np.array(
        [one_run_epsilon_lower_bound(m, m, int(c), delta=delta).epsilon for c in correct]
    )
    exceed = float(stats.binom.pmf(correct, m, hit)[bounds > epsilon].sum())
    assert exceed <= 0.05


def test_one_run_edge_cases() -> None:
    assert one_run_epsilon_lower_bound(10, 0, 0).epsilon == 0.0
    assert one_run_epsilon_lower_bound(10, 10, 0).epsilon == 0.0
    # All of r right at δ = 0: q^r = 0.05 in closed form.
    for r in (1, 5, 50):
        q = 0.05 ** (1 / r)
        expected = max(0.0, math.log(q / (1 - q)))
        assert one_run_epsilon_lower_bound(r, r, r).epsilon == pytest.approx(expected, abs=1e-9)
    # More canaries only matter through δ.
    a = one_run_epsilon_lower_bound(100, 50, 45, delta=1e-4)
    b = one_run_epsilon_lower_bound(10_000, 50, 45, delta=1e-4)
    assert b.epsilon < a.epsilon
    assert one_run_epsilon_lower_bound(100, 50, 45).epsilon == pytest.approx(
        one_run_epsilon_lower_bound(10_000, 50, 45).epsilon
    )


# --------------------------------------------------------------------------
# DP-claim conformance
# --------------------------------------------------------------------------


def _randomized_response(epsilon: float) -> object:
    truthful = float(special.expit(epsilon))

    def mechanism(bit: int, rng: np.random.Generator) -> float:
        return float(bit if rng.random() < truthful else 1 - bit)

    return mechanism


def test_honest_randomized_response_rarely_fails_its_claim() -> None:
    # An exactly ε-DP mechanism audited against its own ε: VIOLATION is a
    # false accusation and may happen in at most 5 % of seeds.
    mechanism = _randomized_response(1.0)
    violations = 0
    runs = 120
    for seed in range(runs):
        result = check_dp_claim(mechanism, 0, 1, epsilon=1.0, trials=300, seed=seed)  # type: ignore[arg-type]
        violations += result.verdict == "VIOLATION"
    assert violations / runs < 0.05


def test_overstated_randomized_response_is_caught() -> None:
    # Really ε = 3, claimed ε = 1.
    mechanism = _randomized_response(3.0)
    result = check_dp_claim(mechanism, 0, 1, epsilon=1.0, trials=2_000, seed=1)  # type: ignore[arg-type]
    assert result.verdict == "VIOLATION"
    assert 1.0 < result.bound.epsilon <= 3.0


def test_verdict_is_strictly_bound_above_claim() -> None:
    mechanism = _randomized_response(3.0)
    policy = FixedThreshold(0.5)
    base = check_dp_claim(mechanism, 0, 1, epsilon=0.0, trials=500, seed=3, policy=policy)  # type: ignore[arg-type]
    eps_lb = base.bound.epsilon
    assert eps_lb > 0
    at = check_dp_claim(mechanism, 0, 1, epsilon=eps_lb, trials=500, seed=3, policy=policy)  # type: ignore[arg-type]
    below = check_dp_claim(
        mechanism,  # type: ignore[arg-type]
        0,
        1,
        epsilon=eps_lb * (1 - 1e-9),
        trials=500,
        seed=3,
        policy=policy,
    )
    assert at.verdict == "CONSISTENT"
    assert below.verdict == "VIOLATION"


def test_gdp_claim_with_bonferroni_is_corrected_and_labelled_family_wise() -> None:
    def gaussian(value: float, rng: np.random.Generator) -> float:
        return value + float(rng.normal())

    candidates = (0.0, 0.5, 1.0, 1.5)
    result = check_gdp_claim(
        gaussian,
        0.0,
        1.0,
        mu=1.0,
        trials=1_000,
        seed=0,
        policy=BonferroniThresholds(candidates),
    )
    per_candidate = 1 - 0.05 / len(candidates)
    corrected = gdp_mu_lower_bound_from_counts(result.bound.counts, confidence=per_candidate)
    assert result.bound.mu == pytest.approx(corrected.mu)
    assert result.bound.ceiling == pytest.approx(corrected.ceiling)
    assert result.bound.confidence == pytest.approx(0.95)
    # A single fixed threshold needs no correction.
    fixed = check_gdp_claim(
        gaussian, 0.0, 1.0, mu=1.0, trials=1_000, seed=0, policy=FixedThreshold(0.5)
    )
    plain = gdp_mu_lower_bound_from_counts(fixed.bound.counts)
    assert fixed.bound.mu == pytest.approx(plain.mu)
    assert fixed.bound == plain


def test_bonferroni_attack_in_a_spec_is_labelled_at_the_per_attack_level(
    task: Any, overfit_model: Path, spec_doc: Callable[..., dict[str, Any]]
) -> None:
    # Two attacks at 95 %: each holds at 97.5 %; the Bonferroni attack's rates
    # are bounded at 1 - 0.025/3 for its three candidates, but its reported
    # bound (the best of three) holds at 97.5 %, and so it is labelled.
    attacks = [
        {
            "name": "loss-threshold",
            "threshold": {"policy": "bonferroni", "candidates": [0.1, 0.5, 1.0]},
        },
        {"name": "train-test-gap"},
    ]
    spec = AuditSpec.from_json(spec_doc(attacks=attacks))
    predict, _ = load_onnx_model(overfit_model)
    result = run_membership_audit(spec, predict, task.members, task.nonmembers)
    loss = next(a for a in result.attacks if a.name == "loss-threshold")
    assert loss.bound.method == "clopper-pearson-bonferroni-3-thresholds"
    assert loss.bound.confidence == pytest.approx(0.975)
    per_candidate_alpha = 0.025 / 3 / 2
    assert loss.bound.fpr_upper == pytest.approx(
        float(
            clopper_pearson_upper(
                loss.bound.counts.false_positives, loss.bound.counts.nonmembers, per_candidate_alpha
            )
        )
    )
    assert "at 0.975" in format_report(result.to_json())


def test_gdp_epsilon_of_a_mu_lower_bound_is_not_an_epsilon_lower_bound() -> None:
    # The documented caveat: randomized response with ε = ln 3 is (ln 3, 0)-DP,
    # yet the μ its own test shows converts to a much larger "ε".
    rate = 0.25
    mu_from_rates = float(stats.norm.isf(rate) - stats.norm.ppf(rate))
    assert mu_from_rates == pytest.approx(2 * stats.norm.ppf(0.75))
    assert gdp_epsilon(mu_from_rates, 1e-5) > 5 * math.log(3)
    # The assumption-free bound from the same rates never exceeds ln 3.
    assert float(epsilon_from_rates(rate, rate, 1e-5)) <= math.log(3)
