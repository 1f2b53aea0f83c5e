"""Zeroing buffers that held plaintext (a model, inputs) before they are released."""

from __future__ import annotations

import ctypes

__all__ = ["wipe"]


def wipe(buffer: bytearray) -> None:
    """Zero *buffer* in place, then release it (no buffer of zeros as large is allocated)."""
    if buffer:
        view = (ctypes.c_char * len(buffer)).from_buffer(buffer)
        ctypes.memset(view, 0, len(buffer))
        del view
    buffer.clear()
