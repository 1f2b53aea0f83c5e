"""The membership audit on a model whose every answer is set by the test.

The model answers, for record i, probability p_i for class 0 (all labels are
0), so each record's cross-entropy loss -ln p_i and whether it is classified
correctly (p_i > ½) are known in advance, and so are every attack's confusion
counts. The bounds are then recomputed here with scipy at the per-attack
level 1 - (1 - confidence)/A (docs/privacy-audits.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats

from cleanroom.audit import AuditSpec, LabelledRecords, run_membership_audit
from cleanroom.errors import AuditError

# (p for class 0, how many) per set. Loss threshold τ = 0.5: loss ≤ τ iff p ≥ e^-0.5 ≈ 0.61.
MEMBERS = ((0.9, 60), (0.6, 20), (0.3, 20))
NONMEMBERS = ((0.9, 15), (0.6, 25), (0.3, 60))
# loss-threshold at τ = 0.5: members 60 in / 40 out; non-members 15 in / 85 out.
LOSS_COUNTS = (60, 40, 15, 85)
# train-test-gap (correct iff p > ½): members 80 / 20; non-members 40 / 60.
GAP_COUNTS = (80, 20, 40, 60)


def _records(groups: tuple[tuple[float, int], ...], offset: int) -> LabelledRecords:
    n = sum(count for _, count in groups)
    features = np.zeros((n, 2), dtype=np.float32)
    features[:, 0] = np.arange(offset, offset + n)
    return LabelledRecords.of(features, np.zeros(n, dtype=np.int64))


def _probabilities() -> dict[int, float]:
    table: dict[int, float] = {}
    index = 0
    for groups in (MEMBERS, NONMEMBERS):
        for p, count in groups:
            for _ in range(count):
                table[index] = p
                index += 1
    return table


TABLE = _probabilities()


def predict(inputs: dict[str, npt.NDArray[np.generic]]) -> Mapping[str, npt.NDArray[np.generic]]:
    ids = np.asarray(inputs["X"], dtype=np.float64)[:, 0].astype(int)
    p = np.array([TABLE[int(i)] for i in ids])
    return {"probabilities": np.stack([p, 1.0 - p], axis=1)}


MEMBER_SET = _records(MEMBERS, 0)
NONMEMBER_SET = _records(NONMEMBERS, len(MEMBER_SET))


def _spec(attacks: list[dict[str, Any]], **overrides: Any) -> AuditSpec:
    doc: dict[str, Any] = {
        "format": "cleanroom-audit-spec/v1",
        "model": {"input": "X", "output": "probabilities", "output_kind": "probabilities"},
        "datasets": {
            "members": MEMBER_SET.commitment(),
            "nonmembers": NONMEMBER_SET.commitment(),
        },
        "attacks": attacks,
        "confidence": 0.95,
        "delta": 0.0,
        "epsilon_claim": 1.0,
        "seed": 0,
    }
    doc.update(overrides)
    return AuditSpec.from_json(doc)


def _cp_upper(k: int, n: int, alpha: float) -> float:
    return 1.0 if k >= n else float(stats.beta.ppf(1.0 - alpha, k + 1, n - k))


def _reference(counts: tuple[int, int, int, int], confidence: float) -> float:
    tp, fn, fp, tn = counts
    alpha = (1.0 - confidence) / 2.0
    fpr, fnr = _cp_upper(fp, fp + tn, alpha), _cp_upper(fn, tp + fn, alpha)
    return max(0.0, math.log((1.0 - fnr) / fpr), math.log((1.0 - fpr) / fnr))


LOSS_FIXED = {"name": "loss-threshold", "threshold": {"policy": "fixed", "value": 0.5}}
GAP = {"name": "train-test-gap"}


def _counts(bound: Any) -> tuple[int, int, int, int]:
    c = bound.counts
    return (c.true_positives, c.false_negatives, c.false_positives, c.true_negatives)


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_each_of_two_attacks_is_bounded_at_the_bonferroni_level(confidence: float) -> None:
    # The weaker attack comes first: the aggregate must not depend on the order.
    spec = _spec([GAP, LOSS_FIXED], confidence=confidence)
    result = run_membership_audit(spec, predict, MEMBER_SET, NONMEMBER_SET)
    per_attack = 1.0 - (1.0 - confidence) / 2
    gap, loss = result.attacks
    assert (loss.name, gap.name) == ("loss-threshold", "train-test-gap")
    # "loss <= 0.5" in loss units is "score >= -0.5" on score = -loss.
    assert _counts(loss.bound) == LOSS_COUNTS
    assert loss.bound.threshold == -0.5
    assert _counts(gap.bound) == GAP_COUNTS
    assert (gap.accuracy_members, gap.accuracy_nonmembers) == (0.8, 0.4)
    for attack, counts in ((loss, LOSS_COUNTS), (gap, GAP_COUNTS)):
        assert attack.bound.confidence == pytest.approx(per_attack)
        assert attack.bound.epsilon == pytest.approx(_reference(counts, per_attack), rel=1e-9)
    # The certificate's ε_LB is the larger of the two, with its name and estimate.
    assert loss.bound.epsilon > gap.bound.epsilon
    strongest = loss
    assert result.epsilon_lower_bound == strongest.bound.epsilon
    assert result.strongest_attack == strongest.name
    body = result.to_json()
    assert body["estimate"] == strongest.bound.estimate.to_json()
    assert body["ceiling"] == max(loss.bound.ceiling, gap.bound.ceiling)
    assert body["confidence"] == confidence


def test_a_single_attack_is_bounded_at_the_specs_confidence() -> None:
    result = run_membership_audit(_spec([GAP]), predict, MEMBER_SET, NONMEMBER_SET)
    (gap,) = result.attacks
    assert gap.bound.confidence == 0.95
    assert gap.bound.epsilon == pytest.approx(_reference(GAP_COUNTS, 0.95), rel=1e-9)


def test_bonferroni_candidates_are_given_in_loss_units() -> None:
    # Candidates 0.05 (nothing has loss that small), 0.5 and 3.0 (everything):
    # only 0.5 separates, and it is reported in score units (-0.5).
    attack = {
        "name": "loss-threshold",
        "threshold": {"policy": "bonferroni", "candidates": [0.05, 0.5, 3.0]},
    }
    result = run_membership_audit(_spec([attack, GAP]), predict, MEMBER_SET, NONMEMBER_SET)
    loss = result.attacks[0]
    assert loss.bound.threshold == -0.5
    assert _counts(loss.bound) == LOSS_COUNTS
    per_candidate = 1.0 - (1.0 - 0.975) / 3
    alpha = (1.0 - per_candidate) / 2.0
    assert loss.bound.fpr_upper == pytest.approx(_cp_upper(15, 100, alpha), rel=1e-9)


@pytest.mark.parametrize(
    ("claim_offset", "verdict"),
    [(-1e-9, "VIOLATION"), (0.0, "CONSISTENT"), (1e-9, "CONSISTENT")],
)
def test_the_verdict_compares_the_bound_with_the_claim(claim_offset: float, verdict: str) -> None:
    epsilon = run_membership_audit(
        _spec([GAP]), predict, MEMBER_SET, NONMEMBER_SET
    ).epsilon_lower_bound
    spec = _spec([GAP], epsilon_claim=epsilon + claim_offset)
    assert run_membership_audit(spec, predict, MEMBER_SET, NONMEMBER_SET).verdict == verdict


def test_the_ceiling_is_the_largest_any_attack_could_show() -> None:
    # A split attack bounds only three quarters of each set, so its ceiling is
    # below that of the gap attack, which bounds every record.
    split = {"name": "loss-threshold", "threshold": {"policy": "split", "seed": 5}}
    result = run_membership_audit(_spec([split, GAP]), predict, MEMBER_SET, NONMEMBER_SET)
    loss, gap = result.attacks
    assert loss.bound.counts.members == 75
    assert loss.bound.ceiling < gap.bound.ceiling
    assert result.ceiling == gap.bound.ceiling
    assert result.to_json()["ceiling"] == gap.bound.ceiling


@pytest.mark.parametrize("fraction", [0.01, 0.99])
def test_a_reference_or_scored_part_of_one_record_is_refused(fraction: float) -> None:
    # 100 non-members: 1 reference record leaves nothing to train on, 99 leave
    # one record to score; at least two are needed on each side.
    attack = {
        "name": "reference-model",
        "threshold": {"policy": "fixed", "value": 0.0},
        "reference_fraction": fraction,
    }
    with pytest.raises(AuditError, match="too few non-members"):
        run_membership_audit(
            _spec([attack]),
            predict,
            MEMBER_SET,
            NONMEMBER_SET,
            reference_trainer=lambda records, seed: predict,
        )


def _uninformed(records: LabelledRecords, seed: int) -> Any:
    """A reference model answering ½ / ½ for every record (loss ln 2)."""

    def answer(inputs: dict[str, npt.NDArray[np.generic]]) -> Mapping[str, npt.NDArray[np.generic]]:
        return {"probabilities": np.full((len(inputs["X"]), 2), 0.5)}

    return answer


@pytest.mark.parametrize("models", [1, 3])
def test_reference_losses_are_averaged_over_the_reference_models(models: int) -> None:
    # score = mean reference loss (ln 2) - target loss; at threshold 0 a member
    # is guessed iff its target loss is at most ln 2, i.e. p >= ½: 80 members.
    attack = {
        "name": "reference-model",
        "threshold": {"policy": "fixed", "value": 0.0},
        "reference_models": models,
    }
    result = run_membership_audit(
        _spec([attack]), predict, MEMBER_SET, NONMEMBER_SET, reference_trainer=_uninformed
    )
    (reference,) = result.attacks
    assert reference.bound.counts.true_positives == 80
    assert reference.bound.counts.members == 100
    # Half the non-members train the reference models and are not scored.
    assert reference.bound.counts.nonmembers == 50
