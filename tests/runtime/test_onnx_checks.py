"""Hostile ONNX models are refused before any runtime sees them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from cleanroom.errors import ModelRejected
from cleanroom.runtime import load_model, validate_model
from cleanroom.runtime.base import RuntimeLimits, TensorSpec
from cleanroom.wire.formats import ModelFormat


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("hostile_external_data_etc_passwd.onnx", "refers to external data"),
        ("hostile_external_data_dotdot.onnx", "refers to external data"),
        ("hostile_external_data_in_subgraph.onnx", "'then_branch' subgraph"),
        ("hostile_custom_domain_op.onnx", "custom operator domain 'com.example.evil'"),
        ("hostile_contrib_domain_op.onnx", "custom operator domain 'com.microsoft'"),
        ("hostile_unknown_opset.onnx", "opset 999"),
        ("hostile_unknown_ir_version.onnx", "IR version 99"),
        ("hostile_huge_declared_input.onnx", "larger than the memory limit"),
        ("hostile_huge_initializer_dims.onnx", "over the model size limit"),
        ("hostile_checker_fails.onnx", "ONNX checker refused"),
        ("hostile_not_a_model.onnx", "not an ONNX model"),
    ],
)
def test_hostile_corpus_is_refused(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits, fixture: str, expected: str
) -> None:
    with pytest.raises(ModelRejected) as info:
        validate_model(ModelFormat.ONNX, model_bytes(fixture), limits)
    assert expected in str(info.value)


def test_benign_model_gives_its_signature(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    signature = validate_model(ModelFormat.ONNX, model_bytes("mixed_io.onnx"), limits)
    assert signature.inputs == (
        TensorSpec("x", "float32", (None, 4)),
        TensorSpec("scale", "float32", (1,)),
        TensorSpec("ids", "int64", (None,)),
    )
    assert [s.dtype for s in signature.outputs] == ["float32", "int64", "bool"]


def test_memoryview_input_is_accepted(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    data = memoryview(bytearray(model_bytes("mixed_io.onnx")))
    assert validate_model(ModelFormat.ONNX, data, limits).outputs


def _load(model_bytes: Callable[[str], bytes]) -> onnx.ModelProto:
    return onnx.load_from_string(model_bytes("mixed_io.onnx"))


def _custom_node_without_opset(model: onnx.ModelProto) -> None:
    model.graph.node[0].domain = "org.example.custom"


def _external_sparse(model: onnx.ModelProto) -> None:
    sparse = model.graph.sparse_initializer.add()
    sparse.dims.extend([4])
    sparse.values.name = "sv"
    sparse.values.data_type = TensorProto.FLOAT
    sparse.values.dims.extend([1])
    sparse.values.data_location = TensorProto.EXTERNAL
    entry = sparse.values.external_data.add()
    entry.key, entry.value = "location", "/etc/shadow"


def _external_data_entry_only(model: onnx.ModelProto) -> None:
    # data_location left DEFAULT, but an external_data entry is present.
    entry = model.graph.initializer[0].external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"


def _raw_data_mismatch(model: onnx.ModelProto) -> None:
    model.graph.initializer[0].raw_data = b"\x00" * 3


def _negative_dim(model: onnx.ModelProto) -> None:
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = -4


def _training_info(model: onnx.ModelProto) -> None:
    model.training_info.add()


def _opset_zero(model: onnx.ModelProto) -> None:
    model.opset_import[0].version = 0


def _non_tensor_input(model: onnx.ModelProto) -> None:
    model.graph.input[0].type.sequence_type.elem_type.tensor_type.elem_type = 1


def _with_local_function(model: onnx.ModelProto, body: onnx.NodeProto) -> None:
    """Route y through a model-local function Twice(y) whose body is *body*."""
    function = onnx.helper.make_function(
        "org.example.local",
        "Twice",
        ["a"],
        ["b"],
        [body],
        [onnx.helper.make_opsetid("", 21), onnx.helper.make_opsetid("com.example.evil", 1)]
        if body.domain
        else [onnx.helper.make_opsetid("", 21)],
    )
    model.functions.append(function)
    model.opset_import.append(onnx.helper.make_opsetid("org.example.local", 1))
    model.graph.node[2].output[0] = "y_inner"
    model.graph.node.insert(
        3, onnx.helper.make_node("Twice", ["y_inner"], ["y"], domain="org.example.local")
    )


def _custom_op_in_local_function(model: onnx.ModelProto) -> None:
    _with_local_function(
        model, onnx.helper.make_node("Exfiltrate", ["a"], ["b"], domain="com.example.evil")
    )


def test_model_local_functions_of_standard_operators_are_accepted(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    model = _load(model_bytes)
    _with_local_function(model, onnx.helper.make_node("Add", ["a", "a"], ["b"]))
    signature = validate_model(ModelFormat.ONNX, model.SerializeToString(), limits)
    assert [s.name for s in signature.outputs] == ["y", "ids_next", "positive"]
    inputs = {
        "x": np.ones((1, 4), np.float32),
        "scale": np.ones(1, np.float32),
        "ids": np.zeros(1, np.int64),
    }
    plain = load_model(ModelFormat.ONNX, model_bytes("mixed_io.onnx"), limits).run(inputs)
    doubled = load_model(ModelFormat.ONNX, model.SerializeToString(), limits).run(inputs)
    np.testing.assert_allclose(doubled["y"], 2 * plain["y"])


def _custom_op_in_a_subgraph(model: onnx.ModelProto) -> None:
    body = onnx.helper.make_graph(
        [onnx.helper.make_node("Exfiltrate", ["x"], ["y2"], domain="com.example.evil")],
        "branch",
        inputs=[],
        outputs=[onnx.helper.make_tensor_value_info("y2", TensorProto.FLOAT, [1])],
    )
    model.graph.node.append(
        onnx.helper.make_node("If", ["flag"], ["unused"], then_branch=body, else_branch=body)
    )


@pytest.mark.parametrize(
    ("name", "mutation", "expected"),
    [
        ("custom node without opset", _custom_node_without_opset, "custom domain"),
        (
            "custom op inside a local function",
            _custom_op_in_local_function,
            "custom operator domain 'com.example.evil'",
        ),
        ("custom op inside an If branch", _custom_op_in_a_subgraph, "custom domain"),
        ("external sparse initializer", _external_sparse, "external data"),
        ("external_data entry alone", _external_data_entry_only, "external data"),
        ("raw data shorter than dims", _raw_data_mismatch, "holds 3 bytes"),
        ("negative dimension", _negative_dim, "negative dimension"),
        ("training info", _training_info, "training information"),
        ("opset version 0", _opset_zero, "opset 0"),
        ("sequence input", _non_tensor_input, "not a tensor"),
    ],
)
def test_mutations_are_refused(
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    name: str,
    mutation: Callable[[onnx.ModelProto], None],
    expected: str,
) -> None:
    model = _load(model_bytes)
    mutation(model)
    with pytest.raises(ModelRejected) as info:
        validate_model(ModelFormat.ONNX, model.SerializeToString(), limits)
    assert expected in str(info.value), name


def test_model_over_the_size_limit_is_refused(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    limits = replace(limits, max_model_bytes=100)
    with pytest.raises(ModelRejected, match="over the limit of 100"):
        validate_model(ModelFormat.ONNX, model_bytes("mixed_io.onnx"), limits)


def test_validation_never_opens_the_referenced_file(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_open = open

    def spy(path: object, *args: object, **kwargs: object) -> object:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", spy)
    with pytest.raises(ModelRejected):
        validate_model(
            ModelFormat.ONNX, model_bytes("hostile_external_data_etc_passwd.onnx"), limits
        )
    assert not any("passwd" in p for p in opened)
