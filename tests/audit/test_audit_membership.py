"""The membership audit end to end on ONNX models run with ONNX Runtime."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from cleanroom.audit import AuditSpec, LabelledRecords, run_membership_audit
from cleanroom.audit.local import load_onnx_model
from cleanroom.audit.reference import logistic_regression_trainer
from cleanroom.errors import AuditError, ModelRejected

SpecFactory = Callable[..., dict[str, Any]]
Tensors = Mapping[str, npt.NDArray[np.generic]]
TabularTask = Any  # conftest.TabularTask: members, nonmembers, reference_pool
SENSITIVE_COLUMN = 0  # as generated in conftest


def test_overfit_model_violates_a_small_claim(
    task: TabularTask, overfit_model: Path, spec_doc: SpecFactory
) -> None:
    spec = AuditSpec.from_json(spec_doc(epsilon_claim=0.5))
    predict, _ = load_onnx_model(overfit_model)
    result = run_membership_audit(spec, predict, task.members, task.nonmembers)
    assert result.verdict == "VIOLATION"
    assert result.epsilon_lower_bound > 0.5
    assert result.epsilon_lower_bound <= result.ceiling
    by_name = {a.name: a for a in result.attacks}
    gap = by_name["train-test-gap"]
    # A fully grown tree classifies all its training records correctly.
    assert gap.accuracy_members == 1.0
    assert gap.accuracy_nonmembers is not None
    assert gap.accuracy_nonmembers < 0.8
    loss = by_name["loss-threshold"]
    assert loss.metrics is not None
    assert loss.metrics.auc > 0.6
    # Two attacks: each bounded at 1 - 0.05/2 so the maximum holds at 95 %.
    assert all(a.bound.confidence == pytest.approx(0.975) for a in result.attacks)
    (attribute,) = result.attribute_inference
    assert attribute.column == SENSITIVE_COLUMN
    assert attribute.membership_gap > 0.05


def test_independent_model_is_consistent(
    task: TabularTask, private_model: Path, spec_doc: SpecFactory
) -> None:
    # This model never saw the "members": any ε_LB > 0 would be a false alarm.
    spec = AuditSpec.from_json(spec_doc(epsilon_claim=0.0))
    predict, _ = load_onnx_model(private_model)
    result = run_membership_audit(spec, predict, task.members, task.nonmembers)
    assert result.epsilon_lower_bound == 0.0
    assert result.verdict == "CONSISTENT"


def test_only_aggregates_leave_the_audit(
    task: TabularTask, overfit_model: Path, spec_doc: SpecFactory
) -> None:
    spec = AuditSpec.from_json(spec_doc())
    predict, _ = load_onnx_model(overfit_model)
    doc = run_membership_audit(spec, predict, task.members, task.nonmembers).to_json()

    def longest_list(node: object) -> int:
        if isinstance(node, dict):
            return max([0, *(longest_list(v) for v in node.values())])
        if isinstance(node, list):
            return max([len(node), *(longest_list(v) for v in node)])
        return 0

    # No per-record arrays: nothing list-shaped longer than the handful of
    # attacks, intervals and FPR levels.
    assert longest_list(doc) <= 4
    assert len(json.dumps(doc)) < 8_000


@pytest.mark.parametrize("seed", [0, 2**32, 2**53 - 1], ids=["0", "2**32", "2**53-1"])
def test_reference_model_attack(
    task: TabularTask, overfit_model: Path, spec_doc: SpecFactory, seed: int
) -> None:
    """Any seed a spec may hold trains the reference models (their trainer takes 32 bits)."""
    attacks = [{"name": "reference-model", "threshold": {"policy": "split"}, "reference_models": 2}]
    spec = AuditSpec.from_json(spec_doc(attacks=attacks, attribute_inference=[], seed=seed))
    predict, _ = load_onnx_model(overfit_model)
    result = run_membership_audit(
        spec,
        predict,
        task.members,
        task.nonmembers,
        reference_trainer=logistic_regression_trainer(spec.model, classes=2),
    )
    (attack,) = result.attacks
    # Half of the non-members trained the reference models and are not scored.
    assert attack.nonmembers == 200
    assert attack.members == 400
    assert attack.bound.epsilon > 0.0
    assert attack.metrics is not None
    assert attack.metrics.auc > 0.6


def test_reference_attack_needs_a_trainer(
    task: TabularTask, overfit_model: Path, spec_doc: SpecFactory
) -> None:
    attacks = [{"name": "reference-model", "threshold": {"policy": "split"}}]
    spec = AuditSpec.from_json(spec_doc(attacks=attacks))
    predict, _ = load_onnx_model(overfit_model)
    with pytest.raises(AuditError, match="reference trainer"):
        run_membership_audit(spec, predict, task.members, task.nonmembers)


def _constant(probabilities: list[float]) -> Callable[[Tensors], Tensors]:
    def predict(inputs: Tensors) -> Tensors:
        n = next(iter(inputs.values())).shape[0]
        return {"probabilities": np.tile(np.asarray(probabilities, np.float32), (n, 1))}

    return predict


def _swap_member_records(task: TabularTask) -> tuple[LabelledRecords, LabelledRecords]:
    return task.nonmembers, task.members


def _tampered_members(task: TabularTask) -> tuple[LabelledRecords, LabelledRecords]:
    features = task.members.features.copy()
    features[0, 1] += 1.0
    return LabelledRecords.of(features, task.members.labels), task.nonmembers


def _dropped_nonmember(task: TabularTask) -> tuple[LabelledRecords, LabelledRecords]:
    return task.members, task.nonmembers.subset(np.arange(1, len(task.nonmembers)))


@pytest.mark.parametrize(
    ("name", "records", "predict", "spec_overrides", "match"),
    [
        ("swapped sets", _swap_member_records, None, {}, "commitment"),
        ("tampered member", _tampered_members, None, {}, "commitment"),
        ("dropped non-member", _dropped_nonmember, None, {}, "commitment"),
        (
            "missing output",
            None,
            lambda _: {"scores": np.zeros((1, 2))},
            {},
            "no output named",
        ),
        (
            "probabilities not summing to one",
            None,
            _constant([0.9, 0.9]),
            {},
            "sum to 1",
        ),
        ("negative probabilities", None, _constant([-0.5, 1.5]), {}, "outside"),
        (
            "wrong output shape",
            None,
            lambda inputs: {"probabilities": np.zeros(3)},
            {},
            "shape",
        ),
        ("non-finite output", None, _constant([float("nan"), 1.0]), {}, "non-finite"),
        (
            "model raises",
            None,
            lambda inputs: 1 / 0,
            {},
            "ZeroDivisionError",
        ),
        (
            "attribute outside declared values",
            None,
            _constant([0.5, 0.5]),
            {"attribute_inference": [{"column": 1, "values": [0, 1]}]},
            "outside the declared",
        ),
        (
            "attribute column out of range",
            None,
            _constant([0.5, 0.5]),
            {"attribute_inference": [{"column": 99, "values": [0, 1]}]},
            "outside the features",
        ),
    ],
)
def test_refusals(
    task: TabularTask,
    overfit_model: Path,
    spec_doc: SpecFactory,
    name: str,
    records: Callable[[TabularTask], tuple[LabelledRecords, LabelledRecords]] | None,
    predict: Callable[[Tensors], Tensors] | None,
    spec_overrides: dict[str, Any],
    match: str,
) -> None:
    spec = AuditSpec.from_json(spec_doc(**spec_overrides))
    members, nonmembers = records(task) if records else (task.members, task.nonmembers)
    model = predict if predict is not None else load_onnx_model(overfit_model)[0]
    with pytest.raises(AuditError, match=match):
        run_membership_audit(spec, model, members, nonmembers)


def test_label_outside_the_models_classes(
    task: TabularTask, overfit_model: Path, spec_doc: SpecFactory
) -> None:
    labels = task.members.labels.copy()
    labels[0] = 2  # a third class against a two-class model
    members = LabelledRecords.of(task.members.features, labels)
    datasets = {"members": members.commitment(), "nonmembers": task.nonmembers.commitment()}
    spec = AuditSpec.from_json(spec_doc(datasets=datasets))
    with pytest.raises(AuditError, match="outside the model's classes"):
        run_membership_audit(spec, load_onnx_model(overfit_model)[0], members, task.nonmembers)


def test_unloadable_model_is_rejected(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ModelRejected):
        load_onnx_model(bogus)


def test_logits_are_softmaxed(task: TabularTask, spec_doc: SpecFactory) -> None:
    def logits(inputs: Tensors) -> Tensors:
        x = np.asarray(inputs["X"])
        # A perfect memoriser in logit space: confident on the right class for members.
        return {"probabilities": np.stack([x[:, 1] * 0.0, x[:, 1] * 0.0], axis=1)}

    doc = spec_doc(model={"input": "X", "output": "probabilities", "output_kind": "logits"})
    result = run_membership_audit(AuditSpec.from_json(doc), logits, task.members, task.nonmembers)
    # Constant logits: both classes at ½, no membership signal at all.
    assert result.epsilon_lower_bound == 0.0
