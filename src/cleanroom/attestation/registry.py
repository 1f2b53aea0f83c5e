"""The registry of platform verifiers: by platform name, or by the bytes.

SEV-SNP is built in. Intel TDX and SGX come from
:mod:`cleanroom.attestation.dcap`, imported lazily on first use: that package
must expose ``TdxVerifier`` and ``SgxVerifier``, classes constructed without
arguments that implement :class:`~cleanroom.attestation.platform.PlatformVerifier`.
Until it is installed those platforms are reported as unsupported.
"""

from __future__ import annotations

import importlib
import threading

from cleanroom.attestation.platform import PlatformVerifier
from cleanroom.attestation.snp.verify import SnpVerifier
from cleanroom.errors import EvidenceFormatError

__all__ = ["detect_platform", "platforms", "verifier_for"]

_DCAP_MODULE = "cleanroom.attestation.dcap"
_DCAP_CLASSES = {"tdx": "TdxVerifier", "sgx": "SgxVerifier"}
_ORDER = ("sev-snp", "tdx", "sgx")

_lock = threading.Lock()
_verifiers: dict[str, PlatformVerifier] = {"sev-snp": SnpVerifier()}


def _load_dcap(platform: str) -> PlatformVerifier | None:
    try:
        module = importlib.import_module(_DCAP_MODULE)
    except ImportError:
        return None
    cls = getattr(module, _DCAP_CLASSES[platform], None)
    if cls is None:
        return None
    verifier = cls()
    if not isinstance(verifier, PlatformVerifier) or verifier.platform != platform:
        return None
    return verifier


def _get(platform: str) -> PlatformVerifier | None:
    with _lock:
        if platform not in _verifiers and platform in _DCAP_CLASSES:
            loaded = _load_dcap(platform)
            if loaded is not None:
                _verifiers[platform] = loaded
        return _verifiers.get(platform)


def platforms() -> tuple[str, ...]:
    """The platforms whose verifier is available here."""
    return tuple(p for p in _ORDER if _get(p) is not None)


def verifier_for(platform: str) -> PlatformVerifier:
    """The verifier for *platform*; :class:`EvidenceFormatError` if there is none."""
    verifier = _get(platform)
    if verifier is None:
        raise EvidenceFormatError(
            f"no verifier for platform {platform!r}",
            failures=[f"platform: got {platform!r}, expected one of {list(platforms())}"],
        )
    return verifier


def detect_platform(data: bytes) -> str:
    """The platform whose evidence format *data* has (by the bytes alone)."""
    for platform in _ORDER:
        verifier = _get(platform)
        if verifier is not None and verifier.detect(data):
            return platform
    raise EvidenceFormatError(
        "the evidence is not in a known format",
        failures=[f"format: {len(data)} bytes are not a report or quote of {list(platforms())}"],
    )
