"""Fetchers for AMD KDS and Intel PCS, with an injected transport (no network)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from snp_fakes import crl

from cleanroom.attestation import Evidence
from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.fetch import HttpResponse, KdsFetcher, PcsFetcher, complete_evidence
from cleanroom.attestation.snp import abi
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.attestation.snp.verify import SnpVerifier
from cleanroom.errors import ConfigurationError, ServiceUnavailable

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "attestation"
MS = ASSETS / "snp" / "ms-tav-milan-genoa-turin"
ANOLIS = ASSETS / "snp" / "openanolis-trustee-turin-v5-and-vlek"
COCO = ASSETS / "snp" / "coco-trustee-milan-vcek-vlek"
GO_TDX = ASSETS / "tdx" / "go-tdx-guest-spr-e4-v4-and-v5"


class FakeWeb:
    def __init__(self, pages: Mapping[str, HttpResponse]) -> None:
        self.pages = dict(pages)
        self.requests: list[str] = []

    def __call__(self, url: str) -> HttpResponse:
        self.requests.append(url)
        return self.pages.get(url, HttpResponse(404, b"", {}))


def _ok(body: bytes, headers: Mapping[str, str] | None = None) -> HttpResponse:
    return HttpResponse(200, body, dict(headers or {}))


def _der(path: Path) -> bytes:
    return split_certificates(path.read_bytes())[0]


def test_kds_vcek_url_milan() -> None:
    report = abi.parse_report((MS / "milan_attestation_report.bin").read_bytes())
    url = KdsFetcher(FakeWeb({})).vcek_url(report, "Milan")
    assert url == (
        "https://kdsintf.amd.com/vcek/v1/Milan/"
        + report.CHIP_ID.hex()
        + "?blSPL=4&teeSPL=0&snpSPL=24&ucodeSPL=219"
    )


def test_kds_vcek_url_turin_uses_8_byte_hwid_and_fmc() -> None:
    report = abi.parse_report((ANOLIS / "turin-report.bin").read_bytes())
    url = KdsFetcher(FakeWeb({})).vcek_url(report, "Turin")
    assert url == (
        "https://kdsintf.amd.com/vcek/v1/Turin/0910b4f884ff4ba9"
        "?fmcSPL=1&blSPL=3&teeSPL=2&snpSPL=5&ucodeSPL=97"
    )


def _not_amd_crl(ark: Path) -> bytes:
    """A CRL in the name of *ark* (no real AMD CRL is stored), signed by another key."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return crl(x509.load_pem_x509_certificate(ark.read_bytes()).subject, other)


def test_complete_evidence_fetches_and_caches_the_vcek_chain(tmp_path: Path) -> None:
    report_bytes = (MS / "genoa_attestation_report.bin").read_bytes()
    report = abi.parse_report(report_bytes)
    kds = KdsFetcher(FakeWeb({}), cache_dir=tmp_path)
    amd_crl = _not_amd_crl(MS / "genoa_ark.pem")
    web = FakeWeb(
        {
            kds.vcek_url(report, "Genoa"): _ok(_der(MS / "genoa_vcek.pem")),
            kds.chain_url("Genoa"): _ok(
                (MS / "genoa_ask.pem").read_bytes() + (MS / "genoa_ark.pem").read_bytes()
            ),
            kds.crl_url("Genoa"): _ok(amd_crl),
        }
    )
    kds = KdsFetcher(web, cache_dir=tmp_path)
    bare = Evidence("sev-snp", report_bytes)
    complete = complete_evidence(bare, kds=kds)
    assert len(complete.certificates) == 3
    assert complete.collateral == {"amd_crls": [base64.b64encode(amd_crl).decode()]}
    at = parse_certificate(complete.certificates[0]).not_before + timedelta(days=1)
    assert SnpVerifier().verify(complete.report, complete.certificates, None, at=at).root == (
        "ARK-Genoa"
    )
    # Second time from the caches (certificates on disk, the CRL in memory).
    before = len(web.requests)
    assert complete_evidence(bare, kds=kds) == complete
    assert len(web.requests) == before


def test_complete_evidence_keeps_supplied_certificates_and_adds_the_crl() -> None:
    kds = KdsFetcher(FakeWeb({}))
    amd_crl = _not_amd_crl(MS / "milan_ark.pem")
    web = FakeWeb({kds.crl_url("Milan"): _ok(amd_crl)})
    evidence = Evidence(
        "sev-snp",
        (MS / "milan_attestation_report.bin").read_bytes(),
        (_der(MS / "milan_vcek.pem"),),
    )
    complete = complete_evidence(evidence, kds=KdsFetcher(web))
    assert complete.certificates == evidence.certificates
    assert complete.collateral == {"amd_crls": [base64.b64encode(amd_crl).decode()]}
    assert web.requests == [kds.crl_url("Milan")]


def test_fetching_is_off_without_a_fetcher() -> None:
    evidence = Evidence("sev-snp", (MS / "milan_attestation_report.bin").read_bytes())
    assert complete_evidence(evidence) == evidence


@pytest.mark.parametrize(
    ("name", "report", "kds", "error"),
    [
        ("VLEKs are not on KDS", COCO / "test-vlek-report.bin", {}, ConfigurationError),
        ("v2 report without a product", COCO / "test-report.bin", {}, ConfigurationError),
        ("KDS answers 404", MS / "milan_attestation_report.bin", {}, ServiceUnavailable),
    ],
)
def test_kds_refusals(name: str, report: Path, kds: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error):
        KdsFetcher(FakeWeb({}), **kds).certificates(report.read_bytes())  # type: ignore[arg-type]


def test_v2_report_with_configured_product() -> None:
    report = (COCO / "test-report.bin").read_bytes()
    web = FakeWeb({})
    with pytest.raises(ServiceUnavailable):
        KdsFetcher(web, product="Milan").certificates(report)
    assert web.requests[0].startswith("https://kdsintf.amd.com/vcek/v1/Milan/")


def test_pcs_collateral_for_a_tdx_quote() -> None:
    # The quote is dcap-qvl's; the PCS answers are go-tdx-guest's recorded
    # responses (the fake serves them whatever the FMSPC): this checks the
    # URLs, the headers and the collateral's shape, not the TCB match.
    quote_bytes = (ASSETS / "tdx" / "dcap-qvl-tdx-v4-v5" / "tdx_quote_v4.bin").read_bytes()
    from cleanroom.attestation.dcap import collateral_from_mapping
    from cleanroom.attestation.fetch import _pck_identity

    fmspc, ca, tee = _pck_identity(quote_bytes)
    assert (ca, tee) == ("platform", "tdx")
    urls = PcsFetcher(FakeWeb({})).urls(fmspc, ca, tee)
    assert urls["tcb"] == (
        f"https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc={fmspc.hex()}"
    )
    chain = quote((GO_TDX / "tcbInfoIssuerChain.pem").read_text())
    web = FakeWeb(
        {
            urls["tcb"]: _ok(
                (GO_TDX / "sample_tcbInfo_response.json").read_bytes(),
                {"TCB-Info-Issuer-Chain": chain},
            ),
            urls["qe"]: _ok(
                (GO_TDX / "sample_qeIdentity_response.json").read_bytes(),
                {
                    "SGX-Enclave-Identity-Issuer-Chain": quote(
                        (GO_TDX / "qeIdentityIssuerChain.pem").read_text()
                    )
                },
            ),
            urls["pckcrl"]: _ok(
                (GO_TDX / "pckcrl.der").read_bytes(),
                {"SGX-PCK-CRL-Issuer-Chain": quote((GO_TDX / "pckCrlIssuerChain.pem").read_text())},
            ),
            urls["rootcrl"]: _ok((GO_TDX / "rootcrl.der").read_bytes()),
        }
    )
    evidence = complete_evidence(Evidence("tdx", quote_bytes), pcs=PcsFetcher(web))
    assert evidence.collateral is not None
    collateral = collateral_from_mapping(evidence.collateral)
    assert collateral.tcb_info_json.startswith(b'{"id":"TDX"') or b'"tcbLevels"' in (
        collateral.tcb_info_json
    )
    assert Evidence.from_json(evidence.to_json()) == evidence


def test_pcs_missing_issuer_chain_header() -> None:
    fetcher = PcsFetcher(FakeWeb({}))
    urls = fetcher.urls(bytes(6), "processor", "sgx")
    web = FakeWeb({url: _ok(b"{}") for url in urls.values()})
    with pytest.raises(ServiceUnavailable):
        PcsFetcher(web).collateral(bytes(6), "processor", "sgx")


@pytest.mark.parametrize(
    ("fmspc", "ca", "tee"),
    [(bytes(5), "platform", "tdx"), (bytes(6), "root", "tdx"), (bytes(6), "platform", "sev")],
)
def test_pcs_bad_parameters(fmspc: bytes, ca: str, tee: str) -> None:
    with pytest.raises(ConfigurationError):
        PcsFetcher(FakeWeb({})).urls(fmspc, ca, tee)


def test_httpx_get_refuses_plain_http() -> None:
    from cleanroom.attestation.fetch import httpx_get

    with pytest.raises(ConfigurationError):
        httpx_get("http://kdsintf.amd.com/vcek/v1/Milan/cert_chain")
