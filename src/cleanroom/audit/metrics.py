"""Membership-inference metrics: AUC, advantage, TPR at low FPR.

These are *empirical* descriptions of an attack on this sample, not bounds.
The advantage max_t (TPR - FPR) and the TPR at a fixed FPR are maximised over
thresholds on the same data, so they are optimistic; certify with ε_LB.

Convention: higher score means "more likely a member".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from cleanroom.audit.thresholds import counts_at_thresholds
from cleanroom.errors import AuditError

__all__ = ["MIN_TAIL_COUNT", "MembershipMetrics", "TprAtFpr", "membership_metrics"]

# A TPR at FPR a is reported only when the non-members' tail holds at least
# this many records (n·a ≥ 10); below that the empirical FPR cannot resolve a
# and the "TPR" would be one or two lucky records.
MIN_TAIL_COUNT = 10

DEFAULT_FPRS = (0.01, 0.001)


@dataclass(frozen=True)
class TprAtFpr:
    fpr: float
    tpr: float | None
    status: Literal["ok", "insufficient-samples"]

    def to_json(self) -> dict[str, object]:
        return {"fpr": self.fpr, "tpr": self.tpr, "status": self.status}


@dataclass(frozen=True)
class MembershipMetrics:
    kind: ClassVar[str] = "empirical"

    auc: float
    advantage: float
    tpr_at_fpr: tuple[TprAtFpr, ...]
    members: int
    nonmembers: int

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "auc": self.auc,
            "advantage": self.advantage,
            "tpr_at_fpr": [t.to_json() for t in self.tpr_at_fpr],
            "members": self.members,
            "nonmembers": self.nonmembers,
        }


def _scores(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise AuditError(f"{name} must be a non-empty one-dimensional array")
    if not np.isfinite(arr).all():
        raise AuditError(f"{name} must be finite")
    return arr


def membership_metrics(
    member_scores: npt.ArrayLike,
    nonmember_scores: npt.ArrayLike,
    *,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
    min_tail_count: int = MIN_TAIL_COUNT,
) -> MembershipMetrics:
    m = _scores(member_scores, "member_scores")
    n = _scores(nonmember_scores, "nonmember_scores")
    # AUC = P(member score > non-member score) + ½ P(tie): the Mann-Whitney U
    # statistic over n_m·n_n, from mid-ranks of the pooled sample.
    ranks = stats.rankdata(np.concatenate([m, n]))
    u = float(ranks[: m.size].sum()) - m.size * (m.size + 1) / 2.0
    auc = u / (m.size * n.size)

    thresholds = np.append(np.union1d(m, n), np.inf)
    tp, fp = counts_at_thresholds(m, n, thresholds)
    tpr = tp / m.size
    fpr = fp / n.size
    advantage = float(max(0.0, np.max(tpr - fpr)))

    rows: list[TprAtFpr] = []
    for alpha in fprs:
        if not 0.0 < alpha < 1.0:
            raise AuditError(f"FPR levels must be in (0, 1), got {alpha}")
        if n.size * alpha < min_tail_count:
            rows.append(TprAtFpr(alpha, None, "insufficient-samples"))
            continue
        allowed = fpr <= alpha
        rows.append(TprAtFpr(alpha, float(np.max(tpr[allowed])), "ok"))
    return MembershipMetrics(
        auc=auc,
        advantage=advantage,
        tpr_at_fpr=tuple(rows),
        members=m.size,
        nonmembers=n.size,
    )
