"""One-run audits at the edges of their counts.

* No right guesses with δ > 0: the p-value is P[Bin(r, q) ≥ 0] = 1 and the
  bound 0 (Theorem 5.2's correction term has no i to range over).
* A guess rule that takes every canary as "in" (k_in = m) guesses on all of
  them when the scores are distinct.
"""

from __future__ import annotations

import pytest

from cleanroom.audit import one_run_epsilon_lower_bound, one_run_guesses
from cleanroom.audit.one_run import one_run_p_value


@pytest.mark.parametrize("delta", [1e-5, 1e-3])
def test_no_right_guess_with_delta_has_p_value_one_and_bound_zero(delta: float) -> None:
    assert one_run_p_value(100, 20, 0, 1.0, delta) == 1.0
    bound = one_run_epsilon_lower_bound(100, 20, 0, delta=delta)
    assert bound.epsilon == 0.0
    assert bound.ceiling > 0.0


@pytest.mark.parametrize(
    ("k_in", "k_out", "expected"),
    [(3, 0, (3, 2)), (0, 3, (3, 1)), (2, 1, (3, 3)), (1, 2, (3, 2))],
)
def test_groups_covering_every_canary_guess_on_all_of_them(
    k_in: int, k_out: int, expected: tuple[int, int]
) -> None:
    # Scores 1 < 2 < 3 for canaries included (1, 0, 1).
    assert one_run_guesses([3.0, 1.0, 2.0], [1, 0, 1], k_in=k_in, k_out=k_out) == expected
