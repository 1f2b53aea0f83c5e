"""Output shaping rules: exactly the documented forms, applied without side effects.

``docs/policies.md`` and :mod:`cleanroom.policy.shaping`:

- ``clip`` is ``[low, high]``: exactly two numbers (a boolean is not one),
  ``low <= high`` (equal bounds pin every element);
- ``round`` is an integer 0..15 (a boolean is not one);
- ``top_k`` keeps the k largest along the last axis, ties to the lower index,
  whatever the length of the axis;
- boolean outputs may be named: ``round`` and ``clip`` leave them as they are;
- shaping returns copies: the model's arrays are never modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cleanroom.errors import PolicyError
from cleanroom.policy import OutputShaping


def _apply(rule: dict[str, Any], array: np.ndarray) -> np.ndarray:
    return OutputShaping.from_json({"y": rule}).apply({"y": array})["y"]


MALFORMED = [
    ("clip of three numbers", {"clip": [0, 1, 2]}, r"\[low, high\]"),
    ("clip with a boolean low", {"clip": [False, 1]}, r"\[low, high\]"),
    ("clip with a boolean high", {"clip": [0, True]}, r"\[low, high\]"),
    ("clip an object", {"clip": {"low": 0, "high": 1}}, r"\[low, high\]"),
    ("round a boolean", {"round": True}, "0..15"),
    ("round a string", {"round": "2"}, "0..15"),
]


@pytest.mark.parametrize(("name", "rule", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_rules_are_refused(name: str, rule: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        OutputShaping.from_json({"y": rule})


def test_equal_clip_bounds_pin_every_element() -> None:
    shaping = OutputShaping.from_json({"y": {"clip": [0.5, 0.5]}})
    assert shaping.to_json() == {"y": {"clip": [0.5, 0.5]}}
    assert shaping.apply({"y": np.array([-1.0, 0.5, 3.0])})["y"].tolist() == [0.5, 0.5, 0.5]


def test_top_k_ties_go_to_the_lower_index_on_a_long_axis() -> None:
    # Long enough that numpy's default (unstable) sort reorders equal values.
    row = np.array([0.1] * 5 + [0.9] + [0.1] * 30)
    out = _apply({"top_k": 3}, row)
    assert np.flatnonzero(out).tolist() == [0, 1, 5]
    assert out[[0, 1, 5]].tolist() == [0.1, 0.1, 0.9]


@pytest.mark.parametrize(
    "rule",
    [{"round": 2}, {"clip": [0.5, 1]}, {"clip": [0, 0]}, {"round": 0, "clip": [0.25, 0.75]}],
    ids=["round", "clip above false", "clip below true", "both"],
)
def test_boolean_outputs_are_left_as_they_are(rule: dict[str, Any]) -> None:
    flags = np.array([True, False, True])
    out = _apply(rule, flags)
    assert out.dtype == np.bool_
    assert out.tolist() == [True, False, True]


@pytest.mark.parametrize(
    "rule",
    [{"top_k": 1}, {"clip": [0, 0.5]}, {"round": 0}, {"top_k": 1, "clip": [0, 0.5], "round": 0}],
    ids=["top_k", "clip", "round", "all three"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_the_model_outputs_are_not_modified(rule: dict[str, Any], dtype: Any) -> None:
    scores = np.array([[3, 1, 2], [1, 2, 3]], dtype=dtype)
    before = scores.copy()
    out = _apply(rule, scores)
    np.testing.assert_array_equal(scores, before)
    assert out is not scores
