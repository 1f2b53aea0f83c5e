"""The bytes of worker answers the service holds at once, all workers together.

A worker's answer is received whole and decoded in the service before any
policy sees it, and each may be as large as ``max_output_bytes`` (1 GiB by
default). Every instance's workers live in the one service process, so
without a shared bound several models answering at once could exhaust its
memory. An answer that would take the total past the budget is refused
before it is read (``503 service-unavailable``), and its worker, left out of
step, is replaced.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cleanroom.errors import ConfigurationError, ServiceUnavailable

__all__ = ["DEFAULT_ANSWER_BUDGET", "AnswerBudget"]

DEFAULT_ANSWER_BUDGET = 2 * 1024**3


class AnswerBudget:
    def __init__(self, limit: int = DEFAULT_ANSWER_BUDGET) -> None:
        if limit <= 0:
            raise ConfigurationError("the answer budget must be positive")
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """*size* bytes for one answer while it is received and decoded."""
        with self._lock:
            if self.held + size > self.limit:
                raise ServiceUnavailable(
                    "the models' answers being received would exceed the service's memory "
                    "budget for them",
                    remedy="retry shortly",
                )
            self.held += size
        try:
            yield
        finally:
            with self._lock:
                self.held -= size
