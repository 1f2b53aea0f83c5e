"""Running an audit outside any clean room: an ONNX model file queried with ONNX Runtime.

Inside a clean room the service passes its own runtime's predict function;
this module exists for ``cleanroom audit run`` on a workstation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cleanroom.audit._canonical import sha256_digest
from cleanroom.audit.model_queries import PredictFn
from cleanroom.errors import AuditError, ConfigurationError, ModelRejected

__all__ = ["load_onnx_model", "model_digest"]


def model_digest(model_bytes: bytes) -> str:
    """``sha256:`` of the model file's bytes, as certificates state it."""
    return sha256_digest(model_bytes)


def load_onnx_model(path: Path) -> tuple[PredictFn, str]:
    """A predict function for the ONNX model at *path*, and the model's digest."""
    try:
        model_bytes = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    import onnxruntime as ort  # heavy; imported only when a local model is audited

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise ModelRejected(f"ONNX Runtime refused the model: {type(exc).__name__}") from None
    output_names = [o.name for o in session.get_outputs()]

    def predict(
        inputs: Mapping[str, npt.NDArray[np.generic]],
    ) -> Mapping[str, npt.NDArray[np.generic]]:
        try:
            values = session.run(output_names, dict(inputs))
        except Exception as exc:
            raise AuditError(
                f"ONNX Runtime failed on the audit data: {type(exc).__name__}"
            ) from None
        return {name: np.asarray(v) for name, v in zip(output_names, values, strict=True)}

    return predict, model_digest(model_bytes)
