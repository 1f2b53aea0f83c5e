"""The split policy: what the search may see, which direction it takes, what it reports.

The split is the documented seeded one: ``numpy.random.default_rng(seed)``
permutes the members, then the non-members; the first
``round(n * selection_fraction)`` of each permutation select the threshold
and the rest are bounded.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cleanroom.audit import (
    FixedThreshold,
    SplitThreshold,
    epsilon_lower_bound_from_scores,
)
from cleanroom.errors import AuditError

N = 400
SELECTED = 100  # a quarter


def _parts(seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.permutation(n), rng.permutation(n)


def _reference_best_threshold(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """argmax over observed scores of the 95 % ε_LB of "member iff score >= t"."""
    best_t, best_eps = 0.0, -1.0
    for t in np.union1d(members, nonmembers):
        fp = int(np.count_nonzero(nonmembers >= t))
        fn = int(np.count_nonzero(members < t))
        fpr = 1.0 if fp == nonmembers.size else stats.beta.ppf(0.975, fp + 1, nonmembers.size - fp)
        fnr = 1.0 if fn == members.size else stats.beta.ppf(0.975, fn + 1, members.size - fn)
        eps = max(0.0, np.log(max(1.0 - fnr, 1e-300) / fpr), np.log(max(1.0 - fpr, 1e-300) / fnr))
        if eps > best_eps:
            best_t, best_eps = float(t), eps
    return best_t


def test_the_threshold_is_searched_on_the_selection_part_only() -> None:
    rng = np.random.default_rng(21)
    members, nonmembers = rng.normal(1.0, 1.0, N), rng.normal(0.0, 1.0, N)
    order_m, order_n = _parts(4)
    policy = SplitThreshold(seed=4)
    bound = epsilon_lower_bound_from_scores(members, nonmembers, policy=policy)
    expected = _reference_best_threshold(
        members[order_m[:SELECTED]], nonmembers[order_n[:SELECTED]]
    )
    assert bound.threshold == expected
    # Whatever the bounding part holds, the search does not see it.
    for shift in (-2.0, 0.37, 5.0):
        m, n = members.copy(), nonmembers.copy()
        m[order_m[SELECTED:]] += shift
        n[order_n[SELECTED:]] -= shift
        moved = epsilon_lower_bound_from_scores(m, n, policy=policy)
        assert moved.threshold == expected


def test_a_reversed_rule_is_reported_in_the_callers_units() -> None:
    # Members score *lower*: only "member iff score <= t" separates them.
    rng = np.random.default_rng(3)
    members, nonmembers = rng.normal(-10.0, 1.0, N), rng.normal(0.0, 1.0, N)
    bound = epsilon_lower_bound_from_scores(
        members, nonmembers, policy=SplitThreshold(seed=8, both_directions=True)
    )
    assert bound.method == "clopper-pearson-split-threshold-reversed"
    assert bound.threshold is not None
    assert -9.0 < bound.threshold < -1.0
    # The counts are those of "score <= threshold" on the bounding part.
    order_m, order_n = _parts(8)
    held_m, held_n = members[order_m[SELECTED:]], nonmembers[order_n[SELECTED:]]
    assert bound.counts.true_positives == int(np.count_nonzero(held_m <= bound.threshold))
    assert bound.counts.false_positives == int(np.count_nonzero(held_n <= bound.threshold))


def test_the_reversed_rule_is_taken_only_when_it_does_strictly_better() -> None:
    # No direction separates identical scores: the stated direction is kept.
    scores = np.zeros(N)
    bound = epsilon_lower_bound_from_scores(
        scores, scores.copy(), policy=SplitThreshold(seed=1, both_directions=True)
    )
    assert bound.method == "clopper-pearson-split-threshold"
    assert bound.epsilon == 0.0


def test_a_forward_split_matches_the_fixed_threshold_on_the_held_out_part() -> None:
    rng = np.random.default_rng(9)
    members, nonmembers = rng.normal(2.0, 1.0, N), rng.normal(0.0, 1.0, N)
    bound = epsilon_lower_bound_from_scores(members, nonmembers, policy=SplitThreshold(seed=2))
    order_m, order_n = _parts(2)
    assert bound.threshold is not None
    fixed = epsilon_lower_bound_from_scores(
        members[order_m[SELECTED:]],
        nonmembers[order_n[SELECTED:]],
        policy=FixedThreshold(bound.threshold),
    )
    assert bound.counts == fixed.counts
    assert bound.epsilon == fixed.epsilon


@pytest.mark.parametrize(
    ("fraction", "size", "message"),
    [
        (0.0, 10, "selection_fraction must be in"),
        (1.0, 10, "selection_fraction must be in"),
        (0.99, 10, "too few samples to split"),  # rounds to all ten records
        (0.01, 10, "too few samples to split"),  # rounds to none
    ],
)
def test_a_split_leaving_a_part_empty_is_refused(fraction: float, size: int, message: str) -> None:
    scores = np.arange(size, dtype=np.float64)
    with pytest.raises(AuditError, match=message):
        epsilon_lower_bound_from_scores(
            scores, scores + 0.5, policy=SplitThreshold(selection_fraction=fraction)
        )


@pytest.mark.parametrize(
    "policy",
    [FixedThreshold(0.5), SplitThreshold(seed=3)],
    ids=["fixed", "split"],
)
@pytest.mark.parametrize("empty", ["member_scores", "nonmember_scores"])
def test_an_empty_score_array_is_refused_by_name(policy: object, empty: str) -> None:
    scores = {"member_scores": [0.0, 1.0, 2.0, 3.0], "nonmember_scores": [0.5, 1.5, 2.5, 3.5]}
    scores[empty] = []
    with pytest.raises(AuditError, match=f"{empty} must be a non-empty"):
        epsilon_lower_bound_from_scores(
            scores["member_scores"],
            scores["nonmember_scores"],
            policy=policy,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("side", ["member_scores", "nonmember_scores"])
def test_a_non_finite_score_is_refused_under_a_fixed_threshold(bad: float, side: str) -> None:
    # A fixed threshold needs no split, so nothing else would stop a NaN
    # (sorted last, it would count as "above" every threshold).
    scores = {"member_scores": [0.0, 1.0, 2.0, 3.0], "nonmember_scores": [0.5, 1.5, 2.5, 3.5]}
    scores[side] = [*scores[side], bad]
    with pytest.raises(AuditError, match=f"{side} must be finite"):
        epsilon_lower_bound_from_scores(
            scores["member_scores"], scores["nonmember_scores"], policy=FixedThreshold(1.0)
        )


@pytest.mark.parametrize(
    ("members", "nonmembers", "fraction", "bounded"),
    [(7, 7, 0.25, (5, 5)), (9, 11, 0.25, (7, 8)), (10, 6, 0.5, (5, 3)), (3, 30, 0.6, (1, 12))],
)
def test_the_selection_part_is_the_rounded_fraction(
    members: int, nonmembers: int, fraction: float, bounded: tuple[int, int]
) -> None:
    rng = np.random.default_rng(0)
    bound = epsilon_lower_bound_from_scores(
        rng.normal(1.0, 1.0, members),
        rng.normal(0.0, 1.0, nonmembers),
        policy=SplitThreshold(selection_fraction=fraction),
    )
    assert (bound.counts.members, bound.counts.nonmembers) == bounded
