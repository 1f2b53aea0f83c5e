"""Evidence providers: configfs-tsm against a fake tree that returns a stored
real report, the /dev/sev-guest ioctl against a fake ioctl, provider_for."""

from __future__ import annotations

import ctypes
import errno
from datetime import timedelta
from pathlib import Path

import pytest

from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.providers import (
    ConfigfsTsmProvider,
    EvidenceProvider,
    SevGuestProvider,
    provider_for,
)
from cleanroom.attestation.providers.certtable import (
    ARK_GUID,
    ASK_GUID,
    VCEK_GUID,
    build_cert_table,
    parse_cert_table,
)
from cleanroom.attestation.providers.sev_guest import (
    SNP_GET_EXT_REPORT,
    ExtReportRequest,
    GuestRequest,
)
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.attestation.snp.verify import SnpVerifier
from cleanroom.errors import (
    ConfigurationError,
    EvidenceFormatError,
    InvalidRequest,
    ServiceUnavailable,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "attestation" / "snp"
MS = ASSETS / "ms-tav-milan-genoa-turin"
REPORT = (MS / "genoa_attestation_report.bin").read_bytes()
VCEK, ASK, ARK = (
    split_certificates((MS / name).read_bytes())[0]
    for name in ("genoa_vcek.pem", "genoa_ask.pem", "genoa_ark.pem")
)
AT = parse_certificate(VCEK).not_before + timedelta(days=1)


def _fake_configfs(root: Path, *, provider: str = "sev_guest", aux: bytes | None = None) -> Path:
    entry = root / "entry"
    entry.mkdir(parents=True)
    (entry / "provider").write_text(provider + "\n")
    (entry / "generation").write_text("1\n")
    (entry / "outblob").write_bytes(REPORT)
    if aux is not None:
        (entry / "auxblob").write_bytes(aux)
    return root


def _provider(root: Path, **kw: object) -> ConfigfsTsmProvider:
    return ConfigfsTsmProvider(root, entry_name=lambda: "entry", **kw)  # type: ignore[arg-type]


def test_configfs_tsm_returns_the_report_and_the_auxblob_certificates(tmp_path: Path) -> None:
    table = build_cert_table([(VCEK_GUID, VCEK), (ASK_GUID, ASK), (ARK_GUID, ARK)])
    provider = _provider(_fake_configfs(tmp_path, aux=table))
    assert isinstance(provider, EvidenceProvider)
    assert provider.platform == "sev-snp"
    evidence = provider.evidence(b"\x07" * 64)
    assert (tmp_path / "entry" / "inblob").read_bytes() == b"\x07" * 64
    assert evidence.report == REPORT
    assert evidence.certificates == (VCEK, ASK, ARK)
    assert evidence.simulated is False
    claims = SnpVerifier().verify(evidence.report, evidence.certificates, None, at=AT)
    assert claims.root == "ARK-Genoa"


def test_configfs_tsm_falls_back_to_cached_certificates(tmp_path: Path) -> None:
    provider = _provider(_fake_configfs(tmp_path), certificates=(VCEK, ASK))
    assert provider.evidence(bytes(64)).certificates == (VCEK, ASK)


def test_configfs_tsm_writes_privlevel(tmp_path: Path) -> None:
    _provider(_fake_configfs(tmp_path), privlevel=2).evidence(bytes(64))
    assert (tmp_path / "entry" / "privlevel").read_text() == "2\n"


def test_configfs_tsm_tdx_provider(tmp_path: Path) -> None:
    provider = _provider(_fake_configfs(tmp_path, provider="tdx_guest"), collateral={"a": 1})
    evidence = provider.evidence(bytes(64))
    assert evidence.platform == "tdx"
    assert evidence.collateral == {"a": 1}


def test_configfs_tsm_detects_a_racing_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cleanroom.attestation.providers import configfs

    root = _fake_configfs(tmp_path)
    provider = _provider(root)
    real_read = configfs._read

    def racing_read(path: Path, limit: int) -> bytes:
        # Another writer bumps generation whenever we read the report.
        data = real_read(path, limit)
        if path.name == "outblob":
            generation = path.parent / "generation"
            generation.write_text(str(int(generation.read_text()) + 1))
        return data

    monkeypatch.setattr(configfs, "_read", racing_read)
    with pytest.raises(ServiceUnavailable):
        provider.evidence(bytes(64))


@pytest.mark.parametrize(
    ("name", "setup", "error"),
    [
        (
            "unknown provider",
            lambda root: _fake_configfs(root, provider="arm_cca_guest"),
            ServiceUnavailable,
        ),
        ("no configfs at all", lambda root: root / "absent", ServiceUnavailable),
    ],
)
def test_configfs_tsm_refusals(
    tmp_path: Path, name: str, setup: object, error: type[Exception]
) -> None:
    assert callable(setup)
    root = setup(tmp_path)
    with pytest.raises(error):
        _provider(root).evidence(bytes(64))


def test_configfs_tsm_empty_outblob(tmp_path: Path) -> None:
    root = _fake_configfs(tmp_path)
    (root / "entry" / "outblob").write_bytes(b"")
    with pytest.raises(ServiceUnavailable):
        _provider(root).evidence(bytes(64))


@pytest.mark.parametrize("size", [0, 63, 65])
def test_report_data_must_be_64_bytes(tmp_path: Path, size: int) -> None:
    with pytest.raises(InvalidRequest):
        _provider(_fake_configfs(tmp_path)).evidence(bytes(size))


# --- certificate table -------------------------------------------------------------


def test_cert_table_round_trip_and_mixed_endian_guids() -> None:
    table = build_cert_table([(ARK_GUID, ARK), (VCEK_GUID, VCEK), (ASK_GUID, ASK)])
    assert parse_cert_table(table) == [VCEK, ASK, ARK]
    # The same GUID written in the little-endian mixed byte order.
    mixed = bytearray(table)
    mixed[24:40] = VCEK_GUID.bytes_le
    assert parse_cert_table(bytes(mixed))[0] == VCEK


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("no terminator", build_cert_table([(VCEK_GUID, VCEK)])[:24]),
        (
            "offset past the end",
            VCEK_GUID.bytes + (10_000).to_bytes(4, "little") + b"\x10\0\0\0" + bytes(24),
        ),
        ("empty", b""),
    ],
)
def test_bad_cert_tables(name: str, table: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        parse_cert_table(table)


# --- /dev/sev-guest -----------------------------------------------------------------


class _FakeSevGuest:
    """Plays the sev-guest driver: checks the request, writes MSG_REPORT_RSP
    and the certificate table, and first asks for a larger buffer once."""

    def __init__(self, table: bytes, *, need_more: bool = False, status: int = 0) -> None:
        self.table = table
        self.need_more = need_more
        self.status = status
        self.user_data = b""
        self.calls = 0

    def __call__(self, fd: int, request: int, guest: GuestRequest) -> int:
        assert request == SNP_GET_EXT_REPORT == 0xC0205302
        assert guest.msg_version == 1
        self.calls += 1
        ext = ExtReportRequest.from_address(guest.req_data)
        self.user_data = bytes(ext.data.user_data)
        if self.need_more:
            self.need_more = False
            ext.certs_len = 5 * 4096 * 4
            guest.exitinfo2 = 1 << 32
            raise OSError(errno.EIO, "Input/output error")
        message = self.status.to_bytes(4, "little") + (1184).to_bytes(4, "little") + bytes(24)
        ctypes.memmove(guest.resp_data, message + REPORT, len(message) + len(REPORT))
        assert ext.certs_len >= len(self.table)
        ctypes.memmove(ext.certs_address, self.table, len(self.table))
        return 0


def _device(tmp_path: Path) -> Path:
    device = tmp_path / "sev-guest"
    device.write_bytes(b"")
    return device


def test_sev_guest_ioctl(tmp_path: Path) -> None:
    fake = _FakeSevGuest(build_cert_table([(VCEK_GUID, VCEK), (ASK_GUID, ASK)]), need_more=True)
    provider = SevGuestProvider(_device(tmp_path), ioctl=fake)
    evidence = provider.evidence(b"\x05" * 64)
    assert fake.calls == 2
    assert fake.user_data == b"\x05" * 64
    assert evidence.report == REPORT
    assert evidence.certificates == (VCEK, ASK)
    SnpVerifier().verify(evidence.report, evidence.certificates, None, at=AT)


def test_sev_guest_firmware_error(tmp_path: Path) -> None:
    provider = SevGuestProvider(_device(tmp_path), ioctl=_FakeSevGuest(b"", status=0x16))
    with pytest.raises(ServiceUnavailable):
        provider.evidence(bytes(64))


def test_sev_guest_other_ioctl_error(tmp_path: Path) -> None:
    def failing(fd: int, request: int, guest: GuestRequest) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    with pytest.raises(ServiceUnavailable):
        SevGuestProvider(_device(tmp_path), ioctl=failing).evidence(bytes(64))


def test_sev_guest_missing_device(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable):
        SevGuestProvider(tmp_path / "absent").evidence(bytes(64))


# --- provider_for -------------------------------------------------------------------


def test_provider_for_simulated(tmp_path: Path, simulated_tee: SimulatedSnpTee) -> None:
    provider = provider_for("simulated", simulated_tee.data_dir)
    assert isinstance(provider, SimulatedSnpTee)
    assert provider.simulated is True


def test_provider_for_sev_snp_prefers_configfs(tmp_path: Path) -> None:
    root = _fake_configfs(tmp_path / "tsm")
    (tmp_path / "data" / "tee-certificates").mkdir(parents=True)
    (tmp_path / "data" / "tee-certificates" / "genoa.pem").write_bytes(
        (MS / "genoa_vcek.pem").read_bytes() + (MS / "genoa_ask.pem").read_bytes()
    )
    provider = provider_for(
        "sev-snp", tmp_path / "data", configfs_root=root, configfs_entry_name=lambda: "entry"
    )
    assert provider.evidence(bytes(64)).certificates == (VCEK, ASK)
    assert isinstance(provider, ConfigfsTsmProvider)


def test_provider_for_sev_snp_falls_back_to_sev_guest(tmp_path: Path) -> None:
    provider = provider_for(
        "sev-snp",
        tmp_path,
        configfs_root=tmp_path / "absent",
        sev_guest_device=_device(tmp_path),
    )
    assert isinstance(provider, SevGuestProvider)


@pytest.mark.parametrize(
    ("kind", "error"),
    [("sgx", ConfigurationError), ("tdx", ServiceUnavailable), ("sev-snp", ServiceUnavailable)],
)
def test_provider_for_refusals(tmp_path: Path, kind: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        provider_for(
            kind, tmp_path, configfs_root=tmp_path / "absent", sev_guest_device=tmp_path / "absent"
        )


def test_provider_for_refuses_a_tsm_of_another_platform(tmp_path: Path) -> None:
    root = _fake_configfs(tmp_path / "tsm", provider="tdx_guest")
    with pytest.raises(ConfigurationError):
        provider_for("sev-snp", tmp_path, configfs_root=root, configfs_entry_name=lambda: "entry")


def test_sev_guest_derived_key(tmp_path: Path) -> None:
    from cleanroom.attestation.providers.sev_guest import (
        FIELD_GUEST_POLICY,
        FIELD_MEASUREMENT,
        SNP_GET_DERIVED_KEY,
        DerivedKeyRequest,
    )

    seen: list[tuple[int, int, int]] = []

    def fake(fd: int, request: int, guest: GuestRequest) -> int:
        assert request == SNP_GET_DERIVED_KEY == 0xC0205301
        key_request = DerivedKeyRequest.from_address(guest.req_data)
        seen.append((key_request.root_key_select, key_request.guest_field_select, key_request.vmpl))
        message = bytes(4) + bytes(28) + b"\x42" * 32
        ctypes.memmove(guest.resp_data, message, len(message))
        return 0

    provider = SevGuestProvider(_device(tmp_path), vmpl=1, ioctl=fake)
    assert provider.derived_key() == b"\x42" * 32
    assert seen == [(0, FIELD_GUEST_POLICY | FIELD_MEASUREMENT, 1)]


def test_sev_guest_derived_key_refused(tmp_path: Path) -> None:
    def fake(fd: int, request: int, guest: GuestRequest) -> int:
        message = (0x16).to_bytes(4, "little") + bytes(60)
        ctypes.memmove(guest.resp_data, message, len(message))
        return 0

    with pytest.raises(ServiceUnavailable):
        SevGuestProvider(_device(tmp_path), ioctl=fake).derived_key()


def test_configfs_tdx_evidence_verifies_end_to_end(tmp_path: Path) -> None:
    """A TDX guest: configfs-tsm serves the quote, the data directory the
    collateral; the registry's TDX verifier accepts it (UpToDate)."""
    import json
    from datetime import datetime

    from cleanroom.attestation import AttestationPolicy, verify_evidence

    tdx = ASSETS.parent / "tdx" / "dcap-qvl-tdx-v4-v5"
    root = _fake_configfs(tmp_path / "tsm", provider="tdx_guest")
    (root / "entry" / "outblob").write_bytes((tdx / "tdx_quote_v4.bin").read_bytes())
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "tdx-collateral.json").write_bytes(
        (tdx / "tdx_quote_v4_collateral.json").read_bytes()
    )
    provider = provider_for(
        "tdx", data_dir, configfs_root=root, configfs_entry_name=lambda: "entry"
    )
    evidence = provider.evidence(bytes(64))
    assert evidence.platform == "tdx"
    assert evidence.collateral == json.loads((tdx / "tdx_quote_v4_collateral.json").read_text())
    at = datetime.fromisoformat("2025-07-19T10:00:34+00:00")  # inside the collateral window
    quote = evidence.report
    mrtd = quote[48 + 0x88 : 48 + 0xB8]  # TD quote body MRTD (v4: body at offset 48)
    verified = verify_evidence(
        evidence,
        AttestationPolicy(mrtd=[mrtd.hex()]),
        report_data=quote[48 + 0x208 : 48 + 0x248],
        at=at,
    )
    assert verified.platform == "tdx"
    assert verified.tcb_status == "UpToDate"
    assert verified.measurement == mrtd


def test_provider_for_can_fetch_missing_certificates(tmp_path: Path) -> None:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from snp_fakes import crl

    from cleanroom.attestation.fetch import HttpResponse, KdsFetcher
    from cleanroom.attestation.providers import FetchingProvider
    from cleanroom.attestation.snp import abi

    root = _fake_configfs(tmp_path / "tsm")
    kds = KdsFetcher()
    # No real AMD CRL is stored: a CRL in ARK-Genoa's name, signed by another key.
    not_amd = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    amd_crl = crl(x509.load_der_x509_certificate(ARK).subject, not_amd)
    pages = {
        kds.vcek_url(abi.parse_report(REPORT), "Genoa"): VCEK,
        kds.chain_url("Genoa"): (MS / "genoa_ask.pem").read_bytes()
        + (MS / "genoa_ark.pem").read_bytes(),
        kds.crl_url("Genoa"): amd_crl,
    }

    def get(url: str) -> HttpResponse:
        return HttpResponse(200, pages[url], {})

    provider = provider_for(
        "sev-snp",
        tmp_path / "data",
        configfs_root=root,
        configfs_entry_name=lambda: "entry",
        fetcher=KdsFetcher(get, cache_dir=tmp_path / "kds"),
    )
    assert isinstance(provider, FetchingProvider)
    assert isinstance(provider, EvidenceProvider)
    evidence = provider.evidence(bytes(64))
    assert evidence.certificates == (VCEK, ASK, ARK)
    assert evidence.collateral == {"amd_crls": [base64.b64encode(amd_crl).decode()]}
    SnpVerifier().verify(evidence.report, evidence.certificates, None, at=AT)
