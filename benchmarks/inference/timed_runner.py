"""A model runner wrapper that records how long each ``run`` takes."""

from __future__ import annotations

import time

from cleanroom.runtime.base import ModelRunner, ModelSignature, Tensors

__all__ = ["TimedRunner"]


class TimedRunner:
    """Delegates to *inner*; appends each ``run``'s duration in ms to *samples*."""

    def __init__(self, inner: ModelRunner, samples: list[float]) -> None:
        self._inner = inner
        self._samples = samples

    @property
    def signature(self) -> ModelSignature:
        return self._inner.signature

    def ready(self) -> bool:
        return self._inner.ready()

    def run(self, inputs: Tensors) -> Tensors:
        start = time.perf_counter()
        try:
            return self._inner.run(inputs)
        finally:
            self._samples.append((time.perf_counter() - start) * 1000)

    def close(self) -> None:
        self._inner.close()
