"""Hostile-model checks for TFLite flatbuffers, run before LiteRT sees the bytes.

The model is read with the FlatBuffers reader generated from LiteRT's own
``schema.fbs`` (shipped as ``ai_edge_litert.schema_py_generated``), which is
pure Python: a malformed offset raises here instead of in native code. We
refuse, with :class:`~cleanroom.errors.ModelRejected`:

* a buffer without the ``TFL3`` file identifier or with a schema ``version``
  other than 3;
* ``CUSTOM`` operators (``OperatorCode.custom_code``) and builtin codes this
  schema does not know: custom kernels are code the model would need us to
  load, which the clean room never does;
* operator, tensor and buffer indices out of range, and buffers whose
  ``offset``/``size`` (models over 2 GiB) point outside the file;
* declared tensor sizes beyond the memory limit, and element types that
  cannot cross the sandbox boundary.
"""

from __future__ import annotations

import math
import struct

from cleanroom.errors import ModelRejected
from cleanroom.runtime.base import ModelSignature, RuntimeLimits, TensorSpec

_SCHEMA_VERSION = 3  # schema.fbs: "Version of the schema", currently 3.
_FILE_IDENTIFIER = b"TFL3"
_CUSTOM = 32  # BuiltinOperator.CUSTOM

# TensorType -> (signature dtype name, bytes per element); schema.fbs enum TensorType.
_TENSOR_TYPES: dict[int, tuple[str, int]] = {
    0: ("float32", 4),
    1: ("float16", 2),
    2: ("int32", 4),
    3: ("uint8", 1),
    4: ("int64", 8),
    5: ("str", 1),
    6: ("bool", 1),
    7: ("int16", 2),
    8: ("complex64", 8),
    9: ("int8", 1),
    10: ("float64", 8),
    11: ("complex128", 16),
    12: ("uint64", 8),
    15: ("uint32", 4),
    16: ("uint16", 2),
}
# Types LiteRT may hold inside a graph but that we do not pass in or out.
_INTERNAL_TYPES = frozenset({13, 14, 17, 18, 19, 20, 21, 22})


def _known_builtins() -> frozenset[int]:
    from ai_edge_litert import schema_py_generated as schema

    ops = schema.BuiltinOperator
    return frozenset(v for k, v in vars(ops).items() if k.isupper() and isinstance(v, int))


def _dims(tensor: object) -> list[int]:
    shape: list[int] = tensor.ShapeAsNumpy().tolist() if tensor.ShapeLength() else []  # type: ignore[attr-defined]
    return [int(d) for d in shape]


def _signature_dims(tensor: object) -> tuple[int | None, ...]:
    if tensor.ShapeSignatureLength():  # type: ignore[attr-defined]
        sig = [int(d) for d in tensor.ShapeSignatureAsNumpy().tolist()]  # type: ignore[attr-defined]
        return tuple(None if d < 0 else d for d in sig)
    return tuple(_dims(tensor))


def _io_spec(subgraph: object, index: int, where: str) -> TensorSpec:
    if not 0 <= index < subgraph.TensorsLength():  # type: ignore[attr-defined]
        raise ModelRejected(f"{where} refers to tensor {index}, which does not exist")
    tensor = subgraph.Tensors(index)  # type: ignore[attr-defined]
    kind = int(tensor.Type())
    if kind not in _TENSOR_TYPES:
        raise ModelRejected(f"{where} has tensor type {kind}, which is not supported")
    name = (tensor.Name() or b"").decode("utf-8", "replace")
    return TensorSpec(name=name, dtype=_TENSOR_TYPES[kind][0], shape=_signature_dims(tensor))


def _check_operator_codes(model: object) -> None:
    known = _known_builtins()
    for i in range(model.OperatorCodesLength()):  # type: ignore[attr-defined]
        code = model.OperatorCodes(i)  # type: ignore[attr-defined]
        # schema.fbs, OperatorCode: builtin_code = max(builtin_code, deprecated_builtin_code).
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        if builtin == _CUSTOM:
            custom = (code.CustomCode() or b"").decode("utf-8", "replace")[:64]
            raise ModelRejected(f"custom operator {custom!r} is not allowed")
        if builtin not in known:
            raise ModelRejected(f"builtin operator code {builtin} is unknown to this runtime")


def _check_buffers(model: object, file_size: int, limits: RuntimeLimits) -> int:
    count = int(model.BuffersLength())  # type: ignore[attr-defined]
    for i in range(count):
        buffer = model.Buffers(i)  # type: ignore[attr-defined]
        offset, size = int(buffer.Offset()), int(buffer.Size())
        # schema.fbs, Buffer: offset > 1 means the data lives outside the flatbuffer.
        if offset > 1 and (offset + size > file_size):
            raise ModelRejected(f"buffer {i} points outside the model file")
        if buffer.DataLength() > limits.max_model_bytes:
            raise ModelRejected(f"buffer {i} is over the model size limit")
    return count


def _check_subgraph(
    sub: object, index: int, n_ops: int, n_buffers: int, limits: RuntimeLimits
) -> None:
    where = f"subgraph {index}"
    n_tensors = int(sub.TensorsLength())  # type: ignore[attr-defined]
    for t in range(n_tensors):
        tensor = sub.Tensors(t)  # type: ignore[attr-defined]
        kind = int(tensor.Type())
        if kind not in _TENSOR_TYPES and kind not in _INTERNAL_TYPES:
            raise ModelRejected(f"{where} tensor {t} has unknown type {kind}")
        dims = _dims(tensor)
        if any(d < 0 for d in dims):
            raise ModelRejected(f"{where} tensor {t} declares a negative dimension")
        itemsize = _TENSOR_TYPES.get(kind, ("", 1))[1]
        if math.prod(dims) * itemsize > limits.memory_bytes:
            raise ModelRejected(f"{where} tensor {t} declares more bytes than the memory limit")
        if not 0 <= int(tensor.Buffer()) < max(n_buffers, 1):
            raise ModelRejected(f"{where} tensor {t} refers to a missing buffer")
    for o in range(sub.OperatorsLength()):  # type: ignore[attr-defined]
        op = sub.Operators(o)  # type: ignore[attr-defined]
        if not 0 <= int(op.OpcodeIndex()) < n_ops:
            raise ModelRejected(f"{where} operator {o} refers to a missing operator code")
        for k in list(op.InputsAsNumpy() if op.InputsLength() else []) + list(
            op.OutputsAsNumpy() if op.OutputsLength() else []
        ):
            if not -1 <= int(k) < n_tensors:  # -1 marks an omitted optional input
                raise ModelRejected(f"{where} operator {o} refers to a missing tensor")


def validate_tflite(model: bytes | bytearray | memoryview, limits: RuntimeLimits) -> ModelSignature:
    """Check a TFLite model before loading; return its signature or raise ModelRejected."""
    data = bytes(model) if not isinstance(model, bytes) else model
    if len(data) > limits.max_model_bytes:
        raise ModelRejected(
            f"the model has {len(data)} bytes, over the limit of {limits.max_model_bytes}"
        )
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise ModelRejected("the bytes are not a TFLite model (no TFL3 file identifier)")
    from ai_edge_litert import schema_py_generated as schema

    try:
        root = schema.Model.GetRootAs(data, 0)
        if int(root.Version()) != _SCHEMA_VERSION:
            raise ModelRejected(f"TFLite schema version {root.Version()} is not supported")
        _check_operator_codes(root)
        n_buffers = _check_buffers(root, len(data), limits)
        n_ops = int(root.OperatorCodesLength())
        if root.SubgraphsLength() < 1:
            raise ModelRejected("the model has no subgraph")
        for s in range(root.SubgraphsLength()):
            _check_subgraph(root.Subgraphs(s), s, n_ops, n_buffers, limits)
        main = root.Subgraphs(0)
        inputs = tuple(
            _io_spec(main, int(i), "input")
            for i in (main.InputsAsNumpy() if main.InputsLength() else [])
        )
        outputs = tuple(
            _io_spec(main, int(i), "output")
            for i in (main.OutputsAsNumpy() if main.OutputsLength() else [])
        )
    except ModelRejected:
        raise
    except (IndexError, struct.error, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise ModelRejected("the TFLite flatbuffer is malformed") from exc
    if not outputs:
        raise ModelRejected("the model declares no outputs")
    names = [spec.name for spec in inputs + outputs]
    if len(set(names)) != len(names):
        raise ModelRejected("input and output tensor names must be unique")
    return ModelSignature(inputs=inputs, outputs=outputs)
