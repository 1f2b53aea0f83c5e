"""A/B(/C) interleaving: the variants take turns in short blocks, in a shuffled order.

On shared, noisy cores a slow minute then hurts every variant alike, and a
variant's idle runtime threads (ONNX Runtime spins for a while after a run)
disturb the others only at block boundaries.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping

__all__ = ["concurrent_throughput", "interleaved"]

Sampler = Callable[[int], list[float]]


def interleaved(
    variants: Mapping[str, Sampler],
    *,
    n: int,
    block: int,
    warmup: int,
    seed: int,
    settle_s: float = 0.0,
) -> dict[str, list[float]]:
    """*n* samples per variant, taken *block* at a time, after *warmup* discarded runs each.

    *settle_s* is an idle pause before each block: ONNX Runtime's threads keep
    spinning for tens of milliseconds after a run (measured: about 70 ms of CPU
    in the half second after the last one), which would slow the first runs of
    the next variant's block.
    """
    for sample in variants.values():
        sample(warmup)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    while any(len(s) < n for s in samples.values()):
        order = list(variants)
        rng.shuffle(order)
        for name in order:
            wanted = min(block, n - len(samples[name]))
            if wanted > 0:
                time.sleep(settle_s)
                samples[name] += variants[name](wanted)
    return samples


def concurrent_throughput(calls: list[Callable[[], None]], seconds: float) -> dict[str, float]:
    """Each call in its own thread, back to back for *seconds*; completed requests per second."""
    done = [0] * len(calls)
    errors: list[BaseException] = []
    start = time.perf_counter()
    deadline = start + seconds

    def loop(index: int) -> None:
        try:
            while time.perf_counter() < deadline:
                calls[index]()
                done[index] += 1
        except BaseException as exc:  # reported below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return {"requests": float(sum(done)), "seconds": time.perf_counter() - start}
