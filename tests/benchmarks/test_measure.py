"""The benchmark's statistics: bootstrap intervals of ratios of medians."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.inference.measure import ratio_interval


def _samples(median: float, n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(median + rng.standard_normal(n))


def test_the_interval_holds_the_ratio_of_medians_and_narrows_with_more_samples() -> None:
    top, bottom = _samples(105.0, 60, 1), _samples(100.0, 60, 2)
    low, high = ratio_interval(top, bottom)
    point = float(np.median(top) / np.median(bottom))
    assert low < point < high
    many_low, many_high = ratio_interval(_samples(105.0, 2000, 3), _samples(100.0, 2000, 4))
    assert many_high - many_low < (high - low) / 2
    assert many_low < 1.05 < many_high


def test_the_same_samples_give_an_interval_around_one_and_the_seed_fixes_it() -> None:
    top = _samples(50.0, 200, 5)
    bottom = list(np.random.default_rng(6).permutation(top))
    low, high = ratio_interval(top, bottom, seed=7)
    assert low < 1.0 < high
    assert ratio_interval(top, bottom, seed=7) == (low, high)


@pytest.mark.parametrize(
    ("top", "bottom", "level"),
    [([], [1.0], 0.95), ([1.0], [], 0.95), ([1.0], [1.0], 0.0), ([1.0], [1.0], 1.0)],
    ids=["no-numerator", "no-denominator", "level-0", "level-1"],
)
def test_empty_samples_or_a_level_outside_zero_one_are_refused(
    top: list[float], bottom: list[float], level: float
) -> None:
    with pytest.raises(ValueError, match=r"no samples|level"):
        ratio_interval(top, bottom, level=level)
