"""In-process loading: validate, then hand the model to the format's runtime.

The service does not use this (it loads through the sandbox
:class:`~cleanroom.runtime.sandbox.supervisor.Supervisor`); the sandboxed
worker and the command-line tools do.

An ONNX model is first split (:mod:`cleanroom.runtime.onnx_split`): its large
weights stay where they are in the buffer, which ONNX Runtime uses in place,
and only the small graph is parsed and checked.
"""

from __future__ import annotations

import mmap

from cleanroom.runtime.base import ModelRunner, RuntimeLimits
from cleanroom.runtime.validation import validate_model
from cleanroom.wire.formats import ModelFormat

__all__ = ["load_model"]


def load_model(
    fmt: ModelFormat, model: bytes | bytearray | memoryview | mmap.mmap, limits: RuntimeLimits
) -> ModelRunner:
    """Validate *model* and load it in this process; raises ModelRejected if refused.

    A ``bytearray`` or writable ``mmap`` is taken over: it is rearranged and the loaded model keeps
    using it. Other buffers are copied once.
    """
    if fmt == ModelFormat.ONNX:
        from cleanroom.errors import ModelRejected
        from cleanroom.runtime.onnx import OnnxRunner
        from cleanroom.runtime.onnx_checks import validate_onnx
        from cleanroom.runtime.onnx_split import split_onnx

        if memoryview(model).nbytes > limits.max_model_bytes:
            raise ModelRejected(
                f"the model has {memoryview(model).nbytes} bytes, "
                f"over the limit of {limits.max_model_bytes}"
            )
        buffer = model if isinstance(model, bytearray | mmap.mmap) else bytearray(model)
        split = split_onnx(buffer)
        validate_onnx(split.graph, limits, detached=split.detached)
        return OnnxRunner(split.graph, limits, weights=buffer if split.detached else None)
    data = model if isinstance(model, bytes) else bytes(model)
    validate_model(fmt, data, limits)
    from cleanroom.runtime.tflite import TfliteRunner

    return TfliteRunner(data, limits)
