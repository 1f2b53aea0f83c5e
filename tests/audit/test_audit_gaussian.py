"""μ-GDP lower bounds and the μ → (ε, δ) conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cleanroom.audit import ConfusionCounts, gdp_epsilon, gdp_mu_lower_bound_from_counts
from cleanroom.audit._binomial import clopper_pearson_upper
from cleanroom.audit.gaussian import gdp_delta, gdp_mu_lower_bound
from cleanroom.errors import AuditError

N = 5_000


def test_mu_lower_bound_formula() -> None:
    counts = ConfusionCounts(3_458, 1_542, 1_542, 3_458)
    bound = gdp_mu_lower_bound_from_counts(counts)
    fpr_ub = float(clopper_pearson_upper(1_542, N, 0.025))
    fnr_ub = float(clopper_pearson_upper(1_542, N, 0.025))
    assert bound.mu == pytest.approx(stats.norm.ppf(1 - fpr_ub) - stats.norm.ppf(fnr_ub))
    assert bound.kind == "lower-bound"


def test_gaussian_mechanism_mu_one() -> None:
    # Gaussian mechanism, sensitivity 1, sd 1: exactly 1-GDP. Threshold ½:
    # FPR = FNR = Φ(-½) ≈ 0.3085. The bound at the expected counts is
    # 2·Φ⁻¹(1 - 0.3214) ≈ 0.927; between runs the sd is ≈ 0.03.
    rng = np.random.default_rng(8)
    runs = 2_000
    p = stats.norm.cdf(-0.5)
    fp = rng.binomial(N, p, runs)
    fn = rng.binomial(N, p, runs)
    mus = np.array(
        [
            gdp_mu_lower_bound_from_counts(ConfusionCounts(N - b, b, a, N - a)).mu
            for a, b in zip(fp[:200], fn[:200], strict=True)
        ]
    )
    assert np.median(mus) == pytest.approx(0.927, abs=0.01)
    # Validity: μ_LB above the true μ = 1 rarely (Clopper-Pearson, 95 %).
    fpr_ub = clopper_pearson_upper(fp, N, 0.025)
    fnr_ub = clopper_pearson_upper(fn, N, 0.025)
    all_mus = stats.norm.ppf(1 - fpr_ub) - stats.norm.ppf(fnr_ub)
    assert np.mean(all_mus > 1.0) < 0.05


def test_guesses_api_and_ceiling() -> None:
    perfect = gdp_mu_lower_bound(np.ones(N, bool), np.zeros(N, bool))
    u = 1 - 0.025 ** (1 / N)
    assert perfect.mu == pytest.approx(2 * stats.norm.isf(u))
    assert perfect.ceiling == pytest.approx(perfect.mu)


def test_gdp_delta_closed_form_at_zero() -> None:
    # δ(0) = Φ(μ/2) - Φ(-μ/2) = 2Φ(μ/2) - 1 (Dong, Roth & Su, Cor. 2.13).
    assert gdp_delta(1.0, 0.0) == pytest.approx(2 * stats.norm.cdf(0.5) - 1)


@pytest.mark.parametrize(("mu", "delta"), [(0.5, 1e-5), (1.0, 1e-5), (2.0, 1e-6), (1.0, 0.1)])
def test_gdp_epsilon_inverts_gdp_delta(mu: float, delta: float) -> None:
    eps = gdp_epsilon(mu, delta)
    assert gdp_delta(mu, eps) == pytest.approx(delta, rel=1e-6)
    # Monotone: a larger δ buys a smaller ε.
    assert gdp_epsilon(mu, delta * 2) < eps


def test_gdp_epsilon_of_zero_mu_is_zero() -> None:
    assert gdp_epsilon(0.0, 1e-5) == 0.0
    assert gdp_delta(0.0, 1.0) == 0.0
    assert math.isfinite(gdp_epsilon(5.0, 1e-10))


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("delta zero", lambda: gdp_epsilon(1.0, 0.0)),
        ("negative mu", lambda: gdp_epsilon(-1.0, 1e-5)),
        ("no members", lambda: gdp_mu_lower_bound_from_counts(ConfusionCounts(0, 0, 1, 1))),
        ("bad confidence", lambda: gdp_mu_lower_bound([True], [False], confidence=1.5)),
        ("2-d guesses", lambda: gdp_mu_lower_bound([[True]], [False])),
    ],
)
def test_refusals(name: str, call: object) -> None:
    with pytest.raises(AuditError):
        call()  # type: ignore[operator]
