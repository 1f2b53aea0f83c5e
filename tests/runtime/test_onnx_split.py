"""Large ONNX weights are detached in place; malformed layouts are refused."""

from __future__ import annotations

import mmap
from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from cleanroom.errors import ModelRejected
from cleanroom.runtime import load_model
from cleanroom.runtime.base import RuntimeLimits
from cleanroom.runtime.onnx_checks import validate_onnx
from cleanroom.runtime.onnx_split import (
    MIN_DETACHED_BYTES,
    WEIGHTS_LOCATION,
    Detached,
    split_onnx,
)
from cleanroom.wire.formats import ModelFormat

HOSTILE = [
    ("hostile_external_data_etc_passwd.onnx", "refers to external data"),
    ("hostile_external_data_dotdot.onnx", "refers to external data"),
    ("hostile_external_data_in_subgraph.onnx", "'then_branch' subgraph"),
    ("hostile_custom_domain_op.onnx", "custom operator domain 'com.example.evil'"),
    ("hostile_huge_initializer_dims.onnx", "over the model size limit"),
    ("hostile_checker_fails.onnx", "ONNX checker refused"),
    ("hostile_not_a_model.onnx", "not an ONNX model"),
]


def _matmul_model(weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["y"]),
        ],
        "split",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, weight.shape[1]])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture
def model() -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    weight = rng.standard_normal((64, 48)).astype(np.float32)  # 12 KiB: detached
    bias = rng.standard_normal(48).astype(np.float32)  # 192 B: stays in the graph
    return _matmul_model(weight, bias)


def test_split_model_runs_like_the_whole_model(model: onnx.ModelProto) -> None:
    data = model.SerializeToString()
    buffer = bytearray(data)
    split = split_onnx(buffer)
    assert list(split.detached) == [0]
    located = split.detached[0]
    assert located.nbytes == 64 * 48 * 4
    assert len(split.graph) < MIN_DETACHED_BYTES
    graph = onnx.load_from_string(split.graph)
    weight = graph.graph.initializer[0]
    assert weight.data_location == TensorProto.EXTERNAL
    assert {e.key: e.value for e in weight.external_data} == {
        "location": WEIGHTS_LOCATION,
        "offset": str(located.offset),
        "length": str(located.nbytes),
    }
    assert graph.graph.initializer[1].HasField("raw_data")
    # The payload moved to an aligned place in the same buffer, intact.
    assert (np.frombuffer(buffer, np.uint8).ctypes.data + located.offset) % 64 == 0
    moved = bytes(buffer[located.offset : located.offset + located.nbytes])
    assert moved == numpy_helper.to_array(model.graph.initializer[0]).tobytes()
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    runner = load_model(ModelFormat.ONNX, bytearray(data), RuntimeLimits())
    expected = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(runner.run({"x": x})["y"], expected[0], rtol=1e-5)


def test_the_session_uses_the_buffer_it_was_given(model: onnx.ModelProto) -> None:
    buffer = bytearray(model.SerializeToString())
    runner = load_model(ModelFormat.ONNX, buffer, RuntimeLimits())
    x = np.ones((1, 64), np.float32)
    before = runner.run({"x": x})["y"]
    np.frombuffer(buffer, np.uint8)[:] = 0  # ONNX Runtime reads the weights there: no copy
    assert not np.allclose(runner.run({"x": x})["y"], before)


@pytest.mark.parametrize(("fixture", "expected"), HOSTILE)
def test_hostile_corpus_is_refused_through_the_split(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits, fixture: str, expected: str
) -> None:
    with pytest.raises(ModelRejected) as info:
        load_model(ModelFormat.ONNX, bytearray(model_bytes(fixture)), limits)
    assert expected in str(info.value)


def test_weights_not_matching_their_dims_are_refused(model: onnx.ModelProto) -> None:
    model.graph.initializer[0].raw_data += b"\x00" * 4
    with pytest.raises(ModelRejected, match="holds 12292 bytes but declares 12288"):
        split_onnx(bytearray(model.SerializeToString()))


def test_a_repeated_graph_field_is_refused(model: onnx.ModelProto) -> None:
    data = model.SerializeToString()
    graph = model.graph.SerializeToString()
    extra = bytes([7 << 3 | 2]) + _varint(len(graph)) + graph
    with pytest.raises(ModelRejected, match="repeats its graph field"):
        split_onnx(bytearray(data + extra))


def test_a_field_running_past_the_end_is_refused(model: onnx.ModelProto) -> None:
    data = model.SerializeToString()
    with pytest.raises(ModelRejected, match="not an ONNX model"):
        load_model(ModelFormat.ONNX, bytearray(data[:-100]), RuntimeLimits())


def test_a_forged_weights_marker_is_refused(model: onnx.ModelProto) -> None:
    # A model that itself points at the split's location is external data like any other.
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", WEIGHTS_LOCATION), ("offset", "0"), ("length", "12288")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    with pytest.raises(ModelRejected, match="refers to external data"):
        load_model(ModelFormat.ONNX, bytearray(model.SerializeToString()), RuntimeLimits())


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: {0: Detached(d[0].offset, d[0].nbytes - 4)},
        lambda d: {0: Detached(d[0].offset + 64, d[0].nbytes)},
        lambda d: {1: Detached(d[0].offset, 192)},
        lambda d: {**d, 1: Detached(0, 192)},
        lambda d: {**d, 2: Detached(0, 4096)},
    ],
    ids=["wrong-length", "wrong-offset", "not-detached", "one-too-many", "no-such-initializer"],
)
def test_a_detached_map_that_does_not_match_the_graph_is_refused(
    model: onnx.ModelProto, mutate: Callable[[dict[int, Detached]], dict[int, Detached]]
) -> None:
    split = split_onnx(bytearray(model.SerializeToString()))
    validate_onnx(split.graph, RuntimeLimits(), detached=split.detached)  # as split: accepted
    with pytest.raises(ModelRejected, match=r"detached|refers to external data"):
        validate_onnx(split.graph, RuntimeLimits(), detached=mutate(split.detached))


def test_a_tensor_with_typed_data_as_well_stays_whole(model: onnx.ModelProto) -> None:
    model.graph.initializer[0].float_data.append(1.0)
    split = split_onnx(bytearray(model.SerializeToString()))
    assert split.detached == {}
    with pytest.raises(ModelRejected):
        load_model(ModelFormat.ONNX, bytearray(model.SerializeToString()), RuntimeLimits())


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_a_payload_with_no_aligned_place_before_it_stays_in_the_graph() -> None:
    # In a page-aligned buffer the first payload (4100 bytes) moves to offset 0; the
    # next aligned offset, 4160, lies past the start of the second payload.
    first = np.arange(1025, dtype=np.float32)
    second = np.arange(1024, dtype=np.float32) * 2
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "a2"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024])],
        [numpy_helper.from_array(first, "a"), numpy_helper.from_array(second, "a2")],
    )
    data = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    ).SerializeToString()
    buffer = mmap.mmap(-1, len(data))
    buffer[:] = data
    split = split_onnx(buffer)
    assert split.detached == {0: Detached(0, 4100)}
    kept = onnx.load_from_string(split.graph).graph.initializer[1]
    assert numpy_helper.to_array(kept).tolist() == second.tolist()
    buffer[:] = data
    runner = load_model(ModelFormat.ONNX, buffer, RuntimeLimits())
    x = np.ones(1024, np.float32)
    np.testing.assert_array_equal(runner.run({"x": x})["y"], x + second)
