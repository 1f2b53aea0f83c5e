"""Keep request-sized buffers in the heap between requests (glibc only).

Every request allocates a few buffers of its own size (the body, the opened
plaintext, the sealed response). With glibc's defaults a buffer of 600 KB is
served by a fresh ``mmap`` or from heap memory that was trimmed and handed back
to the kernel after the previous request, so each request page-faults its
buffers in again: on this service's 600 KB request path that costs more than
the AES-GCM over the same bytes. Fixing the mmap threshold (which also turns
off glibc's dynamic adjustment of it) and raising the trim threshold lets
freed buffers be reused as they are. Buffers of 32 MiB and more (sealed
models, datasets) are still mapped and unmapped on their own, so they go back
to the kernel as soon as they are freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_request_buffers"]

log = logging.getLogger("cleanroom.server")

# mallopt(3) parameter numbers, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 128 * 1024 * 1024


def keep_request_buffers() -> bool:
    """Tune glibc's allocator for this process; False (and no change) elsewhere."""
    if platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name, use_errno=True)
    done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not done:
        log.warning("glibc refused the allocator settings; request buffers are page-faulted anew")
    return done
