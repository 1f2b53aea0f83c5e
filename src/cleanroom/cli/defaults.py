"""Argument defaults taken from the environment (the only place it is read).

Each default is returned as text, the way argparse treats a string default: it
goes through the argument's ``type`` like a typed value, so a bad value in the
environment is refused with the same one-line message as a bad flag.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = [
    "ENVIRONMENT",
    "TEE_KINDS",
    "add_tee_argument",
    "data_dir",
    "host",
    "port",
    "port_number",
    "positive_int",
    "tee",
    "tee_kind",
]

# Every variable read, with the flag whose default it sets (the README lists them).
ENVIRONMENT = {
    "CLEANROOM_DATA_DIR": "--data-dir",
    "CLEANROOM_HOST": "--host",
    "CLEANROOM_PORT": "--port",
    "CLEANROOM_TEE": "--tee",
}


def data_dir() -> Path:
    return Path(os.environ.get("CLEANROOM_DATA_DIR", ".cleanroom"))


def host() -> str:
    return os.environ.get("CLEANROOM_HOST", "127.0.0.1")


def port() -> str:
    return os.environ.get("CLEANROOM_PORT", "8000")


def tee() -> str:
    return os.environ.get("CLEANROOM_TEE", "simulated")


def port_number(text: str) -> int:
    """An argparse ``type``: a TCP port, 1-65535 (0 is refused: the port must be known)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port number from 1 to 65535 (set by --port or CLEANROOM_PORT)"
        )
    return value


TEE_KINDS = ("simulated", "sev-snp", "tdx")


def tee_kind(text: str) -> str:
    """An argparse ``type``: one of :data:`TEE_KINDS` (argparse checks no choices on defaults)."""
    if text not in TEE_KINDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a TEE this service runs on ({', '.join(TEE_KINDS)}; "
            "set by --tee or CLEANROOM_TEE)"
        )
    return text


def add_tee_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--tee``, defaulting to ``CLEANROOM_TEE`` (or the simulated TEE)."""
    parser.add_argument("--tee", type=tee_kind, default=tee(), choices=TEE_KINDS, help=help_text)


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number above zero."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above zero")
    return value
