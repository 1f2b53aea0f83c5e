"""The input documents: exactly the documented fields, metadata not data."""

from __future__ import annotations

import numpy as np
import pytest

from cleanroom.errors import InvalidRequest
from cleanroom.policy import (
    SMALL_OUTPUT_MAX_ELEMENTS,
    InstanceInfo,
    TensorMeta,
    egress_input,
    ingress_input,
)

INSTANCE = InstanceInfo(
    id="inst-1", owner="o@example.com", users=["b@example.com", "a@example.com"]
)


def test_ingress_document() -> None:
    doc = ingress_input(
        action="predict",
        user="a@example.com",
        instance=INSTANCE,
        queries=4,
        inputs={"x": np.zeros((2, 3), np.float32), "ids": np.zeros(5, np.int64)},
        context={"consent": "jws"},
        model_digest="sha256:" + "ab" * 32,
        now_ns=123,
    )
    assert doc == {
        "direction": "ingress",
        "action": "predict",
        "user": "a@example.com",
        "instance": {
            "id": "inst-1",
            "owner": "o@example.com",
            "users": ["a@example.com", "b@example.com"],
        },
        "usage": {"queries": 4},
        "model": {"digest": "sha256:" + "ab" * 32},
        "context": {"consent": "jws"},
        "now_ns": 123,
        "request": {
            "names": ["ids", "x"],
            "inputs": {
                "ids": {"dtype": "int64", "shape": [5], "nbytes": 40},
                "x": {"dtype": "float32", "shape": [2, 3], "nbytes": 24},
            },
            "nbytes": 64,
        },
    }


def test_ingress_never_carries_input_values() -> None:
    doc = ingress_input(
        action="predict", user="a", instance=INSTANCE, queries=0, inputs={"x": np.array([42.0])}
    )
    assert "values" not in doc["request"]["inputs"]["x"]


def test_payload_size_overrides_the_tensor_sum() -> None:
    doc = ingress_input(
        action="upload_model", user="o", instance=INSTANCE, queries=0, payload_nbytes=10**9
    )
    assert doc["request"] == {"names": [], "inputs": {}, "nbytes": 10**9}


def test_tensor_metadata_may_be_given_without_the_array() -> None:
    meta = TensorMeta(dtype="float32", shape=(1, 3, 224, 224), nbytes=602112)
    doc = ingress_input(
        action="predict", user="a", instance=INSTANCE, queries=0, inputs={"x": meta}
    )
    assert doc["request"]["inputs"]["x"] == {
        "dtype": "float32",
        "shape": [1, 3, 224, 224],
        "nbytes": 602112,
    }


def test_egress_document_carries_small_output_values_only() -> None:
    small = np.arange(SMALL_OUTPUT_MAX_ELEMENTS, dtype=np.float32).reshape(8, 8)
    large = np.zeros(SMALL_OUTPUT_MAX_ELEMENTS + 1, np.float32)
    doc = egress_input(
        action="predict",
        user="a",
        instance=INSTANCE,
        queries=1,
        inputs={"x": np.zeros(2, np.float32)},
        outputs={"small": small, "large": large},
        now_ns=5,
    )
    outputs = doc["response"]["outputs"]
    assert doc["direction"] == "egress"
    assert doc["response"]["names"] == ["large", "small"]
    assert outputs["small"]["values"] == [float(v) for v in range(64)]
    assert outputs["small"]["shape"] == [8, 8]
    assert "values" not in outputs["large"]
    assert outputs["large"]["nbytes"] == 4 * 65
    assert doc["request"]["inputs"]["x"]["shape"] == [2]


@pytest.mark.parametrize(
    ("name", "array", "values"),
    [
        ("floats", np.array([0.5, -1.0]), [0.5, -1.0]),
        ("non-finite", np.array([np.nan, np.inf, -np.inf]), ["NaN", "Infinity", "-Infinity"]),
        ("integers", np.array([1, 2], np.int64), [1, 2]),
        ("booleans", np.array([True, False]), [True, False]),
        ("strings", np.array(["yes", "no"]), ["yes", "no"]),
    ],
)
def test_output_values_are_plain_json(name: str, array: np.ndarray, values: list[object]) -> None:
    doc = egress_input(
        action="predict", user="a", instance=INSTANCE, queries=0, outputs={"y": array}
    )
    assert doc["response"]["outputs"]["y"]["values"] == values


def test_string_tensors_have_dtype_str() -> None:
    assert TensorMeta.of(np.array(["a"])).dtype == "str"


def test_negative_query_count_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        ingress_input(action="predict", user="a", instance=INSTANCE, queries=-1)


def test_context_defaults_to_an_empty_object() -> None:
    doc = ingress_input(action="predict", user="a", instance=INSTANCE, queries=0)
    assert doc["context"] == {}
    assert doc["model"] == {"digest": None}
    assert isinstance(doc["now_ns"], int)
