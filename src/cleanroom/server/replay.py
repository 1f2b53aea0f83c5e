"""Refusal of replayed sealed requests.

Each sealed request has a fresh HPKE ``enc`` and a creation time. A request
is accepted once, and only within the replay window. The cache is scoped to
the clean room's HPKE key, which lives in this process only: after a restart
the key changes and old requests cannot be opened at all, so the cache need
not survive restarts or be shared between replicas (each has its own key).
"""

from __future__ import annotations

import threading
import time

from cleanroom.errors import ReplayDetected

__all__ = ["ReplayGuard"]


class ReplayGuard:
    def __init__(self, window_s: int) -> None:
        self._window = window_s
        self._seen: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def check(self, token: bytes, created: int, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if created < now - self._window:
            raise ReplayDetected(
                f"the sealed request is older than the {self._window} s replay window"
            )
        if created > now + 60:
            raise ReplayDetected("the sealed request is dated in the future; check the clock")
        with self._lock:
            if token in self._seen:
                raise ReplayDetected("this sealed request was already received")
            self._seen[token] = created + self._window + 60
            if len(self._seen) > 4096:
                self._seen = {k: v for k, v in self._seen.items() if v >= now}
