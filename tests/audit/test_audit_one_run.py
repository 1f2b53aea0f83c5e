"""One-training-run ε lower bounds (Steinke, Nasr & Jagielski 2023)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from cleanroom.audit import one_run_epsilon_lower_bound, one_run_guesses
from cleanroom.audit.one_run import one_run_p_value
from cleanroom.errors import AuditError


def test_all_correct_closed_form() -> None:
    # δ = 0, v = r: P[Bin(r, q) >= r] = q^r = 0.05, so q = 0.05^(1/r).
    r = 100
    q = 0.05 ** (1 / r)
    bound = one_run_epsilon_lower_bound(1_000, r, r)
    assert bound.epsilon == pytest.approx(math.log(q / (1 - q)), abs=1e-6)
    assert bound.ceiling == pytest.approx(bound.epsilon, abs=1e-6)


def test_p_value_is_the_binomial_tail_without_delta() -> None:
    p = one_run_p_value(1_000, 200, 150, 1.0, 0.0)
    assert p == pytest.approx(stats.binom.sf(149, 200, special.expit(1.0)))


@pytest.mark.parametrize(("guesses", "correct"), [(200, 150), (1_000, 560), (50, 50)])
def test_closed_form_matches_the_p_value(guesses: int, correct: int) -> None:
    # At ε_LB the p-value equals the significance: the bound is the boundary
    # of the rejected region, not merely inside it.
    bound = one_run_epsilon_lower_bound(5_000, guesses, correct)
    assert one_run_p_value(5_000, guesses, correct, bound.epsilon, 0.0) == pytest.approx(0.05)


def test_delta_only_raises_the_p_value_and_lowers_the_bound() -> None:
    assert one_run_p_value(1_000, 200, 150, 1.0, 1e-5) > one_run_p_value(1_000, 200, 150, 1.0, 0.0)
    without = one_run_epsilon_lower_bound(1_000, 200, 150)
    with_delta = one_run_epsilon_lower_bound(1_000, 200, 150, delta=1e-4)
    assert 0 < with_delta.epsilon < without.epsilon


def test_chance_guessing_gives_zero() -> None:
    assert one_run_epsilon_lower_bound(1_000, 200, 100).epsilon == 0.0
    assert one_run_epsilon_lower_bound(1_000, 0, 0).epsilon == 0.0


def test_false_alarm_rate_on_an_eps_one_mechanism() -> None:
    # Each canary's inclusion bit is released through ε = 1 randomized
    # response, so right guesses ~ Binomial(r, expit(1)) exactly: a valid
    # 95 % bound exceeds ε = 1 in at most 5 % of runs. 2 000 runs: the sd of a
    # 5 % rate is 0.5 %, so < 6.5 % has 3 sd of slack.
    rng = np.random.default_rng(12)
    runs, m = 2_000, 500
    alarms = 0
    for _ in range(runs):
        correct = int(rng.binomial(m, special.expit(1.0)))
        alarms += one_run_epsilon_lower_bound(m, m, correct).epsilon > 1.0
    assert alarms / runs < 0.065


def test_guess_rule_counts() -> None:
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.5, 0.7])
    included = np.array([1, 0, 1, 1, 0, 0], dtype=bool)
    # Top two (0.9, 0.8) guessed in: both right; bottom two (0.1, 0.2) out: one right.
    assert one_run_guesses(scores, included, k_in=2, k_out=2) == (4, 3)
    assert one_run_guesses(scores, included, k_in=0, k_out=0) == (0, 0)


def test_tied_scores_at_a_boundary_are_abstained_on() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.2])
    included = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
    # The second "in" guess would fall inside the run of 0.5s: only 0.9 is guessed in.
    assert one_run_guesses(scores, included, k_in=2, k_out=2) == (3, 3)
    # A run that fits inside the group entirely is guessed on.
    assert one_run_guesses(scores, included, k_in=4, k_out=2) == (6, 5)


def test_the_order_of_the_arrays_does_not_choose_the_guesses() -> None:
    """Canaries listed by inclusion (non-members first) with scores that carry no signal."""
    m = 1000
    included = np.r_[np.zeros(m // 2), np.ones(m // 2)].astype(bool)
    assert one_run_guesses(np.zeros(m), included, k_in=100, k_out=100) == (0, 0)
    rng = np.random.default_rng(7)
    alarms = 0
    for _ in range(200):
        # Label-only scores: right with probability 0.8, whatever the inclusion bit.
        scores = rng.binomial(1, 0.8, size=m).astype(float)
        guesses, correct = one_run_guesses(scores, included, k_in=100, k_out=100)
        shuffled = rng.permutation(m)
        assert one_run_guesses(scores[shuffled], included[shuffled], k_in=100, k_out=100) == (
            guesses,
            correct,
        )
        alarms += one_run_epsilon_lower_bound(m, guesses, correct).epsilon > 0
    assert alarms / 200 <= 0.05


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("correct above guesses", lambda: one_run_epsilon_lower_bound(10, 5, 6)),
        ("guesses above canaries", lambda: one_run_epsilon_lower_bound(10, 11, 5)),
        ("negative delta", lambda: one_run_epsilon_lower_bound(10, 5, 5, delta=-1e-5)),
        ("bad confidence", lambda: one_run_epsilon_lower_bound(10, 5, 5, confidence=1.0)),
        ("too many guesses", lambda: one_run_guesses([0.1, 0.2], [1, 0], k_in=2, k_out=1)),
        ("length mismatch", lambda: one_run_guesses([0.1, 0.2], [1], k_in=1, k_out=0)),
        ("nan score", lambda: one_run_guesses([float("nan"), 0.2], [1, 0], k_in=1, k_out=0)),
    ],
)
def test_refusals(name: str, call: object) -> None:
    with pytest.raises(AuditError):
        call()  # type: ignore[operator]
