"""What the egress and ingress documents say about tensors, value by value.

- The request's tensors are described by metadata only, in the egress
  document as in the ingress one: a policy has no business reading a data
  owner's inputs, even when the input is as small as an output whose values
  are shown.
- Output values keep their JSON type: a boolean output is ``true``/``false``
  (in Rego ``true == 1`` is false), bytes are text, and unsigned integers
  beyond int64 are shown as the nearest float rather than making the
  document one the engine refuses.
- Tensor names are strings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tests.policy.documents import INSTANCE

from cleanroom.errors import InvalidRequest
from cleanroom.policy import PolicyBundle, egress_input, ingress_input

SMALL_INPUT = {"features": np.array([0.25, 0.5], dtype=np.float32)}


def _egress(outputs: dict[str, Any], **changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "action": "predict",
        "user": "user@example.com",
        "instance": INSTANCE,
        "queries": 0,
        "outputs": outputs,
        "inputs": SMALL_INPUT,
        "now_ns": 1,
    }
    args.update(changes)
    return egress_input(**args)


def test_the_egress_document_never_carries_input_values() -> None:
    doc = _egress({"score": np.array([0.5])})
    assert doc["request"]["inputs"] == {"features": {"dtype": "float32", "shape": [2], "nbytes": 8}}
    assert doc["response"]["outputs"]["score"]["values"] == [0.5]


@pytest.mark.parametrize(
    ("array", "values"),
    [
        (np.array([True, False]), [True, False]),
        (np.array([b"yes", b"\xff"]), ["yes", "\ufffd"]),
        (np.array([2**63 - 1, 2**63, 2**64 - 1], dtype=np.uint64), [2**63 - 1, 2.0**63, 2.0**64]),
        (np.array([-(2**63)], dtype=np.int64), [-(2**63)]),
    ],
    ids=["booleans", "bytes", "uint64 beyond int64", "smallest int64"],
)
def test_output_values_keep_their_json_type(array: np.ndarray, values: list[Any]) -> None:
    shown = _egress({"y": array})["response"]["outputs"]["y"]["values"]
    assert shown == values
    assert [type(v) for v in shown] == [type(v) for v in values]


POLICY = """package cleanroom
allow_egress if {
  input.response.outputs.flag.values == [true, false]
  input.response.outputs.big.values[0] > 9000000000000000000
  input.response.outputs.word.values == ["yes"]
}
"""


def test_a_policy_reads_the_values_as_their_types() -> None:
    bundle = PolicyBundle.compile(POLICY)
    outputs = {
        "flag": np.array([True, False]),
        "big": np.array([2**64 - 1], dtype=np.uint64),
        "word": np.array([b"yes"]),
    }
    decision = bundle.evaluate_egress(_egress(outputs))
    assert (decision.allowed, decision.evaluation_error) == (True, False)


@pytest.mark.parametrize("name", [1, None, ("a",)], ids=["int", "None", "tuple"])
def test_tensor_names_are_strings(name: Any) -> None:
    with pytest.raises(InvalidRequest, match="tensor names must be strings"):
        ingress_input(
            action="predict", user="u", instance=INSTANCE, queries=0, inputs={name: np.zeros(1)}
        )
    with pytest.raises(InvalidRequest, match="tensor names must be strings"):
        _egress({name: np.zeros(1)})
