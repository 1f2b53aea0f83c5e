"""Model runtimes (ONNX Runtime, LiteRT), hostile-model checks and the sandbox.

The service uses :class:`Supervisor` (models in confined worker processes);
tools and tests may use :func:`load_model` (in this process). Both validate
the model first with :func:`validate_model`.
"""

from cleanroom.runtime.base import ModelRunner, ModelSignature, RuntimeLimits, TensorSpec
from cleanroom.runtime.loading import load_model
from cleanroom.runtime.sandbox import SandboxReport, Supervisor
from cleanroom.runtime.validation import validate_model

__all__ = [
    "ModelRunner",
    "ModelSignature",
    "RuntimeLimits",
    "SandboxReport",
    "Supervisor",
    "TensorSpec",
    "load_model",
    "validate_model",
]
