"""Remembered decisions of one compiled policy, keyed by everything it can see.

A :class:`DecisionCache` belongs to one :class:`~cleanroom.policy.PolicyBundle`
(one module text, so one digest) and one entrypoint. Its key is the canonical
JSON of the document the engine is given, already cut down to the paths the
plan can read (:mod:`cleanroom.policy._plan`); the bundle only uses a cache
when the plan calls no non-deterministic built-in. The decision is then a
pure function of the key: same key, same plan, same answer.

Only decisions the engine reached are stored (allowed, or denied by the
policy with its reason); an evaluation error is never remembered.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any, Generic, TypeVar

__all__ = ["MAX_ENTRIES", "MAX_KEY_BYTES", "DecisionCache", "cache_key"]

#: Decisions kept per entrypoint; the least recently used goes first.
MAX_ENTRIES = 1024
#: Documents larger than this (as canonical JSON) are not remembered.
MAX_KEY_BYTES = 8192

T = TypeVar("T")


def cache_key(document: dict[str, Any]) -> str | None:
    """The canonical JSON of a checked document, or ``None`` if it is too large.

    Members sorted, no whitespace: two documents get the same key exactly
    when the engine would see the same values (lists and tuples are both
    arrays to it; ``1`` and ``1.0`` and ``true`` stay apart).
    """
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text if len(text) <= MAX_KEY_BYTES else None


class DecisionCache(Generic[T]):
    """A bounded, thread-safe LRU map from :func:`cache_key` to a decision."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: str, decision: T) -> None:
        with self._lock:
            self._entries[key] = decision
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
