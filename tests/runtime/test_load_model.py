"""In-process loading gives exactly what the runtimes give when called directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from tests.models import single_input_model
from tests.runtime.reference import assert_same, direct_onnx, direct_tflite

from cleanroom.errors import InferenceFailed, InvalidTensor, ModelRejected
from cleanroom.runtime import RuntimeLimits, load_model
from cleanroom.runtime.onnx import OnnxRunner
from cleanroom.wire.formats import ModelFormat

RNG = np.random.default_rng(7)


def mixed_inputs(batch: int = 3) -> dict[str, Any]:
    return {
        "x": RNG.standard_normal((batch, 4)).astype(np.float32),
        "scale": np.array([1.5], np.float32),
        "ids": np.arange(batch, dtype=np.int64) * 7,
    }


def test_onnx_matches_direct_onnxruntime(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    model = model_bytes("mixed_io.onnx")
    runner = load_model(ModelFormat.ONNX, model, limits)
    inputs = mixed_inputs()
    assert_same(runner.run(inputs), direct_onnx(model, inputs))
    assert runner.ready()
    runner.close()


@pytest.mark.parametrize("fixture", ["add_mul.tflite", "dense_cast.tflite"])
def test_tflite_matches_direct_litert(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits, fixture: str
) -> None:
    model = model_bytes(fixture)
    runner = load_model(ModelFormat.TFLITE, model, limits)
    inputs = {
        spec.name: RNG.standard_normal([d or 1 for d in spec.shape]).astype(np.float32)
        for spec in runner.signature.inputs
    }
    assert_same(runner.run(inputs), direct_tflite(model, inputs))
    runner.close()


def test_string_tensors_round_trip(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    runner = load_model(ModelFormat.ONNX, model_bytes("string_identity.onnx"), limits)
    out = runner.run({"words": np.array(["clean", "room", "é"])})
    assert out["same"].tolist() == ["clean", "room", "é"]


@pytest.mark.parametrize(
    ("fmt", "fixture"),
    [
        (ModelFormat.ONNX, "hostile_external_data_etc_passwd.onnx"),
        (ModelFormat.ONNX, "hostile_custom_domain_op.onnx"),
        (ModelFormat.TFLITE, "hostile_custom_op.tflite"),
        (ModelFormat.TFLITE, "add_mul.onnx.missing"),
    ],
)
def test_load_refuses_hostile_models(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits, fmt: ModelFormat, fixture: str
) -> None:
    data = model_bytes(fixture) if not fixture.endswith(".missing") else b"\x00" * 64
    with pytest.raises(ModelRejected):
        load_model(fmt, data, limits)


@pytest.mark.parametrize(
    ("fmt", "fixture", "inputs"),
    [
        (ModelFormat.ONNX, "mixed_io.onnx", {"x": np.zeros((1, 4), np.float32)}),
        (ModelFormat.TFLITE, "add_mul.tflite", {"a": np.zeros((1, 4)), "b": np.zeros((1, 4))}),
        (
            ModelFormat.TFLITE,
            "add_mul.tflite",
            {"a": np.zeros((1, 5), np.float32), "b": np.zeros((1, 4), np.float32)},
        ),
    ],
)
def test_run_refuses_mismatched_inputs(
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    fmt: ModelFormat,
    fixture: str,
    inputs: dict[str, Any],
) -> None:
    runner = load_model(fmt, model_bytes(fixture), limits)
    with pytest.raises(InvalidTensor):
        runner.run(inputs)


def test_runtime_failure_is_inference_failed(
    model_bytes: Callable[[str], bytes], limits: RuntimeLimits
) -> None:
    runner = load_model(ModelFormat.ONNX, model_bytes("hostile_memory_bomb.onnx"), limits)
    # A negative dimension passes the signature (int64 [2]) but ORT refuses it.
    with pytest.raises(InferenceFailed, match="the model failed"):
        runner.run({"shape": np.array([-1, 4], np.int64)})


@pytest.mark.parametrize(
    ("fmt", "fixture", "inputs"),
    [
        (ModelFormat.ONNX, "mixed_io.onnx", mixed_inputs(1)),
        (
            ModelFormat.TFLITE,
            "add_mul.tflite",
            {"a": np.zeros((1, 4), np.float32), "b": np.zeros((1, 4), np.float32)},
        ),
    ],
)
def test_a_closed_runner_refuses_to_run(
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    fmt: ModelFormat,
    fixture: str,
    inputs: dict[str, Any],
) -> None:
    runner = load_model(fmt, model_bytes(fixture), limits)
    runner.close()
    assert not runner.ready()
    with pytest.raises(InferenceFailed, match="unloaded"):
        runner.run(inputs)


def _session_config(runner: Any, key: str) -> str:
    return str(runner._session.get_session_options().get_session_config_entry(key))


def test_threads_spin_briefly_and_stop_after_each_run_unless_told_otherwise() -> None:
    default = OnnxRunner(single_input_model())
    assert _session_config(default, "session.intra_op.allow_spinning") == "1"
    assert _session_config(default, "session.intra_op.spin_duration_us") == "20"
    assert _session_config(default, "session.force_spinning_stop") == "1"
    quiet = OnnxRunner(single_input_model(), RuntimeLimits(extra={"onnx.allow_spinning": "0"}))
    assert _session_config(quiet, "session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize(
    "extra",
    [
        {"onnx.allow_spinning": "yes"},
        {"onnx.spin_duration_us": "-5"},
        {"onnx.spin_duration_us": ""},
    ],
)
def test_bad_spinning_settings_are_refused_not_ignored(extra: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="onnx"):
        OnnxRunner(single_input_model(), RuntimeLimits(extra=extra))
