"""Exact binomial confidence bounds (Clopper-Pearson) and Jeffreys posteriors.

Clopper & Pearson (Biometrika 1934): for k successes in n trials, the
one-sided upper bound at level alpha is the (1 - alpha) quantile of
Beta(k + 1, n - k), and 1 when k = n. It is exact: it covers the true rate with
probability at least 1 - alpha for every rate, which is what a *bound* needs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

from cleanroom.errors import AuditError

__all__ = ["check_confidence", "clopper_pearson_lower", "clopper_pearson_upper"]

FloatArray = npt.NDArray[np.float64]
IntLike = int | float | npt.NDArray[np.integer] | npt.NDArray[np.floating]


def check_confidence(confidence: float) -> None:
    if not 0.5 <= confidence < 1.0:
        raise AuditError(f"confidence must be in [0.5, 1), got {confidence}")


def clopper_pearson_upper(k: IntLike, n: IntLike, alpha: float) -> FloatArray:
    """One-sided upper bound on a binomial rate: P(rate > bound) <= alpha."""
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    if n_arr.ndim == 0 and k_arr.size > n_arr + 1 and np.all(k_arr == np.round(k_arr)):
        # Many integer counts out of one n (a threshold sweep): tabulate the
        # n + 1 possible bounds once and index into the table.
        table = clopper_pearson_upper(np.arange(int(n_arr) + 1), n_arr, alpha)
        return np.asarray(table[np.clip(k_arr, 0, n_arr).astype(np.intp)], dtype=np.float64)
    # betaincinv(a, b, p) is the p-quantile of Beta(a, b) (scipy.stats.beta.ppf
    # without its per-call argument checking, which dominates in simulations).
    q = special.betaincinv(k_arr + 1.0, np.maximum(n_arr - k_arr, 1.0), 1.0 - alpha)
    return np.asarray(np.where(k_arr >= n_arr, 1.0, q), dtype=np.float64)


def clopper_pearson_lower(k: IntLike, n: IntLike, alpha: float) -> FloatArray:
    """One-sided lower bound on a binomial rate: P(rate < bound) <= alpha."""
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    return 1.0 - clopper_pearson_upper(n_arr - k_arr, n_arr, alpha)
