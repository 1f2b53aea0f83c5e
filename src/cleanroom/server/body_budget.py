"""The bytes of request bodies the service holds in memory at once, across requests.

A predict body is read whole before it is opened (it is one sealed message),
and each may be as large as ``max_request_bytes``. Each is counted from its
first byte until its answer is ready; a body that would take the total past
the budget is refused with ``503 service-unavailable`` as its bytes arrive, so
many large or slow bodies at once cannot exhaust the service's memory.
Used from the event loop only: no lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cleanroom.errors import ConfigurationError, ServiceUnavailable

__all__ = ["BodyBudget"]


class BodyBudget:
    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ConfigurationError("the request body budget must be positive")
        self.limit = limit
        self.held = 0

    @contextmanager
    def hold(self) -> Iterator[_Held]:
        """A tally for one body; everything it took is given back on exit."""
        held = _Held(self)
        try:
            yield held
        finally:
            self.held -= held.taken


class _Held:
    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.taken = 0

    def take(self, size: int) -> None:
        budget = self._budget
        if budget.held + size > budget.limit:
            raise ServiceUnavailable(
                "the clean room holds as many request bodies as its memory budget allows",
                remedy="retry shortly",
            )
        budget.held += size
        self.taken += size
