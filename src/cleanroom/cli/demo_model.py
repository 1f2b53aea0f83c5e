"""The small real model the demo runs: a logistic loan-scoring model in ONNX."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["FEATURES", "loan_scoring_model"]

FEATURES = ("monthly_inflow_k", "monthly_outflow_k", "average_balance_k", "missed_payments")
_WEIGHTS = np.array([[0.9], [-1.1], [0.6], [-1.5]], dtype=np.float32)
_BIAS = np.array([0.2], dtype=np.float32)


def loan_scoring_model() -> bytes:
    """features[N,4] float32 -> score[N,1] float32 (sigmoid), approved[N,1] bool."""
    graph = helper.make_graph(
        nodes=[
            helper.make_node("MatMul", ["features", "W"], ["logit0"]),
            helper.make_node("Add", ["logit0", "B"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["score"]),
            helper.make_node("Greater", ["score", "threshold"], ["approved"]),
        ],
        name="LoanScoring",
        inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4])],
        outputs=[
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("approved", TensorProto.BOOL, ["N", 1]),
        ],
        initializer=[
            numpy_helper.from_array(_WEIGHTS, "W"),
            numpy_helper.from_array(_BIAS, "B"),
            numpy_helper.from_array(np.array(0.5, dtype=np.float32), "threshold"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    serialized: bytes = model.SerializeToString()
    return serialized
