"""ε lower bounds from a single training run (Steinke, Nasr & Jagielski, NeurIPS 2023).

m canaries are each included in training independently with probability ½.
After training the auditor guesses "in" or "out" for r of them and abstains
on the rest; v guesses are right. If training is ε-DP, the number of right
guesses is stochastically dominated by Binomial(r, e^ε/(1 + e^ε)) (their
Theorem 3.1), so the p-value of (ε, 0) is f(v) = P[Binomial(r, q_ε) ≥ v].
With δ > 0 (their Theorem 5.2) the p-value becomes

    f(v) + 2·m·δ · max_{1 ≤ i ≤ v} (f(v - i) - f(v)) / i.

ε_LB is the largest ε whose p-value is still ≤ 1 - confidence: every smaller
ε is rejected at that level. Which canaries to guess on must be fixed before
the scores are seen (e.g. "the k₊ highest scores in, the k₋ lowest out");
:func:`one_run_guesses` applies such a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from scipy import optimize, special, stats

from cleanroom.audit._binomial import check_confidence
from cleanroom.errors import AuditError

__all__ = [
    "OneRunBound",
    "one_run_epsilon_lower_bound",
    "one_run_guesses",
    "one_run_p_value",
]

_EPSILON_SEARCH_LIMIT = 64.0


@dataclass(frozen=True)
class OneRunBound:
    kind: ClassVar[str] = "lower-bound"
    method: ClassVar[str] = "steinke-nasr-jagielski-2023-one-run"

    epsilon: float
    ceiling: float
    confidence: float
    delta: float
    canaries: int
    guesses: int
    correct: int

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "method": self.method,
            "epsilon": self.epsilon,
            "ceiling": self.ceiling,
            "confidence": self.confidence,
            "delta": self.delta,
            "canaries": self.canaries,
            "guesses": self.guesses,
            "correct": self.correct,
        }


def one_run_p_value(
    canaries: int, guesses: int, correct: int, epsilon: float, delta: float
) -> float:
    """Probability of ≥ *correct* right guesses under an (ε, δ)-DP null."""
    q = float(special.expit(epsilon))  # e^ε / (1 + e^ε)
    tail = float(stats.binom.sf(correct - 1, guesses, q))
    if delta == 0.0 or correct == 0:
        return min(tail, 1.0)
    i = np.arange(1, correct + 1)
    wider = stats.binom.sf(correct - i - 1, guesses, q)
    slope = float(np.max((wider - tail) / i))
    return min(tail + 2.0 * canaries * delta * slope, 1.0)


def _check(canaries: int, guesses: int, correct: int, delta: float) -> None:
    if not 0 <= correct <= guesses <= canaries:
        raise AuditError("need 0 <= correct <= guesses <= canaries")
    if not 0.0 <= delta < 1.0:
        raise AuditError(f"delta must be in [0, 1), got {delta}")


def _largest_rejected(
    canaries: int, guesses: int, correct: int, delta: float, significance: float
) -> float:
    def excess(eps: float) -> float:
        return significance - one_run_p_value(canaries, guesses, correct, eps, delta)

    if guesses == 0 or excess(0.0) <= 0.0:
        return 0.0
    if delta == 0.0:
        # P[Bin(r, q) >= v] = I_q(v, r - v + 1) (regularised incomplete beta),
        # so the q at which the tail equals the significance is a Beta quantile.
        q = float(special.betaincinv(correct, guesses - correct + 1, significance))
        return max(0.0, float(special.logit(q)))
    high = 1.0
    while excess(high) > 0.0:
        if high >= _EPSILON_SEARCH_LIMIT:
            return high
        high *= 2.0
    return float(optimize.brentq(excess, 0.0, high, xtol=1e-9))


def one_run_epsilon_lower_bound(
    canaries: int,
    guesses: int,
    correct: int,
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
) -> OneRunBound:
    """ε_LB of one training run with *canaries* canaries and *guesses* non-abstaining guesses."""
    check_confidence(confidence)
    _check(canaries, guesses, correct, delta)
    significance = 1.0 - confidence
    return OneRunBound(
        epsilon=_largest_rejected(canaries, guesses, correct, delta, significance),
        ceiling=_largest_rejected(canaries, guesses, guesses, delta, significance),
        confidence=confidence,
        delta=delta,
        canaries=canaries,
        guesses=guesses,
        correct=correct,
    )


def one_run_guesses(
    scores: npt.ArrayLike, included: npt.ArrayLike, *, k_in: int, k_out: int
) -> tuple[int, int]:
    """(guesses, correct) of "the k_in highest scores are in, the k_out lowest are out".

    ``included`` is the canaries' true inclusion bits. A group whose boundary
    falls inside a run of equal scores leaves that run out (abstains on it):
    the guesses depend on the scores alone. Breaking the tie by position
    would make them depend on the order of the arrays, which a caller may
    have laid out by inclusion (non-members first, say); on tied scores
    that order alone would make every guess right.
    """
    s = np.asarray(scores, dtype=np.float64)
    bits = np.asarray(included).astype(np.bool_)
    if s.ndim != 1 or bits.shape != s.shape:
        raise AuditError("scores and included must be one-dimensional and of equal length")
    if k_in < 0 or k_out < 0 or k_in + k_out > s.size:
        raise AuditError("k_in + k_out must be between 0 and the number of canaries")
    if not np.isfinite(s).all():
        raise AuditError("scores must be finite")
    ascending = np.sort(s)
    guessed_in = np.zeros(s.size, dtype=np.bool_)
    guessed_out = np.zeros(s.size, dtype=np.bool_)
    if k_in:
        cut = ascending[s.size - k_in]  # the k_in-th highest score
        guessed_in = s > cut if np.count_nonzero(s >= cut) > k_in else s >= cut
    if k_out:
        cut = ascending[k_out - 1]  # the k_out-th lowest score
        guessed_out = s < cut if np.count_nonzero(s <= cut) > k_out else s <= cut
    correct = int(np.count_nonzero(bits & guessed_in)) + int(np.count_nonzero(~bits & guessed_out))
    return int(np.count_nonzero(guessed_in)) + int(np.count_nonzero(guessed_out)), correct
