"""Generate every model fixture under tests/assets/models/.

Run from the repository root:  PYTHONPATH=src .venv/bin/python scripts/make_test_models.py

Everything is built from scratch: ONNX graphs with ``onnx.helper``, TFLite
flatbuffers with ``flatbuffers`` and the object API generated from LiteRT's
``schema.fbs`` (``ai_edge_litert.schema_py_generated``). Nothing is
downloaded. Output is deterministic, so re-running leaves git clean.

Fixtures named ``hostile_*`` must be refused (or stopped) by the runtime;
each name says what it tries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import flatbuffers
import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as tfl
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parents[1] / "tests" / "assets" / "models"
IR_VERSION = 10  # onnxruntime 1.31 accepts IR versions up to 13
OPSET = 21

FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64


def _model(graph: onnx.GraphProto, opsets: dict[str, int] | None = None, **kw: object) -> bytes:
    imports = [helper.make_opsetid(d, v) for d, v in (opsets or {"": OPSET}).items()]
    model = helper.make_model(graph, opset_imports=imports, producer_name="cleanroom-tests", **kw)
    model.ir_version = int(kw.get("ir_version", IR_VERSION))  # type: ignore[call-overload]
    return model.SerializeToString(deterministic=True)


# ---------------------------------------------------------------- ONNX, benign


def onnx_mixed_io() -> bytes:
    """Three inputs, three outputs, three dtypes: y = (x @ W + B) * scale; ids + 1; y > 0."""
    rng = np.random.default_rng(4)
    weights = rng.standard_normal((4, 2)).astype(np.float32)
    bias = np.array([0.5, -0.25], dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "B"], ["xwb"]),
        helper.make_node("Mul", ["xwb", "scale"], ["y"]),
        helper.make_node("Add", ["ids", "one"], ["ids_next"]),
        helper.make_node("Greater", ["y", "zero"], ["positive"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mixed_io",
        inputs=[
            helper.make_tensor_value_info("x", FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("scale", FLOAT, [1]),
            helper.make_tensor_value_info("ids", INT64, ["batch"]),
        ],
        outputs=[
            helper.make_tensor_value_info("y", FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("ids_next", INT64, ["batch"]),
            helper.make_tensor_value_info("positive", TensorProto.BOOL, ["batch", 2]),
        ],
        initializer=[
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(bias, "B"),
            numpy_helper.from_array(np.array(1, dtype=np.int64), "one"),
            numpy_helper.from_array(np.array(0, dtype=np.float32), "zero"),
        ],
    )
    return _model(graph)


def onnx_string_identity() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["words"], ["same"])],
        "string_identity",
        inputs=[helper.make_tensor_value_info("words", TensorProto.STRING, ["n"])],
        outputs=[helper.make_tensor_value_info("same", TensorProto.STRING, ["n"])],
    )
    return _model(graph)


def onnx_memory_bomb() -> bytes:
    """ConstantOfShape(shape): the caller chooses how much the model allocates at run time."""
    graph = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["shape"], ["filled"])],
        "memory_bomb",
        inputs=[helper.make_tensor_value_info("shape", INT64, [2])],
        outputs=[helper.make_tensor_value_info("filled", FLOAT, [None, None])],
    )
    return _model(graph)


def onnx_infinite_loop() -> bytes:
    """A Loop whose trip count is INT64_MAX and whose condition stays true."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["v_in", "step"], ["v_out"]),
        ],
        "body",
        inputs=[
            helper.make_tensor_value_info("i", INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", FLOAT, [1]),
        ],
        outputs=[
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", FLOAT, [1]),
        ],
        initializer=[numpy_helper.from_array(np.array([1.0], dtype=np.float32), "step")],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "keep_going", "x"], ["y"], body=body)],
        "infinite_loop",
        inputs=[helper.make_tensor_value_info("x", FLOAT, [1])],
        outputs=[helper.make_tensor_value_info("y", FLOAT, [1])],
        initializer=[
            numpy_helper.from_array(np.array(np.iinfo(np.int64).max, dtype=np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "keep_going"),
        ],
    )
    return _model(graph)


# ---------------------------------------------------------------- ONNX, hostile


def _external(name: str, location: str) -> TensorProto:
    tensor = TensorProto()
    tensor.name = name
    tensor.data_type = FLOAT
    tensor.dims.extend([4, 2])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "32")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _matmul_graph(weights: TensorProto, name: str) -> onnx.GraphProto:
    return helper.make_graph(
        [helper.make_node("MatMul", ["x", weights.name], ["y"])],
        name,
        inputs=[helper.make_tensor_value_info("x", FLOAT, [1, 4])],
        outputs=[helper.make_tensor_value_info("y", FLOAT, [1, 2])],
        initializer=[weights],
    )


def hostile_external_data_etc_passwd() -> bytes:
    return _model(_matmul_graph(_external("W", "/etc/passwd"), "external_abs"))


def hostile_external_data_dotdot() -> bytes:
    return _model(_matmul_graph(_external("W", "../../x"), "external_rel"))


def hostile_external_data_in_subgraph() -> bytes:
    """The external reference hides in a Constant inside an If branch."""
    leak = helper.make_graph(
        [helper.make_node("Constant", [], ["w"], value=_external("w", "/etc/passwd"))],
        "then",
        inputs=[],
        outputs=[helper.make_tensor_value_info("w", FLOAT, [4, 2])],
    )
    plain = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["w2"], value=numpy_helper.from_array(np.zeros((4, 2), np.float32))
            )
        ],
        "else",
        inputs=[],
        outputs=[helper.make_tensor_value_info("w2", FLOAT, [4, 2])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=leak, else_branch=plain)],
        "external_sub",
        inputs=[helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        outputs=[helper.make_tensor_value_info("y", FLOAT, [4, 2])],
    )
    return _model(graph)


def hostile_custom_domain_op() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Exfiltrate", ["x"], ["y"], domain="com.example.evil")],
        "custom_op",
        inputs=[helper.make_tensor_value_info("x", FLOAT, [1, 4])],
        outputs=[helper.make_tensor_value_info("y", FLOAT, [1, 4])],
    )
    return _model(graph, {"": OPSET, "com.example.evil": 1})


def hostile_contrib_domain_op() -> bytes:
    """An operator from onnxruntime's non-standard com.microsoft domain."""
    graph = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")],
        "contrib_op",
        inputs=[helper.make_tensor_value_info("x", FLOAT, [1, 4])],
        outputs=[helper.make_tensor_value_info("y", FLOAT, [1, 4])],
    )
    return _model(graph, {"": OPSET, "com.microsoft": 1})


def _relu_graph(name: str) -> onnx.GraphProto:
    return helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        name,
        inputs=[helper.make_tensor_value_info("x", FLOAT, [1, 4])],
        outputs=[helper.make_tensor_value_info("y", FLOAT, [1, 4])],
    )


def hostile_unknown_opset() -> bytes:
    return _model(_relu_graph("future_opset"), {"": 999})


def hostile_unknown_ir_version() -> bytes:
    return _model(_relu_graph("future_ir"), ir_version=99)


def hostile_huge_declared_input() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "huge_input",
        inputs=[helper.make_tensor_value_info("x", FLOAT, [1 << 20, 1 << 20, 1024])],
        outputs=[helper.make_tensor_value_info("y", FLOAT, [None, None, None])],
    )
    return _model(graph)


def hostile_huge_initializer_dims() -> bytes:
    """Declares 2^40 floats of weights but carries 16 bytes."""
    weights = TensorProto()
    weights.name = "W"
    weights.data_type = FLOAT
    weights.dims.extend([1 << 40])
    weights.raw_data = bytes(16)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "W"], ["y"])],
        "huge_initializer",
        inputs=[helper.make_tensor_value_info("x", FLOAT, [1])],
        outputs=[helper.make_tensor_value_info("y", FLOAT, [None])],
        initializer=[weights],
    )
    return _model(graph)


def hostile_checker_fails() -> bytes:
    """A node reads a tensor nothing produces."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "nowhere"], ["y"])],
        "dangling",
        inputs=[helper.make_tensor_value_info("x", FLOAT, [1, 4])],
        outputs=[helper.make_tensor_value_info("y", FLOAT, [1, 4])],
    )
    return _model(graph)


def hostile_not_a_model() -> bytes:
    return b"\xff\xfe this is not a protocol buffer " * 8


# ---------------------------------------------------------------- TFLite


def _tfl_tensor(name: str, shape: list[int], kind: int, buffer: int) -> tfl.TensorT:
    tensor = tfl.TensorT()
    tensor.name = name
    tensor.shape = list(shape)
    tensor.type = kind
    tensor.buffer = buffer
    return tensor


def _tfl_opcode(code: int, custom: str | None = None) -> tfl.OperatorCodeT:
    opcode = tfl.OperatorCodeT()
    opcode.builtinCode = code
    opcode.deprecatedBuiltinCode = min(code, 127)
    opcode.version = 1
    if custom is not None:
        opcode.customCode = custom
    return opcode


def _tfl_op(opcode_index: int, inputs: list[int], outputs: list[int]) -> tfl.OperatorT:
    op = tfl.OperatorT()
    op.opcodeIndex = opcode_index
    op.inputs = inputs
    op.outputs = outputs
    return op


def _tfl_buffer(data: bytes = b"") -> tfl.BufferT:
    buffer = tfl.BufferT()
    if data:
        buffer.data = list(data)
    return buffer


def _tfl_pack(
    tensors: list[tfl.TensorT],
    ops: list[tfl.OperatorT],
    opcodes: list[tfl.OperatorCodeT],
    buffers: list[tfl.BufferT],
    inputs: list[int],
    outputs: list[int],
) -> bytes:
    subgraph = tfl.SubGraphT()
    subgraph.tensors = tensors
    subgraph.operators = ops
    subgraph.inputs = inputs
    subgraph.outputs = outputs
    subgraph.name = "main"
    model = tfl.ModelT()
    model.version = 3
    model.description = "cleanroom test model"
    model.operatorCodes = opcodes
    model.subgraphs = [subgraph]
    model.buffers = buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


F32, I32 = tfl.TensorType.FLOAT32, tfl.TensorType.INT32
OP = tfl.BuiltinOperator


def tflite_add_mul() -> bytes:
    """sum = a + b and prod = a * b, on [1, 4] float32."""
    tensors = [
        _tfl_tensor("a", [1, 4], F32, 1),
        _tfl_tensor("b", [1, 4], F32, 2),
        _tfl_tensor("sum", [1, 4], F32, 3),
        _tfl_tensor("prod", [1, 4], F32, 4),
    ]
    ops = [_tfl_op(0, [0, 1], [2]), _tfl_op(1, [0, 1], [3])]
    opcodes = [_tfl_opcode(OP.ADD), _tfl_opcode(OP.MUL)]
    buffers = [_tfl_buffer() for _ in range(5)]  # buffer 0 is the empty sentinel
    return _tfl_pack(tensors, ops, opcodes, buffers, [0, 1], [2, 3])


def tflite_dense_cast() -> bytes:
    """y = FULLY_CONNECTED(x, W, B) on [1, 3] -> [1, 2]; y_int = CAST(y) to int32."""
    weights = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]], dtype=np.float32)
    bias = np.array([0.1, -0.2], dtype=np.float32)
    tensors = [
        _tfl_tensor("x", [1, 3], F32, 1),
        _tfl_tensor("W", [2, 3], F32, 2),
        _tfl_tensor("B", [2], F32, 3),
        _tfl_tensor("y", [1, 2], F32, 4),
        _tfl_tensor("y_int", [1, 2], I32, 5),
    ]
    ops = [_tfl_op(0, [0, 1, 2], [3]), _tfl_op(1, [3], [4])]
    opcodes = [_tfl_opcode(OP.FULLY_CONNECTED), _tfl_opcode(OP.CAST)]
    buffers = [
        _tfl_buffer(),
        _tfl_buffer(),
        _tfl_buffer(weights.tobytes()),
        _tfl_buffer(bias.tobytes()),
        _tfl_buffer(),
        _tfl_buffer(),
    ]
    return _tfl_pack(tensors, ops, opcodes, buffers, [0], [3, 4])


def _tfl_one_op(opcode: tfl.OperatorCodeT, shape: list[int] | None = None) -> bytes:
    shape = shape or [1, 4]
    tensors = [_tfl_tensor("x", shape, F32, 1), _tfl_tensor("y", shape, F32, 2)]
    return _tfl_pack(
        tensors, [_tfl_op(0, [0], [1])], [opcode], [_tfl_buffer() for _ in range(3)], [0], [1]
    )


def hostile_tflite_custom_op() -> bytes:
    return _tfl_one_op(_tfl_opcode(OP.CUSTOM, custom="Exfiltrate"))


def hostile_tflite_unknown_builtin() -> bytes:
    return _tfl_one_op(_tfl_opcode(4000))


def hostile_tflite_huge_declared_tensor() -> bytes:
    return _tfl_one_op(_tfl_opcode(OP.RELU), shape=[1 << 20, 1 << 20, 1024])


def hostile_tflite_bad_tensor_index() -> bytes:
    tensors = [_tfl_tensor("x", [1, 4], F32, 1), _tfl_tensor("y", [1, 4], F32, 2)]
    ops = [_tfl_op(0, [99], [1])]
    return _tfl_pack(
        tensors, ops, [_tfl_opcode(OP.RELU)], [_tfl_buffer() for _ in range(3)], [0], [1]
    )


def hostile_tflite_buffer_outside_file() -> bytes:
    tensors = [_tfl_tensor("x", [1, 4], F32, 1), _tfl_tensor("y", [1, 4], F32, 2)]
    far = _tfl_buffer()
    far.offset = 1 << 40
    far.size = 16
    buffers = [_tfl_buffer(), far, _tfl_buffer()]
    return _tfl_pack(tensors, [_tfl_op(0, [0], [1])], [_tfl_opcode(OP.RELU)], buffers, [0], [1])


def hostile_tflite_bad_identifier() -> bytes:
    data = bytearray(tflite_add_mul())
    data[4:8] = b"XXXX"
    return bytes(data)


def hostile_tflite_truncated() -> bytes:
    data = tflite_add_mul()
    return data[: len(data) // 3]


FIXTURES: dict[str, Callable[[], bytes]] = {
    "mixed_io.onnx": onnx_mixed_io,
    "string_identity.onnx": onnx_string_identity,
    "hostile_memory_bomb.onnx": onnx_memory_bomb,
    "hostile_infinite_loop.onnx": onnx_infinite_loop,
    "hostile_external_data_etc_passwd.onnx": hostile_external_data_etc_passwd,
    "hostile_external_data_dotdot.onnx": hostile_external_data_dotdot,
    "hostile_external_data_in_subgraph.onnx": hostile_external_data_in_subgraph,
    "hostile_custom_domain_op.onnx": hostile_custom_domain_op,
    "hostile_contrib_domain_op.onnx": hostile_contrib_domain_op,
    "hostile_unknown_opset.onnx": hostile_unknown_opset,
    "hostile_unknown_ir_version.onnx": hostile_unknown_ir_version,
    "hostile_huge_declared_input.onnx": hostile_huge_declared_input,
    "hostile_huge_initializer_dims.onnx": hostile_huge_initializer_dims,
    "hostile_checker_fails.onnx": hostile_checker_fails,
    "hostile_not_a_model.onnx": hostile_not_a_model,
    "add_mul.tflite": tflite_add_mul,
    "dense_cast.tflite": tflite_dense_cast,
    "hostile_custom_op.tflite": hostile_tflite_custom_op,
    "hostile_unknown_builtin.tflite": hostile_tflite_unknown_builtin,
    "hostile_huge_declared_tensor.tflite": hostile_tflite_huge_declared_tensor,
    "hostile_bad_tensor_index.tflite": hostile_tflite_bad_tensor_index,
    "hostile_buffer_outside_file.tflite": hostile_tflite_buffer_outside_file,
    "hostile_bad_identifier.tflite": hostile_tflite_bad_identifier,
    "hostile_truncated.tflite": hostile_tflite_truncated,
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in FIXTURES.items():
        (OUT / name).write_bytes(build())
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
