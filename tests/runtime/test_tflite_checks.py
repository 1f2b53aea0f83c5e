"""Hostile TFLite models are refused before LiteRT sees them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from cleanroom.errors import ModelRejected
from cleanroom.runtime import validate_model
from cleanroom.runtime.base import RuntimeLimits, TensorSpec
from cleanroom.wire.formats import ModelFormat


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("hostile_custom_op.tflite", "custom operator 'Exfiltrate'"),
        ("hostile_unknown_builtin.tflite", "operator code 4000"),
        ("hostile_huge_declared_tensor.tflite", "more bytes than the memory limit"),
        ("hostile_bad_tensor_index.tflite", "missing tensor"),
        ("hostile_buffer_outside_file.tflite", "outside the model file"),
        ("hostile_bad_identifier.tflite", "no TFL3 file identifier"),
        ("hostile_truncated.tflite", "malformed"),
        ("mixed_io.onnx", "not a TFLite model"),
    ],
)
def test_hostile_corpus_is_refused(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits, fixture: str, expected: str
) -> None:
    with pytest.raises(ModelRejected) as info:
        validate_model(ModelFormat.TFLITE, model_bytes(fixture), limits)
    assert expected in str(info.value)


def test_benign_models_give_their_signatures(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    add_mul = validate_model(ModelFormat.TFLITE, model_bytes("add_mul.tflite"), limits)
    assert add_mul.inputs == (
        TensorSpec("a", "float32", (1, 4)),
        TensorSpec("b", "float32", (1, 4)),
    )
    dense = validate_model(ModelFormat.TFLITE, model_bytes("dense_cast.tflite"), limits)
    assert [(s.name, s.dtype) for s in dense.outputs] == [("y", "float32"), ("y_int", "int32")]


def _flip_version(data: bytearray) -> None:
    # Model.version is the first scalar the builder wrote; find it via the reader.
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(bytes(data), 0)
    offset = root._tab.Offset(4)  # vtable slot of field 0, "version"
    position = root._tab.Pos + offset
    data[position : position + 4] = (7).to_bytes(4, "little")


@pytest.mark.parametrize(
    ("name", "mutation", "expected"),
    [
        ("schema version 7", _flip_version, "schema version 7"),
        ("empty file", lambda d: d.clear(), "not a TFLite model"),
    ],
)
def test_mutations_are_refused(
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    name: str,
    mutation: Callable[[bytearray], None],
    expected: str,
) -> None:
    data = bytearray(model_bytes("add_mul.tflite"))
    mutation(data)
    with pytest.raises(ModelRejected) as info:
        validate_model(ModelFormat.TFLITE, bytes(data), limits)
    assert expected in str(info.value), name


def test_model_over_the_size_limit_is_refused(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    with pytest.raises(ModelRejected, match="over the limit"):
        validate_model(
            ModelFormat.TFLITE,
            model_bytes("add_mul.tflite"),
            replace(limits, max_model_bytes=64),
        )
