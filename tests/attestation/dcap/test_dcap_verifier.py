"""The DCAP verifiers honour the PlatformVerifier contract and the package surface."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from dcap_fakes import NOW, World, build
from dcap_vectors import AZURE_TDX, GO_TDX, QVL_SGX, QVL_TDX

import cleanroom.attestation.dcap as dcap
from cleanroom.attestation.dcap import SgxVerifier, TdxVerifier
from cleanroom.attestation.platform import PlatformVerifier
from cleanroom.attestation.registry import detect_platform, verifier_for
from cleanroom.errors import EvidenceSignatureError

VECTORS = [
    (QVL_TDX / "tdx_quote_v4.bin", "tdx"),
    (QVL_TDX / "tdx_quote_v5_outdated.bin", "tdx"),
    (GO_TDX / "quote_v5_sample.dat", "tdx"),
    (GO_TDX / "cos-113-tdx-quote.dat", "tdx"),
    (AZURE_TDX / "tdx_td-quote.bin", "tdx"),
    (QVL_SGX / "sgx_quote_v3.bin", "sgx"),
]


def test_public_surface_is_exactly_this() -> None:
    assert sorted(dcap.__all__) == sorted(
        [
            "TCB_STATUSES",
            "Collateral",
            "Quote",
            "SgxVerifier",
            "TcbEvaluation",
            "TdxVerifier",
            "VerifiedQuote",
            "collateral_from_mapping",
            "intel_sgx_root_ca",
            "parse_quote",
            "verify_quote",
            "verify_quote_signatures",
        ]
    )


@pytest.mark.parametrize("verifier", [TdxVerifier(), SgxVerifier()], ids=["tdx", "sgx"])
def test_implements_the_platform_verifier_protocol(verifier: PlatformVerifier) -> None:
    assert isinstance(verifier, PlatformVerifier)


@pytest.mark.parametrize(("path", "platform"), VECTORS, ids=[p.name for p, _ in VECTORS])
def test_detect_tells_tdx_from_sgx(path: Path, platform: str) -> None:
    data = path.read_bytes()
    assert TdxVerifier().detect(data) is (platform == "tdx")
    assert SgxVerifier().detect(data) is (platform == "sgx")


@pytest.mark.parametrize(
    "junk",
    [b"", b"\x04\x00", bytes(48), b"\xff" * 100, bytes(1184)],
    ids=["empty", "short", "zeros", "ones", "snp-sized-zeros"],
)
def test_detect_never_raises_and_says_no_to_junk(junk: bytes) -> None:
    assert TdxVerifier().detect(junk) is False
    # A zeroed header is version 0: not SGX either.
    assert SgxVerifier().detect(junk) is False


def test_registry_finds_the_dcap_verifiers() -> None:
    assert isinstance(verifier_for("tdx"), TdxVerifier)
    assert isinstance(verifier_for("sgx"), SgxVerifier)
    assert detect_platform((QVL_TDX / "tdx_quote_v4.bin").read_bytes()) == "tdx"
    assert detect_platform((QVL_SGX / "sgx_quote_v3.bin").read_bytes()) == "sgx"


def test_certificates_argument_cannot_replace_the_quote_chain() -> None:
    built = build(World())
    # Offering the real Intel root as a "certificate" does not make the fake chain trusted.
    intel_root = (QVL_TDX / "TrustedRootCA.der").read_bytes()
    with pytest.raises(EvidenceSignatureError, match="trusted root"):
        TdxVerifier().verify(built.quote, [intel_root], built.collateral, at=NOW)


def test_a_changed_packaged_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from cleanroom.attestation.dcap import roots
    from cleanroom.errors import ConfigurationError

    other_pem: bytes = str(build(World()).collateral["pck_crl_issuer_chain"]).encode()

    class _Files:
        def joinpath(self, name: str) -> _Files:
            return self

        def read_bytes(self) -> bytes:
            return other_pem

    monkeypatch.setattr(roots, "files", lambda package: _Files())
    roots.intel_sgx_root_ca.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="fingerprint"):
            roots.intel_sgx_root_ca()
    finally:
        monkeypatch.undo()
        roots.intel_sgx_root_ca.cache_clear()
    restored = roots.intel_sgx_root_ca().fingerprint(hashes.SHA256()).hex()
    assert restored == roots.INTEL_SGX_ROOT_CA_SHA256
