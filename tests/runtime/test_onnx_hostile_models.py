"""External data and shadowed functions, wherever a hostile ONNX model hides them.

Two shapes got past the checks and were confirmed against ONNX Runtime:

* a tensor attribute that also carries ``ref_attr_name`` was skipped, yet ONNX
  Runtime loads its external data (relative to the worker's working directory);
* a model-local function named like one of ONNX Runtime's own operators
  (``com.microsoft::Gelu``, ``Relu``) passed as a function, yet ONNX Runtime ran
  its built-in kernel instead of the body that was checked.

Each model below is refused both by ``validate_model`` and through the split
that the worker does (``load_model``); legitimate models keep loading.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from cleanroom.errors import ModelRejected
from cleanroom.runtime import load_model, validate_model
from cleanroom.runtime.base import RuntimeLimits
from cleanroom.runtime.onnx_checks import MAX_NESTING, validate_onnx
from cleanroom.runtime.onnx_split import WEIGHTS_LOCATION, split_onnx
from cleanroom.wire.formats import ModelFormat

OPSET = 17
LOCAL = "org.example.local"
SECRET = "etc/shadow"  # relative to the worker's working directory, "/"


def _external(name: str, location: str = SECRET, n: int = 4) -> TensorProto:
    """A uint8 tensor of *n* elements whose data is at *location*."""
    tensor = TensorProto()
    tensor.name = name
    tensor.data_type = TensorProto.UINT8
    tensor.dims.extend([n])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(n))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _tensor_attr(name: str, tensor: TensorProto, ref: str = "") -> AttributeProto:
    attr = AttributeProto()
    attr.name = name
    attr.type = AttributeProto.TENSOR
    attr.t.CopyFrom(tensor)
    if ref:
        attr.ref_attr_name = ref
    return attr


def _constant(output: str, attr: AttributeProto) -> onnx.NodeProto:
    node = helper.make_node("Constant", [], [output])
    node.attribute.append(attr)
    return node


def _uint8_out(name: str = "y", n: int = 4) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.UINT8, [n])


def _model(
    nodes: list[onnx.NodeProto],
    *,
    inputs: list[onnx.ValueInfoProto] | None = None,
    outputs: list[onnx.ValueInfoProto] | None = None,
    initializers: list[TensorProto] | None = None,
    functions: list[onnx.FunctionProto] | None = None,
    domains: tuple[str, ...] = (),
    ir_version: int = 9,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "hostile", inputs or [], outputs or [_uint8_out()], initializers or []
    )
    opsets = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(
        graph, opset_imports=opsets, ir_version=ir_version, functions=functions or []
    )


def _true(name: str = "cond") -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])
    )


def _branch(node: onnx.NodeProto, output: str = "z") -> onnx.GraphProto:
    return helper.make_graph([node], "branch", [], [_uint8_out(output)])


# --- external data, wherever it hides -----------------------------------------------------


def external_initializer() -> onnx.ModelProto:
    return _model([helper.make_node("Identity", ["w"], ["y"])], initializers=[_external("w")])


def external_constant_attribute() -> onnx.ModelProto:
    return _model([_constant("y", _tensor_attr("value", _external("c")))])


def ref_attribute_in_the_graph() -> onnx.ModelProto:
    # Observed with ONNX Runtime 1.31: the file's bytes come back as the output.
    return _model([_constant("y", _tensor_attr("value", _external("c"), ref="value"))])


def ref_attribute_in_a_function() -> onnx.ModelProto:
    body = _constant("b", _tensor_attr("value", _external("c"), ref="value"))
    function = helper.make_function(
        LOCAL, "Load", [], ["b"], [body], [helper.make_opsetid("", OPSET)], attributes=["value"]
    )
    value = helper.make_tensor("v", TensorProto.UINT8, [4], [1, 2, 3, 4])
    call = helper.make_node("Load", [], ["y"], domain=LOCAL, value=value)
    return _model([call], functions=[function], domains=(LOCAL,))


def function_attribute_default() -> onnx.ModelProto:
    body = helper.make_node("Identity", ["a"], ["b"])
    function = helper.make_function(
        LOCAL,
        "Pass",
        ["a"],
        ["b"],
        [body],
        [helper.make_opsetid("", OPSET)],
        attribute_protos=[_tensor_attr("value", _external("d"))],
    )
    return _model(
        [helper.make_node("Pass", ["x"], ["y"], domain=LOCAL)],
        inputs=[_uint8_out("x")],
        functions=[function],
        domains=(LOCAL,),
    )


def _clean_branch() -> onnx.GraphProto:
    zeros = numpy_helper.from_array(np.zeros(4, np.uint8), "zeros")
    return _branch(_constant("z", _tensor_attr("value", zeros)))


def external_in_if_branch() -> onnx.ModelProto:
    branch = _branch(_constant("z", _tensor_attr("value", _external("c"))))
    iff = helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=_clean_branch())
    return _model([_true(), iff])


def ref_attribute_in_if_branch() -> onnx.ModelProto:
    branch = _branch(_constant("z", _tensor_attr("value", _external("c"), ref="value")))
    return _model(
        [_true(), helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)]
    )


def external_initializer_in_loop_body() -> onnx.ModelProto:
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Identity", ["w"], ["z"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _uint8_out("z")],
        [_external("w")],
    )
    trips = helper.make_node(
        "Constant", [], ["n"], value=helper.make_tensor("n", TensorProto.INT64, [], [1])
    )
    return _model([trips, helper.make_node("Loop", ["n", ""], ["y"], body=body)])


def external_in_a_function_subgraph() -> onnx.ModelProto:
    branch = _branch(_constant("z", _tensor_attr("value", _external("c"))))
    iff = helper.make_node("If", ["cond"], ["b"], then_branch=branch, else_branch=_clean_branch())
    function = helper.make_function(
        LOCAL, "Branch", [], ["b"], [_true(), iff], [helper.make_opsetid("", OPSET)]
    )
    return _model(
        [helper.make_node("Branch", [], ["y"], domain=LOCAL)],
        functions=[function],
        domains=(LOCAL,),
    )


def external_sparse_initializer_indices() -> onnx.ModelProto:
    values = numpy_helper.from_array(np.array([7], np.uint8), "s")
    indices = _external("s_idx", n=1)
    indices.data_type = TensorProto.INT64
    sparse = helper.make_sparse_tensor(values, indices, [4])
    model = _model([helper.make_node("Identity", ["s"], ["y"])])
    model.graph.sparse_initializer.append(sparse)
    return model


def external_sparse_attribute() -> onnx.ModelProto:
    indices = numpy_helper.from_array(np.array([0], np.int64), "i")
    sparse = helper.make_sparse_tensor(_external("s", n=1), indices, [4])
    return _model([helper.make_node("Constant", [], ["y"], sparse_value=sparse)])


def external_tensors_attribute() -> onnx.ModelProto:
    node = helper.make_node("Identity", ["x"], ["y"])
    attr = node.attribute.add()
    attr.name, attr.type = "hidden", AttributeProto.TENSORS
    attr.tensors.append(_external("h"))
    return _model([node], inputs=[_uint8_out("x")])


def tensor_hidden_under_another_type() -> onnx.ModelProto:
    # Declared an INT attribute (and a reference), but the tensor field is set too.
    attr = _tensor_attr("value", _external("c"), ref="value")
    attr.type = AttributeProto.INT
    return _model([_constant("y", attr)])


def external_data_entry_without_location_flag() -> onnx.ModelProto:
    tensor = _external("c")
    tensor.data_location = TensorProto.DEFAULT
    return _model([_constant("y", _tensor_attr("value", tensor, ref="value"))])


def forged_split_marker_in_a_subgraph() -> onnx.ModelProto:
    # Only top-level initializers are ever detached by the split.
    branch = _branch(_constant("z", _tensor_attr("value", _external("c", WEIGHTS_LOCATION))))
    return _model(
        [_true(), helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)]
    )


def _nested_ifs(levels: int) -> onnx.ModelProto:
    """*levels* sub-graphs inside each other (only then_branch nests: the size stays linear)."""
    leaf = _branch(helper.make_node("Identity", ["x"], ["z"]))
    graph = leaf
    for _ in range(levels - 1):
        graph = _branch(
            helper.make_node("If", ["cond"], ["z"], then_branch=graph, else_branch=leaf)
        )
    return _model(
        [_true(), helper.make_node("If", ["cond"], ["y"], then_branch=graph, else_branch=leaf)],
        inputs=[_uint8_out("x")],
    )


def nesting_too_deep() -> onnx.ModelProto:
    return _nested_ifs(MAX_NESTING + 1)


# --- functions that ONNX Runtime would replace with its own kernel ------------------------


def _shadow(domain: str, name: str) -> onnx.ModelProto:
    """A function *domain*::*name* whose body is Identity, called on a float input."""
    function = helper.make_function(
        domain,
        name,
        ["a"],
        ["b"],
        [helper.make_node("Identity", ["a"], ["b"])],
        [helper.make_opsetid("", OPSET)],
    )
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    extra = () if domain in ("", "ai.onnx") else (domain,)
    return _model(
        [helper.make_node(name, ["x"], ["y"], domain=domain)],
        inputs=[x],
        outputs=[y],
        functions=[function],
        domains=extra,
    )


def shadow_contrib_gelu() -> onnx.ModelProto:
    return _shadow("com.microsoft", "Gelu")


def shadow_standard_relu() -> onnx.ModelProto:
    return _shadow("", "Relu")


def shadow_standard_relu_by_alias() -> onnx.ModelProto:
    return _shadow("ai.onnx", "Relu")


def shadow_ml_domain() -> onnx.ModelProto:
    return _shadow("ai.onnx.ml", "Normalizer")


def shadow_nhwc_domain() -> onnx.ModelProto:
    return _shadow("com.ms.internal.nhwc", "Conv")


def function_in_default_domain_of_a_new_name() -> onnx.ModelProto:
    return _shadow("", "NotAStandardOp")


def unknown_standard_op() -> onnx.ModelProto:
    model = _shadow("", "NotAStandardOp")
    del model.functions[:]
    return model


def unknown_standard_op_in_a_branch() -> onnx.ModelProto:
    branch = _branch(helper.make_node("NotAStandardOp", [], ["z"]))
    return _model(
        [_true(), helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)]
    )


EXTERNAL = "refers to external data"
SHADOW = "whose operators ONNX Runtime implements itself"

HOSTILE: list[tuple[Callable[[], onnx.ModelProto], str]] = [
    (external_initializer, "graph initializer 'w' " + EXTERNAL),
    (external_constant_attribute, "attribute 'value' " + EXTERNAL),
    (ref_attribute_in_the_graph, "attribute 'value' " + EXTERNAL),
    (ref_attribute_in_a_function, "function 'Load' node 'Constant' attribute 'value' " + EXTERNAL),
    (function_attribute_default, "function 'Pass' attribute 'value' " + EXTERNAL),
    (external_in_if_branch, "'then_branch' subgraph node 'Constant' attribute 'value' " + EXTERNAL),
    (ref_attribute_in_if_branch, "subgraph node 'Constant' attribute 'value' " + EXTERNAL),
    (external_initializer_in_loop_body, "'body' subgraph initializer 'w' " + EXTERNAL),
    (
        external_in_a_function_subgraph,
        "function 'Branch' node 'If' attribute 'then_branch' subgraph node 'Constant' "
        "attribute 'value' " + EXTERNAL,
    ),
    (external_sparse_initializer_indices, "sparse initializer indices " + EXTERNAL),
    (external_sparse_attribute, "'sparse_value' sparse tensor values " + EXTERNAL),
    (external_tensors_attribute, "attribute 'hidden' " + EXTERNAL),
    (tensor_hidden_under_another_type, "attribute 'value' " + EXTERNAL),
    (external_data_entry_without_location_flag, "attribute 'value' " + EXTERNAL),
    (forged_split_marker_in_a_subgraph, "subgraph node 'Constant' attribute 'value' " + EXTERNAL),
    (nesting_too_deep, f"more than {MAX_NESTING} levels deep"),
    (shadow_contrib_gelu, "function 'Gelu' is defined in domain 'com.microsoft', " + SHADOW),
    (shadow_standard_relu, "function 'Relu' is defined in domain 'ai.onnx', " + SHADOW),
    (shadow_standard_relu_by_alias, "function 'Relu' is defined in domain 'ai.onnx', " + SHADOW),
    (shadow_ml_domain, "domain 'ai.onnx.ml', " + SHADOW),
    (shadow_nhwc_domain, "domain 'com.ms.internal.nhwc', " + SHADOW),
    (function_in_default_domain_of_a_new_name, "function 'NotAStandardOp' is defined in domain"),
    (unknown_standard_op, "operator 'NotAStandardOp', which domain 'ai.onnx' does not define"),
    (unknown_standard_op_in_a_branch, "subgraph node 'NotAStandardOp' uses operator"),
]


@pytest.mark.parametrize(("build", "expected"), HOSTILE, ids=[b.__name__ for b, _ in HOSTILE])
def test_hostile_model_is_refused(
    limits: RuntimeLimits, build: Callable[[], onnx.ModelProto], expected: str
) -> None:
    data = build().SerializeToString()
    with pytest.raises(ModelRejected) as info:
        validate_model(ModelFormat.ONNX, data, limits)
    assert expected in str(info.value)


@pytest.mark.parametrize(("build", "expected"), HOSTILE, ids=[b.__name__ for b, _ in HOSTILE])
def test_hostile_model_is_refused_through_the_split(
    limits: RuntimeLimits, build: Callable[[], onnx.ModelProto], expected: str
) -> None:
    # With a large initializer the split detaches, as the worker receives real models.
    model = build()
    weight = np.arange(2048, dtype=np.float32)
    model.graph.initializer.append(numpy_helper.from_array(weight, "unused_weight"))
    buffer = bytearray(model.SerializeToString())
    assert split_onnx(bytearray(buffer)).detached, "the split detaches the large initializer"
    with pytest.raises(ModelRejected) as info:
        load_model(ModelFormat.ONNX, buffer, limits)
    assert expected in str(info.value)


# --- the two bypasses are real with this ONNX Runtime; the checks stop them first ----------


def test_a_referenced_attribute_reads_a_file_in_onnx_runtime_but_is_refused(
    limits: RuntimeLimits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret.bin").write_bytes(b"SECRET")
    monkeypatch.chdir(tmp_path)
    tensor = _external("c", "secret.bin")
    data = _model([_constant("y", _tensor_attr("value", tensor, ref="value"))]).SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert bytes(session.run(None, {})[0]) == b"SECR", "ONNX Runtime reads the referenced file"
    with pytest.raises(ModelRejected, match=EXTERNAL):
        load_model(ModelFormat.ONNX, bytearray(data), limits)


def test_a_shadowing_function_is_not_what_onnx_runtime_runs_and_is_refused(
    limits: RuntimeLimits,
) -> None:
    data = shadow_contrib_gelu().SerializeToString()
    x = np.array([-1.0, 0.0, 1.0], np.float32)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert not np.allclose(session.run(None, {"x": x})[0], x), "the body (Identity) did not run"
    with pytest.raises(ModelRejected, match=SHADOW):
        load_model(ModelFormat.ONNX, bytearray(data), limits)


# --- legitimate models still load -------------------------------------------------------


def test_a_local_function_with_attribute_references_loads_and_runs(limits: RuntimeLimits) -> None:
    ref = AttributeProto()
    ref.name, ref.ref_attr_name, ref.type = "alpha", "slope", AttributeProto.FLOAT
    leaky = helper.make_node("LeakyRelu", ["a"], ["b"])
    leaky.attribute.append(ref)
    value = _tensor_attr("value", TensorProto(), ref="offset")
    value.ClearField("t")
    shift = helper.make_node("Constant", [], ["o"])
    shift.attribute.append(value)
    function = helper.make_function(
        LOCAL,
        "ShiftedLeaky",
        ["a"],
        ["c"],
        [leaky, shift, helper.make_node("Add", ["b", "o"], ["c"])],
        [helper.make_opsetid("", OPSET)],
        attributes=["slope", "offset"],
    )
    call = helper.make_node(
        "ShiftedLeaky",
        ["x"],
        ["y"],
        domain=LOCAL,
        slope=0.5,
        offset=helper.make_tensor("off", TensorProto.FLOAT, [1], [10.0]),
    )
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    data = _model(
        [call], inputs=[x], outputs=[y], functions=[function], domains=(LOCAL,)
    ).SerializeToString()
    runner = load_model(ModelFormat.ONNX, bytearray(data), limits)
    out = runner.run({"x": np.array([-2.0, 0.0, 2.0], np.float32)})["y"]
    np.testing.assert_allclose(out, [9.0, 10.0, 12.0])


def test_subgraphs_sparse_and_string_tensors_load(limits: RuntimeLimits) -> None:
    branch = _branch(
        _constant("z", _tensor_attr("value", numpy_helper.from_array(np.arange(4, dtype=np.uint8))))
    )
    words = helper.make_tensor("w", TensorProto.STRING, [2], [b"clean", b"room"])
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([5], np.uint8), "s"),
        numpy_helper.from_array(np.array([2], np.int64), "s_idx"),
        [4],
    )
    model = _model(
        [
            _true(),
            helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch),
            helper.make_node("Identity", ["w"], ["words"]),
            helper.make_node("Identity", ["s"], ["dense"]),
        ],
        outputs=[
            _uint8_out(),
            helper.make_tensor_value_info("words", TensorProto.STRING, [2]),
            _uint8_out("dense"),
        ],
        initializers=[words],
    )
    model.graph.sparse_initializer.append(sparse)
    assert not words.HasField("raw_data")
    runner = load_model(ModelFormat.ONNX, bytearray(model.SerializeToString()), limits)
    out = runner.run({})
    assert out["y"].tolist() == [0, 1, 2, 3]
    assert [str(w) for w in out["words"]] == ["clean", "room"]
    assert out["dense"].tolist() == [0, 0, 5, 0]


def test_what_the_split_produces_is_accepted(limits: RuntimeLimits) -> None:
    # Large weights (detached) next to a local function and a sub-graph.
    weight = np.arange(64 * 32, dtype=np.float32).reshape(64, 32) / 1000
    function = helper.make_function(
        LOCAL,
        "Double",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", OPSET)],
    )
    then = helper.make_graph(
        [helper.make_node("Double", ["h"], ["z"], domain=LOCAL)],
        "then",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 32])],
    )
    model = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            _true(),
            helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=then),
        ],
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        initializers=[numpy_helper.from_array(weight, "w")],
        functions=[function],
        domains=(LOCAL,),
    )
    data = model.SerializeToString()
    split = split_onnx(bytearray(data))
    assert list(split.detached) == [0]
    validate_onnx(split.graph, limits, detached=split.detached)
    x = np.ones((1, 64), np.float32)
    out = load_model(ModelFormat.ONNX, bytearray(data), limits).run({"x": x})["y"]
    np.testing.assert_allclose(out, 2 * (x @ weight), rtol=1e-5)


def test_nesting_up_to_the_bound_is_accepted(limits: RuntimeLimits) -> None:
    validate_model(ModelFormat.ONNX, _nested_ifs(MAX_NESTING).SerializeToString(), limits)
