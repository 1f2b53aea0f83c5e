"""The verifier registry: by name, by bytes, and tolerant of missing DCAP."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cleanroom.attestation import registry
from cleanroom.attestation.platform import PlatformVerifier
from cleanroom.errors import EvidenceFormatError

REPORT = (
    Path(__file__).resolve().parents[1]
    / "assets/attestation/snp/ms-tav-milan-genoa-turin/milan_attestation_report.bin"
).read_bytes()


def test_snp_is_always_there() -> None:
    verifier = registry.verifier_for("sev-snp")
    assert isinstance(verifier, PlatformVerifier)
    assert verifier.platform == "sev-snp"
    assert "sev-snp" in registry.platforms()


def test_detect_snp_from_bytes() -> None:
    assert registry.detect_platform(REPORT) == "sev-snp"


@pytest.mark.parametrize("data", [b"", b"\x00" * 100, REPORT[:-1], b"\x09" + REPORT[1:]])
def test_unknown_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        registry.detect_platform(data)


def test_unknown_platform_is_refused() -> None:
    with pytest.raises(EvidenceFormatError):
        registry.verifier_for("nitro")


def test_missing_dcap_package_means_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_verifiers", {"sev-snp": registry.SnpVerifier()})
    monkeypatch.setitem(sys.modules, "cleanroom.attestation.dcap", None)
    assert registry.platforms() == ("sev-snp",)
    with pytest.raises(EvidenceFormatError):
        registry.verifier_for("tdx")
