"""LiteRT (TFLite) on the CPU, loaded from memory (never from a plaintext file)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from cleanroom.errors import InferenceFailed, ModelRejected
from cleanroom.runtime.base import ModelSignature, RuntimeLimits, Tensors
from cleanroom.runtime.tensors import check_inputs
from cleanroom.runtime.tflite_checks import validate_tflite

__all__ = ["TfliteRunner"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class TfliteRunner:
    """A TFLite model in an in-process LiteRT ``Interpreter``.

    The interpreter is not thread-safe, so ``run`` holds a lock. No delegate
    is ever loaded from a library (``experimental_delegates`` stays empty);
    the built-in resolver may apply LiteRT's own XNNPACK kernels.
    """

    def __init__(self, model: bytes, limits: RuntimeLimits | None = None) -> None:
        limits = limits or RuntimeLimits()
        # The signature comes from the schema-level checks, which also refuse
        # custom operators; LiteRT never sees a model that fails them.
        self._signature: ModelSignature = validate_tflite(model, limits)
        from ai_edge_litert.interpreter import Interpreter

        self._lock = threading.Lock()
        try:
            self._interpreter: Any = Interpreter(
                model_content=model,
                num_threads=limits.intra_op_threads or None,
                experimental_delegates=None,
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelRejected(f"LiteRT cannot load the model: {_first_line(exc)}") from exc
        self._inputs = {d["name"]: d for d in self._interpreter.get_input_details()}
        self._outputs = {d["name"]: d for d in self._interpreter.get_output_details()}
        declared_in = [s.name for s in self._signature.inputs]
        declared_out = [s.name for s in self._signature.outputs]
        if sorted(declared_in) != sorted(self._inputs) or sorted(declared_out) != sorted(
            self._outputs
        ):
            raise ModelRejected("the model's tensors do not match what LiteRT reports")

    @property
    def signature(self) -> ModelSignature:
        return self._signature

    def ready(self) -> bool:
        return self._interpreter is not None

    def run(self, inputs: Tensors) -> Tensors:
        feed = check_inputs(inputs, self._signature.inputs)
        with self._lock:
            if self._interpreter is None:
                raise InferenceFailed("the model has been unloaded")
            try:
                resized = False
                for name, array in feed.items():
                    detail = self._inputs[name]
                    if tuple(detail["shape"]) != array.shape:
                        self._interpreter.resize_tensor_input(
                            detail["index"], list(array.shape), strict=True
                        )
                        resized = True
                if resized:
                    self._interpreter.allocate_tensors()
                    self._inputs = {d["name"]: d for d in self._interpreter.get_input_details()}
                for name, array in feed.items():
                    self._interpreter.set_tensor(self._inputs[name]["index"], array)
                self._interpreter.invoke()
                return {
                    spec.name: np.array(
                        self._interpreter.get_tensor(self._outputs[spec.name]["index"])
                    )
                    for spec in self._signature.outputs
                }
            except (ValueError, RuntimeError) as exc:
                raise InferenceFailed(f"the model failed: {_first_line(exc)}") from exc

    def close(self) -> None:
        with self._lock:
            self._interpreter = None
