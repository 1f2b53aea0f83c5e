"""The model membership audit: run a spec's attacks on a model and two record sets.

Attacks (Yeom et al., CSF 2018):

* ``loss-threshold`` — "member iff loss ≤ τ"; τ chosen by the spec's
  threshold policy (fixed τ, Bonferroni over fixed candidates, or split).
  Thresholds in the spec are in loss units.
* ``train-test-gap`` — "member iff the model classifies the record
  correctly": Yeom's bounded-loss adversary with the 0-1 loss, whose
  advantage is the train/test accuracy gap. No threshold, nothing to tune.
* ``reference-model`` — difficulty calibration (Watson et al., ICLR 2022):
  score = mean loss of reference models - loss of the target model, where the
  reference models are trained in the room on a seeded part of the
  non-members that is then excluded from scoring. Needs a trainer; meant for
  scikit-learn-sized tabular models.

Every attack yields an ε lower bound. With A attacks in a spec each is
bounded at confidence 1 - (1 - confidence)/A (Bonferroni), so the reported
maximum holds at the spec's confidence. Only aggregates leave this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt

from cleanroom.audit.attribute import AttributeInferenceResult, run_attribute_inference
from cleanroom.audit.data import LabelledRecords
from cleanroom.audit.epsilon import EpsilonLowerBound, epsilon_lower_bound
from cleanroom.audit.metrics import MembershipMetrics, membership_metrics
from cleanroom.audit.model_queries import PredictFn, class_probabilities, cross_entropy
from cleanroom.audit.spec import AttackSpec, AuditSpec
from cleanroom.audit.thresholds import (
    BonferroniThresholds,
    FixedThreshold,
    ThresholdPolicy,
    epsilon_lower_bound_from_scores,
)
from cleanroom.errors import AuditError

__all__ = [
    "AttackResult",
    "AuditResult",
    "ReferenceTrainer",
    "Verdict",
    "run_membership_audit",
]

Verdict = Literal["CONSISTENT", "VIOLATION"]

ReferenceTrainer = Callable[[LabelledRecords, int], PredictFn]
"""Train a reference model on (records, seed) and return its predict function."""


@dataclass(frozen=True)
class AttackResult:
    name: str
    bound: EpsilonLowerBound
    metrics: MembershipMetrics | None
    members: int
    nonmembers: int
    decision_rule: str
    accuracy_members: float | None = None
    accuracy_nonmembers: float | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "attack": self.name,
            "members": self.members,
            "nonmembers": self.nonmembers,
            "decision_rule": self.decision_rule,
            "epsilon_lower_bound": self.bound.to_json(),
        }
        if self.metrics is not None:
            out["metrics"] = self.metrics.to_json()
        if self.accuracy_members is not None and self.accuracy_nonmembers is not None:
            out["accuracy_members"] = self.accuracy_members
            out["accuracy_nonmembers"] = self.accuracy_nonmembers
        return out


@dataclass(frozen=True)
class AuditResult:
    """Everything a certificate states, and nothing per record."""

    kind: ClassVar[str] = "membership-audit"

    spec_digest: str
    members_commitment: str
    nonmembers_commitment: str
    members: int
    nonmembers: int
    confidence: float
    delta: float
    epsilon_claim: float
    attacks: tuple[AttackResult, ...]
    attribute_inference: tuple[AttributeInferenceResult, ...]

    @property
    def epsilon_lower_bound(self) -> float:
        return max(a.bound.epsilon for a in self.attacks)

    @property
    def ceiling(self) -> float:
        """The largest ε any of these attacks could have certified on this data."""
        return max(a.bound.ceiling for a in self.attacks)

    @property
    def strongest_attack(self) -> str:
        return max(self.attacks, key=lambda a: a.bound.epsilon).name

    @property
    def verdict(self) -> Verdict:
        """VIOLATION when ε_LB exceeds the claim; CONSISTENT is not proof of privacy."""
        return "VIOLATION" if self.epsilon_lower_bound > self.epsilon_claim else "CONSISTENT"

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "spec_digest": self.spec_digest,
            "datasets": {
                "members": {"commitment": self.members_commitment, "count": self.members},
                "nonmembers": {
                    "commitment": self.nonmembers_commitment,
                    "count": self.nonmembers,
                },
            },
            "confidence": self.confidence,
            "delta": self.delta,
            "epsilon_claim": self.epsilon_claim,
            "epsilon_lower_bound": {
                "kind": "lower-bound",
                "epsilon": self.epsilon_lower_bound,
                "method": f"max over {len(self.attacks)} attacks, Bonferroni-adjusted",
                "strongest_attack": self.strongest_attack,
                "confidence": self.confidence,
            },
            "ceiling": self.ceiling,
            # The strongest attack's Bayesian estimate, labelled as such: it is
            # context for the bound, never a bound itself.
            "estimate": max(self.attacks, key=lambda a: a.bound.epsilon).bound.estimate.to_json(),
            "verdict": self.verdict,
            "attacks": [a.to_json() for a in self.attacks],
            "attribute_inference": [a.to_json() for a in self.attribute_inference],
        }


def _in_score_units(policy: ThresholdPolicy, sign: float) -> ThresholdPolicy:
    """Map a policy given in loss units onto scores = sign·loss."""
    if isinstance(policy, FixedThreshold):
        return FixedThreshold(sign * policy.value)
    if isinstance(policy, BonferroniThresholds):
        return BonferroniThresholds(tuple(sign * t for t in policy.candidates))
    return policy


def _scored_attack(
    name: str,
    decision_rule: str,
    member_scores: npt.NDArray[np.float64],
    nonmember_scores: npt.NDArray[np.float64],
    policy: ThresholdPolicy,
    spec: AuditSpec,
    confidence: float,
) -> AttackResult:
    bound = epsilon_lower_bound_from_scores(
        member_scores,
        nonmember_scores,
        delta=spec.delta,
        confidence=confidence,
        policy=policy,
    )
    return AttackResult(
        name=name,
        bound=bound,
        metrics=membership_metrics(member_scores, nonmember_scores),
        members=member_scores.size,
        nonmembers=nonmember_scores.size,
        decision_rule=decision_rule,
    )


def _reference_attack(
    attack: AttackSpec,
    spec: AuditSpec,
    predict_fn: PredictFn,
    members: LabelledRecords,
    nonmembers: LabelledRecords,
    trainer: ReferenceTrainer | None,
    confidence: float,
) -> AttackResult:
    if trainer is None:
        raise AuditError("the reference-model attack needs a reference trainer")
    if attack.threshold is None:
        raise AuditError("the reference-model attack needs a threshold policy")
    rng = np.random.default_rng([spec.seed, 1])
    order = rng.permutation(len(nonmembers))
    cut = round(len(nonmembers) * attack.reference_fraction)
    if cut < 2 or cut > len(nonmembers) - 2:
        raise AuditError("too few non-members to train reference models and still score")
    reference, scored = nonmembers.subset(order[:cut]), nonmembers.subset(order[cut:])
    ref_losses_m = np.zeros(len(members))
    ref_losses_n = np.zeros(len(scored))
    for k in range(attack.reference_models):
        if attack.reference_models == 1:
            training = reference
        else:
            pick = rng.choice(len(reference), size=max(2, len(reference) // 2), replace=False)
            training = reference.subset(pick)
        ref_predict = trainer(training, _reference_seed(spec.seed, k))
        ref_losses_m += cross_entropy(
            class_probabilities(ref_predict, spec.model, members.features), members.labels
        )
        ref_losses_n += cross_entropy(
            class_probabilities(ref_predict, spec.model, scored.features), scored.labels
        )
    ref_losses_m /= attack.reference_models
    ref_losses_n /= attack.reference_models
    target_m = cross_entropy(
        class_probabilities(predict_fn, spec.model, members.features), members.labels
    )
    target_n = cross_entropy(
        class_probabilities(predict_fn, spec.model, scored.features), scored.labels
    )
    return _scored_attack(
        attack.name,
        "member iff score >= threshold; score = mean reference-model loss - target loss",
        ref_losses_m - target_m,
        ref_losses_n - target_n,
        attack.threshold,
        spec,
        confidence,
    )


def _reference_seed(seed: int, k: int) -> int:
    """The *k*-th reference model's seed: 32 bits (what trainers such as
    scikit-learn accept), derived from the spec's seed of up to 53 bits."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def run_membership_audit(
    spec: AuditSpec,
    predict_fn: PredictFn,
    members: LabelledRecords,
    nonmembers: LabelledRecords,
    *,
    reference_trainer: ReferenceTrainer | None = None,
) -> AuditResult:
    """Run every attack and attribute-inference entry of *spec*; return aggregates only.

    Refuses (``AuditError``) record sets whose commitments differ from the
    spec's: the data must be the data the spec was fixed for.
    """
    if members.commitment() != spec.members_commitment:
        raise AuditError("the member set does not match the commitment in the audit spec")
    if nonmembers.commitment() != spec.nonmembers_commitment:
        raise AuditError("the non-member set does not match the commitment in the audit spec")
    per_attack_confidence = 1.0 - (1.0 - spec.confidence) / len(spec.attacks)

    probs_m = class_probabilities(predict_fn, spec.model, members.features)
    probs_n = class_probabilities(predict_fn, spec.model, nonmembers.features)
    loss_m = cross_entropy(probs_m, members.labels)
    loss_n = cross_entropy(probs_n, nonmembers.labels)

    results: list[AttackResult] = []
    for attack in spec.attacks:
        if attack.name == "loss-threshold":
            if attack.threshold is None:
                raise AuditError("the loss-threshold attack needs a threshold policy")
            # score = -loss, so "loss ≤ τ" is "score ≥ -τ".
            results.append(
                _scored_attack(
                    attack.name,
                    "member iff score >= threshold; score = -loss (cross-entropy)",
                    -loss_m,
                    -loss_n,
                    _in_score_units(attack.threshold, -1.0),
                    spec,
                    per_attack_confidence,
                )
            )
        elif attack.name == "train-test-gap":
            correct_m = np.argmax(probs_m, axis=1) == members.labels
            correct_n = np.argmax(probs_n, axis=1) == nonmembers.labels
            bound = epsilon_lower_bound(
                correct_m,
                correct_n,
                delta=spec.delta,
                confidence=per_attack_confidence,
            )
            results.append(
                AttackResult(
                    name=attack.name,
                    bound=bound,
                    metrics=None,
                    members=len(members),
                    nonmembers=len(nonmembers),
                    decision_rule="member iff the model classifies the record correctly",
                    accuracy_members=float(correct_m.mean()),
                    accuracy_nonmembers=float(correct_n.mean()),
                )
            )
        else:
            results.append(
                _reference_attack(
                    attack,
                    spec,
                    predict_fn,
                    members,
                    nonmembers,
                    reference_trainer,
                    per_attack_confidence,
                )
            )

    attributes = tuple(
        run_attribute_inference(a, predict_fn, spec.model, members, nonmembers, seed=spec.seed)
        for a in spec.attribute_inference
    )
    return AuditResult(
        spec_digest=spec.digest,
        members_commitment=spec.members_commitment,
        nonmembers_commitment=spec.nonmembers_commitment,
        members=len(members),
        nonmembers=len(nonmembers),
        confidence=spec.confidence,
        delta=spec.delta,
        epsilon_claim=spec.epsilon_claim,
        attacks=tuple(results),
        attribute_inference=attributes,
    )
