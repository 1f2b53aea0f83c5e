"""``--tee sev-snp``: evidence from configfs-tsm reaches the SDK's verifier unchanged.

The fake configfs tree returns a real Genoa report (made for another nonce), so
the SDK's verifier accepts its signature and chain and refuses its REPORT_DATA.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.attestation.snp_fakes import crl

from cleanroom import AttestationPolicy, Client, ModelFormat
from cleanroom.attestation import Evidence
from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.fetch import AMD_KDS, HttpResponse, KdsFetcher
from cleanroom.attestation.providers import ConfigfsTsmProvider
from cleanroom.attestation.providers.certtable import (
    ARK_GUID,
    ASK_GUID,
    VCEK_GUID,
    build_cert_table,
)
from cleanroom.errors import EvidenceSignatureError, PolicyViolation
from cleanroom.server import tee as tee_module
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings
from cleanroom.server.tee import Tee

GENOA = (
    Path(__file__).resolve().parents[1]
    / "assets"
    / "attestation"
    / "snp"
    / "ms-tav-milan-genoa-turin"
)
REPORT = (GENOA / "genoa_attestation_report.bin").read_bytes()
MEASUREMENT = REPORT[0x90:0xC0]


def _fake_configfs(root: Path) -> Path:
    certs = [
        split_certificates((GENOA / name).read_bytes())[0]
        for name in ("genoa_vcek.pem", "genoa_ask.pem", "genoa_ark.pem")
    ]
    entry = root / "entry"
    entry.mkdir(parents=True)
    (entry / "provider").write_text("sev_guest\n")
    (entry / "generation").write_text("1\n")
    (entry / "outblob").write_bytes(REPORT)
    (entry / "auxblob").write_bytes(
        build_cert_table(list(zip((VCEK_GUID, ASK_GUID, ARK_GUID), certs, strict=True)))
    )
    return root


def test_real_report_is_verified_and_refused_for_its_binding(tmp_path: Path) -> None:
    provider = ConfigfsTsmProvider(_fake_configfs(tmp_path / "tsm"), entry_name=lambda: "entry")
    tee = Tee("sev-snp", tmp_path / "data", provider=provider)
    assert not tee.simulated
    assert tee.sealing_key is None
    with ServerThread(ServerSettings(data_dir=tmp_path / "data", tee="sev-snp"), tee=tee) as server:
        client = Client(server.url)
        client.sign_up("alice@lender.example", "correct horse battery staple")
        client.sign_in("alice@lender.example", "correct horse battery staple")
        health = client.health()
        assert health["simulated"] is False
        inst = client.create_instance("Real", ModelFormat.ONNX, [])
        # The stored vector comes without an AMD CRL: opt out of requiring one.
        policy = AttestationPolicy(measurements=[MEASUREMENT.hex()], snp_require_crl=False)
        with pytest.raises(PolicyViolation) as info:
            inst.validate_attestation(policy)
        # Authentic AMD evidence (chain to the pinned Genoa ARK, signature): only the
        # binding to this request's key and nonce fails.
        assert [f.split(":")[0] for f in info.value.failures] == ["REPORT_DATA"]
        client.close()
    assert not (tmp_path / "data" / "models").exists() or not any(
        (tmp_path / "data" / "models").iterdir()
    )


class _DerivingProvider:
    """A configfs provider whose firmware also derives a guest-bound key (SNP MSG_KEY_REQ)."""

    def __init__(self, inner: ConfigfsTsmProvider, root: bytes) -> None:
        self._inner = inner
        self._root = root
        self.platform = inner.platform
        self.simulated = False

    def evidence(self, report_data: bytes) -> Evidence:
        return self._inner.evidence(report_data)

    def derived_key(self) -> bytes:
        return self._root


def test_firmware_derived_key_seals_models_and_keeps_the_log_identity(tmp_path: Path) -> None:
    inner = ConfigfsTsmProvider(_fake_configfs(tmp_path / "tsm"), entry_name=lambda: "entry")
    first = Tee("sev-snp", tmp_path / "data", provider=_DerivingProvider(inner, b"\x01" * 32))
    again = Tee("sev-snp", tmp_path / "data", provider=_DerivingProvider(inner, b"\x01" * 32))
    other = Tee("sev-snp", tmp_path / "data", provider=_DerivingProvider(inner, b"\x02" * 32))
    assert first.sealing_key is not None
    assert first.sealing_key == again.sealing_key
    assert first.signing_public_key_pem() == again.signing_public_key_pem()
    # Another guest (other code, other chip) derives another key: it can open nothing.
    assert other.sealing_key not in (None, first.sealing_key)
    assert other.signing_public_key_pem() != first.signing_public_key_pem()


@pytest.mark.parametrize(
    ("kind", "amd_kds_url", "fetches_from"),
    [
        ("sev-snp", "https://kds.example", "https://kds.example"),
        ("sev-snp", None, None),
        ("tdx", "https://kds.example", None),  # DCAP collateral is not AMD's
    ],
)
def test_snp_evidence_is_completed_from_the_configured_kds(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    amd_kds_url: str | None,
    fetches_from: str | None,
) -> None:
    chosen: dict[str, object] = {}

    def provider_for(kind: str, data_dir: Path, *, fetcher: KdsFetcher | None) -> object:
        chosen["fetcher"] = fetcher
        return ConfigfsTsmProvider(_fake_configfs(tmp_path / "tsm"), entry_name=lambda: "entry")

    monkeypatch.setattr(tee_module, "provider_for", provider_for)
    Tee(kind, tmp_path / "data", amd_kds_url=amd_kds_url)
    fetcher = chosen["fetcher"]
    if fetches_from is None:
        assert fetcher is None
    else:
        assert isinstance(fetcher, KdsFetcher)
        assert fetcher.crl_url("Genoa").startswith(f"{fetches_from}/vcek/v1/Genoa/")
        assert fetcher._cache is None  # the data directory is the host's: memory only


def test_the_service_asks_amd_kds_by_default(tmp_path: Path) -> None:
    assert ServerSettings(data_dir=tmp_path).amd_kds_url == AMD_KDS


def test_the_sdk_can_fetch_the_crl_itself_instead_of_trusting_the_hosts(tmp_path: Path) -> None:
    """With ``Client(kds=...)`` the verifier completes SEV-SNP evidence on its own side:
    the CRL it fetched is the one checked (here a CRL in the Genoa ARK's name that the
    ARK did not sign, so the fetched copy, not the host's absence of one, refuses it)."""
    provider = ConfigfsTsmProvider(_fake_configfs(tmp_path / "tsm"), entry_name=lambda: "entry")
    tee = Tee("sev-snp", tmp_path / "data", provider=provider)
    ark = x509.load_pem_x509_certificate((GENOA / "genoa_ark.pem").read_bytes())
    forged = crl(ark.subject, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    asked: list[str] = []

    def kds_web(url: str) -> HttpResponse:
        asked.append(url)
        return HttpResponse(200, forged, {})

    kds = KdsFetcher(kds_web)
    with ServerThread(ServerSettings(data_dir=tmp_path / "data", tee="sev-snp"), tee=tee) as server:
        client = Client(server.url, kds=kds)
        client.sign_up("alice@lender.example", "correct horse battery staple")
        client.sign_in("alice@lender.example", "correct horse battery staple")
        inst = client.create_instance("Real", ModelFormat.ONNX, [])
        try:
            with pytest.raises(EvidenceSignatureError) as info:
                inst.validate_attestation(AttestationPolicy(measurements=[MEASUREMENT.hex()]))
            assert info.value.failures == ["CRL of ARK-Genoa: signature does not verify"]
            assert asked == [kds.crl_url("Genoa")]
        finally:
            client.close()
