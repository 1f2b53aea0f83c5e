"""One entry point for the hostile-model checks of every format."""

from __future__ import annotations

from cleanroom.errors import ModelRejected
from cleanroom.runtime.base import ModelSignature, RuntimeLimits
from cleanroom.wire.formats import ModelFormat

__all__ = ["validate_model"]


def validate_model(
    fmt: ModelFormat, model: bytes | bytearray | memoryview, limits: RuntimeLimits
) -> ModelSignature:
    """Check *model* before loading it; return its signature.

    Raises :class:`~cleanroom.errors.ModelRejected` with a message naming
    the reason. Nothing is loaded into a runtime and no file is opened.
    """
    if fmt == ModelFormat.ONNX:
        from cleanroom.runtime.onnx_checks import validate_onnx

        return validate_onnx(model, limits)
    if fmt == ModelFormat.TFLITE:
        from cleanroom.runtime.tflite_checks import validate_tflite

        return validate_tflite(model, limits)
    raise ModelRejected(f"model format {fmt!r} is not supported")
