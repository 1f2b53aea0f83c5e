"""Argument defaults taken from the environment (the only place it is read)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "host", "port", "tee"]


def data_dir() -> Path:
    return Path(os.environ.get("CLEANROOM_DATA_DIR", ".cleanroom"))


def host() -> str:
    return os.environ.get("CLEANROOM_HOST", "127.0.0.1")


def port() -> int:
    return int(os.environ.get("CLEANROOM_PORT", "8000"))


def tee() -> str:
    return os.environ.get("CLEANROOM_TEE", "simulated")
