"""The two models of the pipeline example, built in memory with onnx.helper.

``features``: twelve months of net cash flows per applicant -> three derived
features (mean monthly flow, worst month, total outflow). ``scoring``: the
three features -> a default probability (logistic regression).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MONTHS = 12
WEIGHTS = np.array([[-0.004], [0.002], [0.0005]], dtype=np.float32)
BIAS = np.array([0.3], dtype=np.float32)


def _finish(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def feature_model() -> bytes:
    """cashflows[N,12] float32 -> features[N,3] float32."""
    graph = helper.make_graph(
        nodes=[
            helper.make_node("ReduceMean", ["cashflows"], ["mean"], axes=[1], keepdims=1),
            helper.make_node("ReduceMin", ["cashflows"], ["worst"], axes=[1], keepdims=1),
            helper.make_node("Min", ["cashflows", "zero"], ["outflows"]),
            helper.make_node("ReduceSum", ["outflows", "axis"], ["outflow"], keepdims=1),
            helper.make_node("Concat", ["mean", "worst", "outflow"], ["features"], axis=1),
        ],
        name="features",
        inputs=[helper.make_tensor_value_info("cashflows", TensorProto.FLOAT, ["N", MONTHS])],
        outputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])],
        initializer=[
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis"),
        ],
    )
    return _finish(graph)


def scoring_model() -> bytes:
    """features[N,3] float32 -> score[N,1] float32 (probability of default)."""
    graph = helper.make_graph(
        nodes=[
            helper.make_node("MatMul", ["features", "W"], ["logit_w"]),
            helper.make_node("Add", ["logit_w", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["score"]),
        ],
        name="scoring",
        inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])],
        outputs=[helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    return _finish(graph)


def sample_cashflows(rows: int = 4, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(200.0, 400.0, size=(rows, MONTHS)).astype(np.float32)
