"""In-process loading: validate, then hand the bytes to the format's runtime.

The service does not use this (it loads through the sandbox
:class:`~cleanroom.runtime.sandbox.supervisor.Supervisor`); the sandboxed
worker and the command-line tools do.
"""

from __future__ import annotations

from cleanroom.runtime.base import ModelRunner, RuntimeLimits
from cleanroom.runtime.validation import validate_model
from cleanroom.wire.formats import ModelFormat

__all__ = ["load_model"]


def load_model(
    fmt: ModelFormat, model: bytes | bytearray | memoryview, limits: RuntimeLimits
) -> ModelRunner:
    """Validate *model* and load it in this process; raises ModelRejected if refused."""
    data = model if isinstance(model, bytes) else bytes(model)
    validate_model(fmt, data, limits)
    if fmt == ModelFormat.ONNX:
        from cleanroom.runtime.onnx import OnnxRunner

        return OnnxRunner(data, limits)
    from cleanroom.runtime.tflite import TfliteRunner

    return TfliteRunner(data, limits)
