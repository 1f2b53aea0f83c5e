"""Reading files a host may have placed: never through a link, only regular files,
never more than a bound. A clean room's data directory is the host's, so a file
there could be a link to something only the clean room should read (its memory
through ``/proc/self``), or a pipe that never answers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["read_regular_file"]


def read_regular_file(path: Path, max_bytes: int) -> bytes | None:
    """The contents of *path* if it is a regular file (not a link) of at most
    *max_bytes*; None otherwise, or if it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(max_bytes + 1)
    finally:
        os.close(fd)
    return data if len(data) <= max_bytes else None
