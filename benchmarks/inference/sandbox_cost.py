"""Inference inside the sandbox against bare ONNX Runtime in this process.

The seeds' own comparison: the same model and input, run by the service's
sandbox :class:`~cleanroom.runtime.sandbox.supervisor.Supervisor` (a confined
worker process, shared-memory hand-off) and by an ``InferenceSession`` here,
in alternating blocks so both see the same machine. Each sandboxed call also
reports the model's own run time inside the worker, so the inference in the
sandbox and the hand-off to it are told apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
from benchmarks.inference.interleave import interleaved
from benchmarks.inference.measure import ratio_interval, summary
from benchmarks.inference.workload import example_input, feed

from cleanroom.runtime.sandbox.supervisor import Supervisor
from cleanroom.wire.formats import ModelFormat

__all__ = ["measure_sandbox"]


def _timed(call: Callable[[], object]) -> Callable[[int], list[float]]:
    def run(n: int) -> list[float]:
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            call()
            samples.append((time.perf_counter() - start) * 1000)
        return samples

    return run


def measure_sandbox(
    supervisor: Supervisor,
    model: bytes,
    *,
    n: int,
    block: int,
    warmup: int,
    seed: int,
    settle_s: float = 0.0,
) -> dict[str, Any]:
    """Sandboxed / bare medians on *model*; loads it into *supervisor* and unloads it after."""
    inputs = feed(example_input())
    try:
        runner = supervisor.load("benchmark", ModelFormat.ONNX, model, supervisor.limits)
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        sandboxed = runner.run(inputs)
        bare = session.run(None, inputs)
        # Same model, same input: the same logits up to float rounding (the worker's
        # session options change the kernels' summation order, not the result).
        expected = np.asarray(bare[0], np.float32)
        scale = float(np.abs(expected).max()) or 1.0
        np.testing.assert_allclose(
            np.asarray(sandboxed["logits"], np.float32), expected, rtol=0, atol=1e-4 * scale
        )
        in_worker: list[float] = []  # one per sandboxed call, warm-up included

        def sandboxed_call() -> None:
            _, run_ns = runner.run_timed(inputs)
            if run_ns is None:
                raise RuntimeError("the worker reported no run time")
            in_worker.append(run_ns / 1e6)

        variants = {
            "bare": _timed(lambda: session.run(None, inputs)),
            "sandboxed": _timed(sandboxed_call),
        }
        samples = interleaved(
            variants, n=n, block=block, warmup=warmup, seed=seed, settle_s=settle_s
        )
    finally:
        supervisor.unload("benchmark")
    samples["in_worker"] = in_worker[warmup:]
    samples["handoff"] = [
        a - b for a, b in zip(samples["sandboxed"], samples["in_worker"], strict=True)
    ]
    result: dict[str, Any] = {k: summary(v) for k, v in samples.items()}
    bare_ms = result["bare"]["median_ms"]
    # The target: the model's run in the worker against the same run in process.
    result["inference_ratio_median"] = result["in_worker"]["median_ms"] / bare_ms
    result["inference_ratio_interval"] = list(
        ratio_interval(samples["in_worker"], samples["bare"], seed=seed)
    )
    # The whole call into the sandbox, hand-off included (that is in the fixed cost too).
    result["ratio_median"] = result["sandboxed"]["median_ms"] / bare_ms
    return result
