"""Refusal of replayed sealed requests.

Each sealed request has a fresh HPKE ``enc`` and a creation time. A request
is accepted once, and only within the replay window. The cache is scoped to
the clean room's HPKE key, which lives in this process only: after a restart
the key changes and old requests cannot be opened at all, so the cache need
not survive restarts or be shared between replicas (each has its own key).
"""

from __future__ import annotations

import heapq
import threading
import time

from cleanroom.errors import ReplayDetected

__all__ = ["FUTURE_SKEW_S", "ReplayGuard"]

# How far ahead of the clean room's clock a sender's clock may be.
FUTURE_SKEW_S = 60


class ReplayGuard:
    """Remembers each accepted token until its date no longer passes the window check.

    Tokens are forgotten in order of expiry (a heap), a few at a time on each
    check, so a check costs O(log n) however many tokens are remembered; the
    memory held is the request rate times the window.
    """

    def __init__(self, window_s: int) -> None:
        self._window = window_s
        self._seen: dict[bytes, float] = {}
        self._expiries: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()

    def check(self, token: bytes, created: int, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if created < now - self._window:
            raise ReplayDetected(
                f"the sealed request is older than the {self._window} s replay window"
            )
        if created > now + FUTURE_SKEW_S:
            raise ReplayDetected("the sealed request is dated in the future; check the clock")
        with self._lock:
            self._forget_expired(now)
            if token in self._seen:
                raise ReplayDetected("this sealed request was already received")
            expiry = created + self._window + FUTURE_SKEW_S
            self._seen[token] = expiry
            heapq.heappush(self._expiries, (expiry, token))

    def _forget_expired(self, now: float) -> None:
        # An expired token's date fails the window check: it needs no remembering.
        while self._expiries and self._expiries[0][0] < now:
            _, token = heapq.heappop(self._expiries)
            del self._seen[token]
