"""Summaries of timing samples, and the resident memory of processes (Linux /proc)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import psutil

__all__ = [
    "children_pids",
    "peak_rss_bytes",
    "ratio_interval",
    "reset_peak_rss",
    "rss_bytes",
    "summary",
    "tree_peak_rss_bytes",
    "tree_reset_peak_rss",
    "tree_rss_bytes",
]


def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """Median, p95 and spread of a list of latencies in milliseconds."""
    if not samples_ms:
        raise ValueError("no samples")
    a = np.asarray(samples_ms, dtype=np.float64)
    q1, median, q3, p95 = np.percentile(a, [25, 50, 75, 95])
    return {
        "n": float(a.size),
        "median_ms": float(median),
        "p95_ms": float(p95),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "iqr_ms": float(q3 - q1),
    }


def ratio_interval(
    numerator_ms: Sequence[float],
    denominator_ms: Sequence[float],
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap interval of median(numerator) / median(denominator).

    Each sample set is resampled with replacement on its own (the two
    variants ran in separate calls, so their samples are not paired); the
    interval is the percentile interval of the resampled ratios. On a noisy
    host it says whether a ratio near a limit is distinguishable from it.
    """
    if not numerator_ms or not denominator_ms:
        raise ValueError("no samples")
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    rng = np.random.default_rng(seed)
    top = np.asarray(numerator_ms, dtype=np.float64)
    bottom = np.asarray(denominator_ms, dtype=np.float64)
    top_medians = np.median(rng.choice(top, size=(resamples, top.size)), axis=1)
    bottom_medians = np.median(rng.choice(bottom, size=(resamples, bottom.size)), axis=1)
    low, high = np.percentile(top_medians / bottom_medians, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def _status_kib(pid: int, field: str) -> int:
    # proc(5): VmHWM is the peak resident set size, VmRSS the current one, in kB.
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ValueError(f"{field} not in /proc/{pid}/status")


def peak_rss_bytes(pid: int | None = None) -> int:
    return _status_kib(pid or os.getpid(), "VmHWM") * 1024


def rss_bytes(pid: int | None = None) -> int:
    return _status_kib(pid or os.getpid(), "VmRSS") * 1024


def reset_peak_rss(pid: int | None = None) -> None:
    """Set VmHWM back to the current RSS (proc(5), /proc/pid/clear_refs value 5)."""
    Path(f"/proc/{pid or os.getpid()}/clear_refs").write_text("5")


def children_pids(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _tree(pid: int) -> list[int]:
    return [pid, *children_pids(pid)]


def tree_reset_peak_rss(pid: int) -> None:
    for p in _tree(pid):
        try:
            reset_peak_rss(p)
        except (FileNotFoundError, ProcessLookupError):
            continue


def tree_peak_rss_bytes(pid: int) -> int:
    """Sum of the peaks of *pid* and its descendants: an upper bound of their joint peak."""
    total = 0
    for p in _tree(pid):
        try:
            total += peak_rss_bytes(p)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def tree_rss_bytes(pid: int) -> int:
    total = 0
    for p in _tree(pid):
        try:
            total += rss_bytes(p)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total
