from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from cleanroom.errors import InvalidTensor
from cleanroom.runtime.base import TensorSpec
from cleanroom.runtime.tensors import check_inputs

SPECS = (
    TensorSpec("x", "float32", (None, 4)),
    TensorSpec("ids", "int64", (None,)),
    TensorSpec("words", "str", (2,)),
)


def good() -> dict[str, object]:
    return {
        "x": np.zeros((3, 4), np.float32),
        "ids": np.arange(3, dtype=np.int64),
        "words": np.array(["a", "b"]),
    }


def test_matching_inputs_pass_and_strings_become_objects() -> None:
    feed = check_inputs(good(), SPECS)
    assert set(feed) == {"x", "ids", "words"}
    assert feed["words"].dtype == object
    assert feed["x"].flags["C_CONTIGUOUS"]


def test_non_contiguous_input_is_made_contiguous() -> None:
    inputs = good()
    inputs["x"] = np.zeros((4, 3), np.float32).T
    assert check_inputs(inputs, SPECS)["x"].flags["C_CONTIGUOUS"]


def _set(key: str, value: object) -> Callable[[dict[str, object]], None]:
    def mutate(inputs: dict[str, object]) -> None:
        inputs[key] = value

    return mutate


def _drop(key: str) -> Callable[[dict[str, object]], None]:
    def mutate(inputs: dict[str, object]) -> None:
        del inputs[key]

    return mutate


@pytest.mark.parametrize(
    ("name", "mutation", "expected"),
    [
        ("missing input", _drop("ids"), "missing input(s) ['ids']"),
        ("unknown input", _set("extra", np.zeros(1)), "unknown input(s) ['extra']"),
        ("wrong dtype", _set("x", np.zeros((3, 4), np.float64)), "dtype float64"),
        ("no silent int cast", _set("ids", np.arange(3, dtype=np.int32)), "dtype int32"),
        ("wrong rank", _set("x", np.zeros((3, 4, 1), np.float32)), "shape [3, 4, 1]"),
        ("wrong static dim", _set("x", np.zeros((3, 5), np.float32)), "shape [3, 5]"),
        ("not an array", _set("x", [[0.0] * 4]), "not a numpy array"),
        ("string for number", _set("ids", np.array(["1", "2", "3"])), "dtype str"),
        ("object non-strings", _set("words", np.array([1, None], dtype=object)), "str values"),
        ("byte strings", _set("words", np.array([b"a", b"b"])), "str values"),
        ("object bytes", _set("words", np.array([b"a", b"b"], dtype=object)), "str values"),
    ],
)
def test_refusals(name: str, mutation: Callable[[dict[str, object]], None], expected: str) -> None:
    inputs = good()
    mutation(inputs)
    with pytest.raises(InvalidTensor) as info:
        check_inputs(inputs, SPECS)
    assert expected in str(info.value), name


def test_every_problem_is_reported_together() -> None:
    inputs = good()
    inputs["x"] = np.zeros((3, 4), np.float64)
    del inputs["ids"]
    with pytest.raises(InvalidTensor) as info:
        check_inputs(inputs, SPECS)
    assert "missing" in str(info.value)
    assert "float64" in str(info.value)
