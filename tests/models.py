"""ONNX models for tests, built in memory with onnx.helper (nothing downloaded)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

W = np.array([[1.0, -1.0], [0.5, 2.0], [-3.0, 0.25]], dtype=np.float32)


def _finish(graph: onnx.GraphProto, opset: int = 17) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def mixed_model() -> bytes:
    """Four inputs and seven outputs of mixed dtypes, with dynamic batch dimensions."""
    graph = helper.make_graph(
        nodes=[
            helper.make_node("MatMul", ["x", "W"], ["y"]),
            helper.make_node("Add", ["ids", "one"], ["ids_plus_one"]),
            helper.make_node("Not", ["mask"], ["not_mask"]),
            helper.make_node("Cast", ["x"], ["x_half"], to=TensorProto.FLOAT16),
            helper.make_node("Cast", ["x"], ["x_double"], to=TensorProto.DOUBLE),
            helper.make_node("Cast", ["ids"], ["ids_u8"], to=TensorProto.UINT8),
            helper.make_node("Identity", ["label"], ["label_out"]),
        ],
        name="mixed",
        inputs=[
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, ["N"]),
            helper.make_tensor_value_info("label", TensorProto.STRING, ["N"]),
        ],
        outputs=[
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("ids_plus_one", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("not_mask", TensorProto.BOOL, ["N"]),
            helper.make_tensor_value_info("x_half", TensorProto.FLOAT16, ["N", 3]),
            helper.make_tensor_value_info("x_double", TensorProto.DOUBLE, ["N", 3]),
            helper.make_tensor_value_info("ids_u8", TensorProto.UINT8, ["N"]),
            helper.make_tensor_value_info("label_out", TensorProto.STRING, ["N"]),
        ],
        initializer=[
            numpy_helper.from_array(W, "W"),
            numpy_helper.from_array(np.array(1, dtype=np.int64), "one"),
        ],
    )
    return _finish(graph)


def matmul_model(weights: np.ndarray, name: str = "single") -> bytes:
    """x[N,k] float32 -> y[N,m] float32 = x @ weights, for float32 weights of shape (k, m)."""
    k, m = weights.shape
    graph = helper.make_graph(
        nodes=[helper.make_node("MatMul", ["x", "W"], ["y"])],
        name=name,
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", m])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    return _finish(graph)


def single_input_model() -> bytes:
    """x[N,3] float32 -> y[N,2] float32."""
    return matmul_model(W)


def mixed_inputs(n: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    return {
        "x": rng.standard_normal((n, 3)).astype(np.float32),
        "ids": rng.integers(0, 200, n).astype(np.int64),
        "mask": rng.integers(0, 2, n).astype(bool),
        "label": np.array([f"row-{i}-é" for i in range(n)], dtype=object),
    }


ALL_DTYPES = {
    "float16": TensorProto.FLOAT16,
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "int8": TensorProto.INT8,
    "int16": TensorProto.INT16,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "uint8": TensorProto.UINT8,
    "uint16": TensorProto.UINT16,
    "uint32": TensorProto.UINT32,
    "uint64": TensorProto.UINT64,
    "bool": TensorProto.BOOL,
    "str": TensorProto.STRING,
}


def identity_model() -> bytes:
    """One Identity per tensor type ONNX Runtime supports on the CPU: in_<t> -> out_<t>."""
    graph = helper.make_graph(
        nodes=[helper.make_node("Identity", [f"in_{t}"], [f"out_{t}"]) for t in ALL_DTYPES],
        name="identity",
        inputs=[
            helper.make_tensor_value_info(f"in_{t}", p, ["N", 2]) for t, p in ALL_DTYPES.items()
        ],
        outputs=[
            helper.make_tensor_value_info(f"out_{t}", p, ["N", 2]) for t, p in ALL_DTYPES.items()
        ],
    )
    return _finish(graph)


def identity_inputs() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in ALL_DTYPES:
        if name == "str":
            out["in_str"] = np.array([["a", "bé"], ["", "x" * 40]], dtype=object)
        elif name == "bool":
            out["in_bool"] = np.array([[True, False], [False, True]])
        else:
            info = np.finfo(name) if name.startswith("float") else np.iinfo(name)
            out[f"in_{name}"] = np.array([[info.min, info.max], [0, 1]], dtype=name)
    return out
