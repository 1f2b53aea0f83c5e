"""A model runner wrapper that records how long each ``run`` takes."""

from __future__ import annotations

import time

from cleanroom.runtime.base import ModelRunner, ModelSignature, Tensors
from cleanroom.runtime.sandbox.supervisor import SandboxedRunner

__all__ = ["TimedRunner"]


class TimedRunner:
    """Delegates to *inner*; appends each ``run``'s duration in ms to *samples*.

    With *in_worker*, a sandboxed runner's report of the model's own run time
    inside its worker (``run_timed``) is appended there, in ms.
    """

    def __init__(
        self, inner: ModelRunner, samples: list[float], in_worker: list[float] | None = None
    ) -> None:
        self._inner = inner
        self._samples = samples
        self._in_worker = in_worker

    @property
    def signature(self) -> ModelSignature:
        return self._inner.signature

    def ready(self) -> bool:
        return self._inner.ready()

    def run(self, inputs: Tensors) -> Tensors:
        start = time.perf_counter()
        try:
            if self._in_worker is None or not isinstance(self._inner, SandboxedRunner):
                return self._inner.run(inputs)
            outputs, run_ns = self._inner.run_timed(inputs)
            if run_ns is not None:
                self._in_worker.append(run_ns / 1e6)
            return outputs
        finally:
            self._samples.append((time.perf_counter() - start) * 1000)

    def close(self) -> None:
        self._inner.close()
