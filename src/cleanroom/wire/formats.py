"""Model formats a clean room instance can run."""

from __future__ import annotations

import enum


class ModelFormat(enum.StrEnum):
    """The format of the model an instance runs; fixed when the instance is created."""

    ONNX = "onnx"
    TFLITE = "tflite"
