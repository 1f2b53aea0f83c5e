"""Attribute inference on a model whose answers are set by the test.

Records are [id, a] with the sensitive attribute a in column 1. For a member
the model answers confidently for the true label only when a is filled in
with the member's real value; for a non-member it answers ½ / ½ whatever is
filled in, so the attack's losses tie and the first declared value is
guessed (the documented rule). The baseline is fitted on the seeded
reference half of the non-members (``default_rng(seed).permutation``, first
half) and every non-member accuracy is measured on the other half only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from cleanroom.audit import LabelledRecords
from cleanroom.audit.attribute import run_attribute_inference
from cleanroom.audit.spec import AttributeSpec, ModelBinding

BINDING = ModelBinding(input="X", output="p", output_kind="probabilities")
SEED = 4
# Members: 15 with (label 0, a = 0), then 5 with (label 1, a = 1).
MEMBER_A = np.r_[np.zeros(15), np.ones(5)]
# Non-members: label = a, 13 zeros and 7 ones.
NONMEMBER_A = np.r_[np.zeros(13), np.ones(7)]


def _records(a: np.ndarray, offset: int) -> LabelledRecords:
    ids = np.arange(offset, offset + a.size)
    return LabelledRecords.of(np.stack([ids, a], axis=1), a.astype(np.int64))


MEMBERS = _records(MEMBER_A, 0)
NONMEMBERS = _records(NONMEMBER_A, 100)


def predict(inputs: dict[str, npt.NDArray[np.generic]]) -> Mapping[str, npt.NDArray[np.generic]]:
    x = np.asarray(inputs["X"], dtype=np.float64)
    ids, filled = x[:, 0].astype(int), x[:, 1]
    out = np.full((x.shape[0], 2), 0.5)
    for row, (i, value) in enumerate(zip(ids, filled, strict=True)):
        if i < 100:  # a member: confident in its label only under its real a
            label = int(MEMBER_A[i])
            right = value == MEMBER_A[i]
            out[row, label] = 0.9 if right else 0.2
            out[row, 1 - label] = 1.0 - out[row, label]
    return {"p": out}


def test_accuracies_on_members_non_members_and_the_baseline() -> None:
    result = run_attribute_inference(
        AttributeSpec(column=1, values=(0.0, 1.0)),
        predict,
        BINDING,
        MEMBERS,
        NONMEMBERS,
        seed=SEED,
    )
    order = np.random.default_rng(SEED).permutation(20)
    reference, held_out = order[:10], order[10:]
    assert (result.members, result.nonmembers) == (20, 10)
    # Members: the model reveals a exactly.
    assert result.attack_accuracy_members == 1.0
    # Non-members: ties, so the first declared value (0) is guessed.
    assert result.attack_accuracy_nonmembers == float(np.mean(NONMEMBER_A[held_out] == 0))
    # Baseline: the most frequent a per label among the reference non-members.
    # There a = label and both labels occur, so the baseline guesses a = label:
    # right on every member and every held-out non-member.
    assert set(NONMEMBER_A[reference]) == {0.0, 1.0}
    assert result.baseline_accuracy_members == 1.0
    assert result.baseline_accuracy_nonmembers == 1.0
    assert result.membership_gap == 1.0 - result.attack_accuracy_nonmembers
