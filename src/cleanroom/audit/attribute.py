"""Attribute inference (Yeom et al., CSF 2018, §5; Fredrikson et al. 2015).

For a sensitive feature column with a known set of values, the attack fills
each candidate value into the record, queries the model and guesses the
value under which the record's true label has the lowest loss. A model that
memorised its training records lets this attack do better on members than on
non-members, and better than a baseline that never queries the model.

The baseline guesses, for each label, the attribute value most frequent
among the *reference* half of the non-members (a seeded split); accuracies
on non-members are measured on the other half only, so the baseline is never
scored on the records it was fitted to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from cleanroom.audit.data import LabelledRecords
from cleanroom.audit.model_queries import PredictFn, class_probabilities, cross_entropy
from cleanroom.audit.spec import AttributeSpec, ModelBinding
from cleanroom.errors import AuditError

__all__ = ["AttributeInferenceResult", "run_attribute_inference"]


@dataclass(frozen=True)
class AttributeInferenceResult:
    """Aggregates only: accuracies and counts, never a per-record guess."""

    kind: ClassVar[str] = "empirical"

    column: int
    members: int
    nonmembers: int
    attack_accuracy_members: float
    attack_accuracy_nonmembers: float
    baseline_accuracy_members: float
    baseline_accuracy_nonmembers: float

    @property
    def membership_gap(self) -> float:
        """Attack accuracy on members minus on non-members."""
        return self.attack_accuracy_members - self.attack_accuracy_nonmembers

    @property
    def gain_over_baseline(self) -> float:
        """Attack accuracy on members minus the model-free baseline's."""
        return self.attack_accuracy_members - self.baseline_accuracy_members

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "column": self.column,
            "members": self.members,
            "nonmembers": self.nonmembers,
            "attack_accuracy_members": self.attack_accuracy_members,
            "attack_accuracy_nonmembers": self.attack_accuracy_nonmembers,
            "baseline_accuracy_members": self.baseline_accuracy_members,
            "baseline_accuracy_nonmembers": self.baseline_accuracy_nonmembers,
            "membership_gap": self.membership_gap,
            "gain_over_baseline": self.gain_over_baseline,
        }


def _value_index(records: LabelledRecords, attribute: AttributeSpec) -> npt.NDArray[np.intp]:
    if attribute.column >= records.features.shape[1]:
        raise AuditError(f"attribute column {attribute.column} is outside the features")
    column = records.features[:, attribute.column]
    candidates = np.asarray(attribute.values, dtype=np.float32)
    matches = column[:, None] == candidates[None, :]
    if not matches.any(axis=1).all():
        raise AuditError(
            f"attribute column {attribute.column} holds values outside the declared ones"
        )
    return np.asarray(np.argmax(matches, axis=1), dtype=np.intp)


def _attack_guesses(
    predict_fn: PredictFn,
    binding: ModelBinding,
    records: LabelledRecords,
    attribute: AttributeSpec,
) -> npt.NDArray[np.intp]:
    k = len(attribute.values)
    filled = np.repeat(records.features[None, :, :], k, axis=0)
    for i, value in enumerate(attribute.values):
        filled[i, :, attribute.column] = np.float32(value)
    flat = filled.reshape(k * len(records), records.features.shape[1])
    probabilities = class_probabilities(predict_fn, binding, flat)
    losses = cross_entropy(probabilities, np.tile(records.labels, k)).reshape(k, len(records))
    # Ties go to the first declared value: a fixed rule, independent of membership.
    return np.asarray(np.argmin(losses, axis=0), dtype=np.intp)


def _baseline_table(
    labels: npt.NDArray[np.int64], values: npt.NDArray[np.intp], n_values: int
) -> dict[int, int]:
    overall = int(np.argmax(np.bincount(values, minlength=n_values)))
    table: dict[int, int] = {}
    for label in np.unique(labels):
        table[int(label)] = int(np.argmax(np.bincount(values[labels == label], minlength=n_values)))
    table[-1] = overall
    return table


def _baseline_guesses(table: dict[int, int], labels: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    return np.array([table.get(int(y), table[-1]) for y in labels], dtype=np.intp)


def run_attribute_inference(
    attribute: AttributeSpec,
    predict_fn: PredictFn,
    binding: ModelBinding,
    members: LabelledRecords,
    nonmembers: LabelledRecords,
    *,
    seed: int,
) -> AttributeInferenceResult:
    if len(nonmembers) < 2:
        raise AuditError("attribute inference needs at least two non-members")
    member_truth = _value_index(members, attribute)
    nonmember_truth = _value_index(nonmembers, attribute)
    order = np.random.default_rng(seed).permutation(len(nonmembers))
    half = len(nonmembers) // 2
    reference, held_out = order[:half], order[half:]
    table = _baseline_table(
        nonmembers.labels[reference], nonmember_truth[reference], len(attribute.values)
    )
    evaluated = nonmembers.subset(held_out)
    attack_m = _attack_guesses(predict_fn, binding, members, attribute)
    attack_n = _attack_guesses(predict_fn, binding, evaluated, attribute)
    return AttributeInferenceResult(
        column=attribute.column,
        members=len(members),
        nonmembers=len(evaluated),
        attack_accuracy_members=float(np.mean(attack_m == member_truth)),
        attack_accuracy_nonmembers=float(np.mean(attack_n == nonmember_truth[held_out])),
        baseline_accuracy_members=float(
            np.mean(_baseline_guesses(table, members.labels) == member_truth)
        ),
        baseline_accuracy_nonmembers=float(
            np.mean(_baseline_guesses(table, evaluated.labels) == nonmember_truth[held_out])
        ),
    )
