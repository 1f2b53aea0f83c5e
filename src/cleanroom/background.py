"""Work that can overlap the caller's own: a small shared pool of daemon threads.

Used for digests of large ciphertexts: ``hashlib`` releases the GIL while it
hashes, so the SHA-256 of a 600 KB request runs on the second core while the
caller opens the envelope or waits for the network, instead of after it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["in_background"]

P = ParamSpec("P")
T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cleanroom-background")
        return _pool


def in_background(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Start ``fn(*args, **kwargs)`` on the shared pool; ``.result()`` waits for it.

    Exceptions are raised by ``.result()``, in the caller's thread.
    """
    return _shared_pool().submit(fn, *args, **kwargs)
