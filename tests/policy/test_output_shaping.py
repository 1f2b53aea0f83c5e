"""Output shaping declared in the policy: round, clip, top-k; refused when unclear."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cleanroom.errors import PolicyError
from cleanroom.policy import OutputShaping, PolicyBundle


def _shaping(doc: Any) -> OutputShaping:
    return OutputShaping.from_json(doc)


def test_shaping_is_read_from_the_policy_module() -> None:
    bundle = PolicyBundle.compile(
        "package cleanroom\n"
        'shaping := {"score": {"clip": [0, 1], "round": 2}, "probs": {"top_k": 2}}\n'
    )
    assert bundle.shaping.to_json() == {
        "probs": {"top_k": 2},
        "score": {"clip": [0.0, 1.0], "round": 2},
    }


def test_changing_the_shaping_changes_the_digest() -> None:
    a = PolicyBundle.compile('package cleanroom\nshaping := {"score": {"round": 2}}\n')
    b = PolicyBundle.compile('package cleanroom\nshaping := {"score": {"round": 3}}\n')
    assert a.digest != b.digest


def test_round() -> None:
    out = _shaping({"score": {"round": 2}}).apply(
        {"score": np.array([0.12345, 0.98765], np.float32)}
    )
    np.testing.assert_allclose(out["score"], [0.12, 0.99], rtol=0, atol=1e-7)
    assert out["score"].dtype == np.float32


def test_clip() -> None:
    out = _shaping({"score": {"clip": [0, 1]}}).apply({"score": np.array([-3.0, 0.5, 7.0])})
    assert out["score"].tolist() == [0.0, 0.5, 1.0]


def test_clip_integers_stays_integer() -> None:
    out = _shaping({"n": {"clip": [0.5, 9.5]}}).apply({"n": np.array([-1, 5, 12], np.int64)})
    assert out["n"].tolist() == [1, 5, 9]
    assert out["n"].dtype == np.int64


def test_top_k_keeps_the_k_largest_per_row() -> None:
    probs = np.array([[0.1, 0.5, 0.2, 0.2], [0.7, 0.1, 0.1, 0.1]], np.float32)
    out = _shaping({"probs": {"top_k": 2}}).apply({"probs": probs})
    expected = np.array([[0.0, 0.5, 0.2, 0.0], [0.7, 0.1, 0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(out["probs"], expected)
    assert out["probs"].shape == probs.shape


def test_operations_apply_in_the_documented_order() -> None:
    # top_k first (on raw values), then clip, then round.
    rule = {"round": 1, "clip": [0, 1], "top_k": 1}
    out = _shaping({"s": rule}).apply({"s": np.array([[3.0, 0.26, 0.1]])})
    assert out["s"].tolist() == [[1.0, 0.0, 0.0]]


def test_unshaped_outputs_pass_and_inputs_are_not_modified() -> None:
    score = np.array([0.123456])
    other = np.array([5.5])
    out = _shaping({"score": {"round": 1}}).apply({"score": score, "other": other})
    assert out["other"] is other
    assert score.tolist() == [0.123456]


def test_no_shaping_is_the_identity() -> None:
    x = np.arange(4.0)
    assert OutputShaping.none().apply({"x": x})["x"] is x
    assert not OutputShaping.none()


@pytest.mark.parametrize(
    ("name", "doc", "message"),
    [
        ("not an object", ["score"], "object keyed by output name"),
        ("empty rule", {"score": {}}, "non-empty object"),
        ("unknown operation", {"score": {"rund": 2}}, "unknown operation"),
        ("top_k zero", {"score": {"top_k": 0}}, "at least 1"),
        ("top_k float", {"score": {"top_k": 1.5}}, "integer"),
        ("top_k bool", {"score": {"top_k": True}}, "integer"),
        ("clip reversed", {"score": {"clip": [1, 0]}}, r"\[low, high\]"),
        ("clip one bound", {"score": {"clip": [1]}}, r"\[low, high\]"),
        ("clip strings", {"score": {"clip": ["0", "1"]}}, r"\[low, high\]"),
        ("round negative", {"score": {"round": -1}}, "0..15"),
        ("round too fine", {"score": {"round": 16}}, "0..15"),
        ("round float", {"score": {"round": 2.0}}, "0..15"),
        ("empty name", {"": {"round": 2}}, "output names"),
    ],
)
def test_invalid_shaping_is_refused(name: str, doc: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        _shaping(doc)


def test_shaping_an_output_the_model_lacks_is_refused() -> None:
    with pytest.raises(PolicyError, match="did not produce"):
        _shaping({"score": {"round": 2}}).apply({"label": np.array([1])})


def test_shaping_a_string_output_is_refused() -> None:
    with pytest.raises(PolicyError, match="cannot be shaped"):
        _shaping({"label": {"round": 2}}).apply({"label": np.array(["yes"])})


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize(
    "rule", [{"round": 1}, {"clip": [0, 1]}, {"top_k": 1}, {"round": 1, "clip": [0, 1]}]
)
def test_shaping_a_complex_output_is_refused(dtype: Any, rule: dict[str, Any]) -> None:
    # Complex values have no order to clip or rank by, and round skipped them:
    # 0.123456+0.987654j came back unshaped.
    score = np.array([0.123456 + 0.987654j, 2 - 1j], dtype=dtype)
    with pytest.raises(PolicyError, match=r"complex.* cannot be shaped"):
        _shaping({"score": rule}).apply({"score": score})
