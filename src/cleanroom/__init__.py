"""Confidential Clean Room: confidential machine-learning inference in a TEE.

The public SDK::

    from cleanroom import Client, Secret, ModelFormat, AttestationPolicy

Names are imported on first use, so that ``import cleanroom.runtime`` (in a
sandboxed worker) or ``import cleanroom.errors`` does not load the SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cleanroom import errors
    from cleanroom.attestation import AttestationPolicy
    from cleanroom.client import Client, Instance, Secret
    from cleanroom.wire.formats import ModelFormat

__all__ = ["AttestationPolicy", "Client", "Instance", "ModelFormat", "Secret", "errors"]
__version__ = "0.1.0"

_EXPORTS = {
    "AttestationPolicy": "cleanroom.attestation",
    "Client": "cleanroom.client",
    "Instance": "cleanroom.client",
    "Secret": "cleanroom.client",
    "ModelFormat": "cleanroom.wire.formats",
}


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module("cleanroom.errors")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cleanroom' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
