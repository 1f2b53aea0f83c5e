"""ε lower bounds from attack *scores*, with the threshold search paid for.

Convention: a higher score means "more likely a member"; the attack says
"member" when ``score >= threshold``.

Picking the threshold that maximises ε_LB on the same data that bounds it is
a multiple-comparisons error: on a mechanism with ε = 0 (1 000 + 1 000
normal scores, 95 %) it raises a false alarm in ≈ 7 % of runs, above the
nominal 5 % and some twenty times the ≈ 0.3 % of a fixed threshold. This
module therefore offers only policies whose bound stays valid at the stated
confidence:

* :class:`FixedThreshold` — one threshold fixed before the data; no search.
* :class:`BonferroniThresholds` — K candidate thresholds fixed before the
  data; each is bounded at confidence 1 - (1 - confidence)/K and the best is
  reported (Bonferroni: the K bounds hold jointly with probability ≥
  ``confidence``). The reported bound is labelled with ``confidence``, the
  level it holds at: being the maximum of K bounds, it fails whenever any of
  them does, so the per-candidate level would overstate it.
* :class:`SplitThreshold` — a seeded random split (default: a quarter of each
  group for selection): the threshold (and, if
  allowed, the direction) is searched on the selection part only and the
  bound is computed on the other part, which the search never saw.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cleanroom.audit._binomial import check_confidence, clopper_pearson_upper
from cleanroom.audit.epsilon import (
    ConfusionCounts,
    EpsilonLowerBound,
    epsilon_from_rates,
    epsilon_lower_bound_from_counts,
)
from cleanroom.errors import AuditError

__all__ = [
    "BonferroniThresholds",
    "FixedThreshold",
    "SplitThreshold",
    "ThresholdPolicy",
    "counts_at_thresholds",
    "epsilon_lower_bound_from_scores",
    "per_test_confidence",
    "threshold_policy_from_json",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# A spec is I-JSON: its integers stay within what a double holds exactly.
_MAX_SEED = 2**53 - 1


@dataclass(frozen=True)
class FixedThreshold:
    value: float

    def to_json(self) -> dict[str, object]:
        return {"policy": "fixed", "value": self.value}


@dataclass(frozen=True)
class BonferroniThresholds:
    candidates: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        return {"policy": "bonferroni", "candidates": list(self.candidates)}


@dataclass(frozen=True)
class SplitThreshold:
    """Search on ``selection_fraction`` of each group, bound on the rest.

    ``both_directions`` lets the search also flip the score's sign (use it
    when nothing says in advance which neighbour scores higher).
    """

    # A quarter is enough to find a good threshold and leaves three quarters
    # for the bound (at N = 1000 per side it catches a Laplace mechanism whose
    # true sensitivity is twice the declared one in > 99 % of seeds; with half
    # for selection, ~94 %).
    selection_fraction: float = 0.25
    seed: int = 0
    both_directions: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "policy": "split",
            "selection_fraction": self.selection_fraction,
            "seed": self.seed,
            "both_directions": self.both_directions,
        }


ThresholdPolicy = FixedThreshold | BonferroniThresholds | SplitThreshold


def threshold_policy_from_json(doc: object) -> ThresholdPolicy:
    """Parse the ``threshold`` member of an audit spec; unknown members are refused."""
    if not isinstance(doc, dict):
        raise AuditError("threshold policy must be an object")
    policy = doc.get("policy")
    allowed: dict[str, set[str]] = {
        "fixed": {"policy", "value"},
        "bonferroni": {"policy", "candidates"},
        "split": {"policy", "selection_fraction", "seed", "both_directions"},
    }
    if policy not in allowed:
        raise AuditError(f"unknown threshold policy {policy!r}")
    unknown = set(doc) - allowed[str(policy)]
    if unknown:
        raise AuditError(f"unknown threshold policy members: {sorted(unknown)}")
    try:
        if policy == "fixed":
            return FixedThreshold(_finite(doc["value"]))
        if policy == "bonferroni":
            candidates = doc["candidates"]
            if not isinstance(candidates, list) or not candidates:
                raise AuditError("bonferroni needs a non-empty list of candidates")
            return BonferroniThresholds(tuple(_finite(c) for c in candidates))
        seed = doc.get("seed", 0)
        both = doc.get("both_directions", False)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= _MAX_SEED:
            raise AuditError("split seed must be an integer between 0 and 2**53 - 1")
        if not isinstance(both, bool):
            raise AuditError("both_directions must be a boolean")
        return SplitThreshold(_finite(doc.get("selection_fraction", 0.25)), seed, both)
    except KeyError as missing:
        raise AuditError(f"threshold policy {policy!r} lacks {missing}") from None


def _finite(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuditError("threshold values must be numbers")
    out = float(value)
    if not np.isfinite(out):
        raise AuditError("threshold values must be finite")
    return out


def per_test_confidence(policy: ThresholdPolicy | None, confidence: float) -> float:
    """The level each Clopper-Pearson bound of *policy* is computed at.

    ``confidence`` itself except for Bonferroni over K candidates, where it is
    1 - (1 - confidence)/K. Bounds derived from the same counts at the chosen
    threshold (e.g. a μ-GDP bound) must be computed at this level too.
    """
    if isinstance(policy, BonferroniThresholds) and policy.candidates:
        return 1.0 - (1.0 - confidence) / len(policy.candidates)
    return confidence


def _scores(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise AuditError(f"{name} must be a non-empty one-dimensional array")
    if not np.isfinite(arr).all():
        raise AuditError(f"{name} must be finite")
    return arr


def counts_at_thresholds(
    member_scores: FloatArray, nonmember_scores: FloatArray, thresholds: FloatArray
) -> tuple[IntArray, IntArray]:
    """(true positives, false positives) of ``score >= t`` for every t."""
    m_sorted = np.sort(member_scores)
    n_sorted = np.sort(nonmember_scores)
    tp = m_sorted.size - np.searchsorted(m_sorted, thresholds, side="left")
    fp = n_sorted.size - np.searchsorted(n_sorted, thresholds, side="left")
    return tp.astype(np.int64), fp.astype(np.int64)


def _bound_at(
    member_scores: FloatArray,
    nonmember_scores: FloatArray,
    threshold: float,
    *,
    delta: float,
    confidence: float,
    method: str,
) -> EpsilonLowerBound:
    tp, fp = counts_at_thresholds(member_scores, nonmember_scores, np.array([threshold]))
    counts = ConfusionCounts(
        true_positives=int(tp[0]),
        false_negatives=member_scores.size - int(tp[0]),
        false_positives=int(fp[0]),
        true_negatives=nonmember_scores.size - int(fp[0]),
    )
    return epsilon_lower_bound_from_counts(
        counts,
        delta=delta,
        confidence=confidence,
        method=method,
        threshold=threshold,
    )


def _best_threshold(
    member_scores: FloatArray, nonmember_scores: FloatArray, *, delta: float, confidence: float
) -> tuple[float, float]:
    """The threshold with the largest ε_LB on these scores (for selection only)."""
    candidates = np.union1d(member_scores, nonmember_scores)
    tp, fp = counts_at_thresholds(member_scores, nonmember_scores, candidates)
    alpha = (1.0 - confidence) / 2.0
    fpr_ub = clopper_pearson_upper(fp, nonmember_scores.size, alpha)
    fnr_ub = clopper_pearson_upper(member_scores.size - tp, member_scores.size, alpha)
    eps = epsilon_from_rates(fpr_ub, fnr_ub, delta)
    best = int(np.argmax(eps))
    return float(candidates[best]), float(eps[best])


def _split(
    scores: FloatArray, fraction: float, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    order = rng.permutation(scores.size)
    cut = round(scores.size * fraction)
    if cut < 1 or cut >= scores.size:
        raise AuditError("too few samples to split into a selection and a bounding part")
    return scores[order[:cut]], scores[order[cut:]]


def epsilon_lower_bound_from_scores(
    member_scores: npt.ArrayLike,
    nonmember_scores: npt.ArrayLike,
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
    policy: ThresholdPolicy | None = None,
) -> EpsilonLowerBound:
    """ε_LB for the attack "member iff score ≥ threshold", threshold chosen by *policy*.

    The default policy is :class:`SplitThreshold` with seed 0. The returned
    ``confidence`` is the level the returned ε_LB holds at: always the
    *confidence* passed in, also for Bonferroni, whose rates are bounded at
    the per-candidate level (:func:`per_test_confidence`). The ``ceiling`` is
    the ceiling of the part actually bounded, at the level its rates were
    bounded at. When a split search chose the reversed direction the method
    ends in ``-reversed`` and the rule was "member iff score <= threshold".
    """
    check_confidence(confidence)
    members = _scores(member_scores, "member_scores")
    nonmembers = _scores(nonmember_scores, "nonmember_scores")
    chosen = policy if policy is not None else SplitThreshold()
    if isinstance(chosen, FixedThreshold):
        return _bound_at(
            members,
            nonmembers,
            chosen.value,
            delta=delta,
            confidence=confidence,
            method="clopper-pearson-fixed-threshold",
        )
    if isinstance(chosen, BonferroniThresholds):
        k = len(chosen.candidates)
        if k == 0:
            raise AuditError("bonferroni needs at least one candidate threshold")
        per_test = per_test_confidence(chosen, confidence)
        candidates = np.asarray(chosen.candidates, dtype=np.float64)
        tp, fp = counts_at_thresholds(members, nonmembers, candidates)
        alpha = (1.0 - per_test) / 2.0
        eps = epsilon_from_rates(
            clopper_pearson_upper(fp, nonmembers.size, alpha),
            clopper_pearson_upper(members.size - tp, members.size, alpha),
            delta,
        )
        selected = _bound_at(
            members,
            nonmembers,
            float(candidates[int(np.argmax(eps))]),
            delta=delta,
            confidence=per_test,
            method=f"clopper-pearson-bonferroni-{k}-thresholds",
        )
        # Its rates are bounded at the per-candidate level, but the maximum of
        # k bounds holds only at the family-wise level: report that one.
        return dataclasses.replace(selected, confidence=confidence)
    if not 0.0 < chosen.selection_fraction < 1.0:
        raise AuditError("selection_fraction must be in (0, 1)")
    rng = np.random.default_rng(chosen.seed)
    sel_m, bound_m = _split(members, chosen.selection_fraction, rng)
    sel_n, bound_n = _split(nonmembers, chosen.selection_fraction, rng)
    threshold, best = _best_threshold(sel_m, sel_n, delta=delta, confidence=confidence)
    sign = 1.0
    if chosen.both_directions:
        flipped_t, flipped_best = _best_threshold(
            -sel_m, -sel_n, delta=delta, confidence=confidence
        )
        if flipped_best > best:
            sign, threshold = -1.0, flipped_t
    bound = _bound_at(
        sign * bound_m,
        sign * bound_n,
        threshold,
        delta=delta,
        confidence=confidence,
        method="clopper-pearson-split-threshold",
    )
    if sign < 0:
        # -score >= t is score <= -t: report the threshold in the caller's units.
        bound = dataclasses.replace(
            bound, threshold=-threshold, method="clopper-pearson-split-threshold-reversed"
        )
    return bound
