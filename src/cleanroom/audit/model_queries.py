"""Querying a model for per-class probabilities and per-record losses.

The model is reached only through ``predict_fn(inputs) -> outputs`` with
tensors keyed by name, so the same code runs on a local ONNX session and on
the in-room runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt
from scipy import special

from cleanroom.audit.spec import ModelBinding
from cleanroom.errors import AuditError, Error

__all__ = ["PredictFn", "class_probabilities", "cross_entropy"]

# The input is a plain dict so a runtime's ``ModelRunner.run`` fits as is.
PredictFn = Callable[[dict[str, npt.NDArray[np.generic]]], Mapping[str, npt.NDArray[np.generic]]]

# Losses are clipped at -ln(1e-12) ≈ 27.6 so a confidently wrong prediction
# gives a large finite loss instead of inf.
_MIN_PROBABILITY = 1e-12
# Probability rows from float32 models sum to 1 only up to rounding.
_ROW_SUM_TOLERANCE = 1e-3


def class_probabilities(
    predict_fn: PredictFn, binding: ModelBinding, features: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """[records, classes] probabilities, queried in batches of ``binding.batch_size``."""
    chunks: list[npt.NDArray[np.float64]] = []
    for start in range(0, features.shape[0], binding.batch_size):
        batch = features[start : start + binding.batch_size]
        try:
            outputs = predict_fn({binding.input: batch})
        except Error:
            raise
        except Exception as exc:
            raise AuditError(f"the model failed during the audit: {type(exc).__name__}") from None
        if binding.output not in outputs:
            raise AuditError(f"the model has no output named {binding.output!r}")
        try:
            out = np.asarray(outputs[binding.output], dtype=np.float64)
        except (TypeError, ValueError):
            raise AuditError(
                f"output {binding.output!r} is not a numeric tensor (for scikit-learn "
                "models converted to ONNX, disable the ZipMap output)"
            ) from None
        if out.ndim != 2 or out.shape[0] != batch.shape[0] or out.shape[1] < 2:
            raise AuditError(
                f"output {binding.output!r} must have shape [records, classes>=2], "
                f"got {list(out.shape)}"
            )
        chunks.append(out)
    scores = np.concatenate(chunks, axis=0)
    if not np.isfinite(scores).all():
        raise AuditError("the model produced non-finite outputs")
    if binding.output_kind == "logits":
        return np.asarray(special.softmax(scores, axis=1), dtype=np.float64)
    if (scores < 0.0).any() or (scores > 1.0 + _ROW_SUM_TOLERANCE).any():
        raise AuditError("output declared as probabilities holds values outside [0, 1]")
    if (np.abs(scores.sum(axis=1) - 1.0) > _ROW_SUM_TOLERANCE).any():
        raise AuditError("output declared as probabilities has rows that do not sum to 1")
    return scores


def cross_entropy(
    probabilities: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Per-record -ln p(label)."""
    if (labels >= probabilities.shape[1]).any():
        raise AuditError("a label is outside the model's classes")
    picked = probabilities[np.arange(labels.size), labels]
    return np.asarray(-np.log(np.maximum(picked, _MIN_PROBABILITY)), dtype=np.float64)
