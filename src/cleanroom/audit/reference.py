"""Reference-model trainers for the reference-model attack on tabular models.

scikit-learn is imported lazily: it is needed only when a spec asks for the
reference-model attack and the caller picks one of these trainers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from cleanroom.audit.data import LabelledRecords
from cleanroom.audit.membership import ReferenceTrainer
from cleanroom.audit.model_queries import PredictFn
from cleanroom.audit.spec import ModelBinding
from cleanroom.errors import AuditError, ConfigurationError

__all__ = ["logistic_regression_trainer"]


def logistic_regression_trainer(binding: ModelBinding, classes: int) -> ReferenceTrainer:
    """Trains scikit-learn ``LogisticRegression`` reference models.

    The returned predict functions answer on ``binding.output`` with
    probabilities over ``classes`` classes (classes absent from a reference
    set get probability 0).
    """
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ConfigurationError(
            "the logistic-regression reference trainer needs scikit-learn installed"
        ) from None

    def train(records: LabelledRecords, seed: int) -> PredictFn:
        if np.unique(records.labels).size < 2:
            raise AuditError("a reference set must hold at least two classes")
        model = LogisticRegression(max_iter=1000, random_state=seed)
        model.fit(records.features, records.labels)
        seen = np.asarray(model.classes_, dtype=np.int64)
        if (seen >= classes).any():
            raise AuditError("a reference label is outside the declared classes")

        def predict(
            inputs: Mapping[str, npt.NDArray[np.generic]],
        ) -> Mapping[str, npt.NDArray[np.generic]]:
            features = np.asarray(inputs[binding.input], dtype=np.float32)
            partial = model.predict_proba(features)
            full = np.zeros((features.shape[0], classes), dtype=np.float64)
            full[:, seen] = partial
            return {binding.output: full}

        return predict

    return train
