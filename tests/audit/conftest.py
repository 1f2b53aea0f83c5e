"""Fixtures for the audit tests: small tabular data and models exported to ONNX.

Everything is generated here from fixed seeds (scikit-learn + skl2onnx, both
development dependencies); nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cleanroom.audit import LabelledRecords

FEATURES = 6
SENSITIVE_COLUMN = 0


@dataclass(frozen=True)
class TabularTask:
    members: LabelledRecords
    nonmembers: LabelledRecords
    reference_pool: LabelledRecords


def _records(rng: np.random.Generator, n: int) -> LabelledRecords:
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    # Column 0 is a binary sensitive attribute that the label depends on.
    x[:, SENSITIVE_COLUMN] = rng.integers(0, 2, size=n)
    logits = 1.5 * x[:, SENSITIVE_COLUMN] - 0.75 + x[:, 1] - 0.5 * x[:, 2]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(np.int64)
    return LabelledRecords.of(x, y)


@pytest.fixture(scope="session")
def task() -> TabularTask:
    rng = np.random.default_rng(20261121)
    return TabularTask(
        members=_records(rng, 400),
        nonmembers=_records(rng, 400),
        reference_pool=_records(rng, 400),
    )


def _to_onnx(model: object, path: Path) -> Path:
    from skl2onnx import to_onnx

    onx = to_onnx(
        model,
        np.zeros((1, FEATURES), dtype=np.float32),
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.fixture(scope="session")
def overfit_model(task: TabularTask, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fully grown decision tree: memorises its (member) training records."""
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(random_state=0).fit(task.members.features, task.members.labels)
    return _to_onnx(tree, tmp_path_factory.mktemp("models") / "overfit_tree.onnx")


@pytest.fixture(scope="session")
def private_model(task: TabularTask, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that never saw the members: trained on the disjoint reference pool."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(
        task.reference_pool.features, task.reference_pool.labels
    )
    return _to_onnx(model, tmp_path_factory.mktemp("models") / "independent_logreg.onnx")


SpecFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def spec_doc(task: TabularTask) -> SpecFactory:
    """A valid spec document for *task*'s record sets; keyword arguments override members."""

    def make(**overrides: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": "cleanroom-audit-spec/v1",
            "model": {"input": "X", "output": "probabilities", "output_kind": "probabilities"},
            "datasets": {
                "members": task.members.commitment(),
                "nonmembers": task.nonmembers.commitment(),
            },
            "attacks": [
                {"name": "loss-threshold", "threshold": {"policy": "split", "seed": 3}},
                {"name": "train-test-gap"},
            ],
            "attribute_inference": [{"column": SENSITIVE_COLUMN, "values": [0, 1]}],
            "confidence": 0.95,
            "delta": 0.0,
            "epsilon_claim": 1.0,
            "seed": 1,
        }
        doc.update(overrides)
        return doc

    return make
