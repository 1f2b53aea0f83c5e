"""ONNX Runtime on the CPU, loaded from memory (never from a plaintext file)."""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np
import onnxruntime as ort

from cleanroom.errors import InferenceFailed, ModelRejected
from cleanroom.runtime.base import ModelSignature, RuntimeLimits, Tensors, TensorSpec
from cleanroom.runtime.onnx_split import WEIGHTS_LOCATION
from cleanroom.runtime.tensors import check_inputs

__all__ = ["OnnxRunner", "check_inputs"]

# ONNX Runtime's type strings -> numpy dtype names used on the wire.
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}


def _spec(arg: Any) -> TensorSpec:
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        raise ModelRejected(f"tensor {arg.name!r} has type {arg.type}, which is not supported")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or []))
    return TensorSpec(name=arg.name, dtype=dtype, shape=shape)


class OnnxRunner:
    """An ONNX model in an in-process ``InferenceSession`` (thread-safe ``run``)."""

    def __init__(
        self,
        model: bytes,
        limits: RuntimeLimits | None = None,
        *,
        weights: bytearray | mmap.mmap | None = None,
    ) -> None:
        """Load *model*; *weights* holds the initializers it marks as external.

        A split model (:mod:`cleanroom.runtime.onnx_split`) marks its large
        initializers as external data at ``WEIGHTS_LOCATION``; *weights* is
        the buffer they were left in, given to ONNX Runtime as that file's
        contents. The session uses the weights where they are, without a copy
        of its own, so *weights* is held until :meth:`close`.
        """
        limits = limits or RuntimeLimits()
        # No usage telemetry leaves a clean room (ORT would otherwise try to
        # record events and persist a device identifier).
        ort.disable_telemetry_events()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if limits.intra_op_threads:
            options.intra_op_num_threads = limits.intra_op_threads
        # Measured: no speed cost, much lower peak memory at load.
        options.add_session_config_entry("session.disable_prepacking", "1")
        # Threads spin briefly between the operators of one run (waking a
        # sleeping thread per operator costs more than a small model's
        # operator), give up soon when the cores are busy with other work (the
        # service's own threads, other workers), and stop spinning when the run
        # ends, so an idle worker leaves the cores to everyone else.
        spinning = limits.extra.get("onnx.allow_spinning", "1")
        spin_us = limits.extra.get("onnx.spin_duration_us", "20")
        if spinning not in ("0", "1") or not spin_us.isdigit():
            # ONNX Runtime would silently fall back to its defaults.
            raise ValueError("onnx.allow_spinning must be 0 or 1, onnx.spin_duration_us an integer")
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.add_session_config_entry("session.intra_op.spin_duration_us", spin_us)
        options.add_session_config_entry("session.force_spinning_stop", "1")
        self._weights = weights
        if weights is not None:
            options.add_session_config_entry(
                "session.use_external_initializer_file_buffers_directly", "1"
            )
            options.add_external_initializers_from_files_in_memory(
                [WEIGHTS_LOCATION], [weights], [len(weights)]
            )
        try:
            self._session = ort.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            # ORT's message says what is wrong with the graph; it never contains weights.
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            raise ModelRejected(f"ONNX Runtime cannot load the model: {first_line[:300]}") from exc
        self._signature = ModelSignature(
            inputs=tuple(_spec(a) for a in self._session.get_inputs()),
            outputs=tuple(_spec(a) for a in self._session.get_outputs()),
        )

    @property
    def signature(self) -> ModelSignature:
        return self._signature

    def ready(self) -> bool:
        return self._session is not None

    def run(self, inputs: Tensors) -> Tensors:
        feed = check_inputs(inputs, self._signature.inputs)
        session = self._session
        if session is None:
            raise InferenceFailed("the model has been unloaded")
        try:
            results = session.run(None, feed)
        except Exception as exc:
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            raise InferenceFailed(f"the model failed: {first_line[:300]}") from exc
        out: Tensors = {}
        for spec, value in zip(self._signature.outputs, results, strict=True):
            array = np.asarray(value)
            out[spec.name] = array
        return out

    def close(self) -> None:
        self._session = None
        self._weights = None
