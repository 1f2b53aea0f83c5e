"""What every variant is asked to compute: one 224x224 RGB image, batch 1, float32."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from benchmarks.inference.architectures import CLASSES, INPUT_NAME, INPUT_SHAPE, OUTPUT_NAME
from onnx import TensorProto, helper, numpy_helper

__all__ = ["example_input", "pooling_head_model"]


def example_input(seed: int = 1) -> npt.NDArray[np.float32]:
    """602,112 bytes of float32, the same in every process."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(INPUT_SHAPE, dtype=np.float32)


def pooling_head_model(seed: int = 0) -> bytes:
    """A model that reads the whole 600 KB input but computes next to nothing.

    Global average pooling and a 3 x 1000 dense layer: the service's fixed
    cost per request (open, policies, worker hand-off, seal, log) is what is
    left when this model's own run time is subtracted.
    """
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((CLASSES, 3), dtype=np.float32), "w")
    b = numpy_helper.from_array(np.zeros(CLASSES, np.float32), "b")
    nodes = [
        helper.make_node("GlobalAveragePool", [INPUT_NAME], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w", "b"], [OUTPUT_NAME], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "pooling_head",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(INPUT_SHAPE))],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, CLASSES])],
        [w, b],
    )
    model: onnx.ModelProto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="benchmarks"
    )
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data


def feed(x: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
    return {INPUT_NAME: x}
