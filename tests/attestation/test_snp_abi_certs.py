"""SEV-SNP report layout, TCB_VERSION per product, AMD certificate extensions."""

from __future__ import annotations

from pathlib import Path

import pytest

from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.snp import abi
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.attestation.snp.roots import PRODUCTS, pinned_ark
from cleanroom.errors import ConfigurationError, EvidenceFormatError

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "attestation" / "snp"
TURIN = ASSETS / "openanolis-trustee-turin-v5-and-vlek"
COCO = ASSETS / "coco-trustee-milan-vcek-vlek"


def test_turin_tcb_has_fmc_in_byte_0() -> None:
    raw = int.from_bytes(bytes([0x01, 0x03, 0x02, 0x05, 0, 0, 0, 0x61]), "little")
    assert abi.decode_tcb(raw, "Turin") == abi.TcbVersion(
        BOOT_LOADER=3, TEE=2, SNP=5, MICROCODE=97, FMC=1
    )
    # The Milan layout would misread the same bytes.
    assert abi.decode_tcb(raw, "Milan") == abi.TcbVersion(BOOT_LOADER=1, TEE=3, SNP=0, MICROCODE=97)


@pytest.mark.parametrize("product", ["Milan", "Genoa", "Turin"])
def test_tcb_encoding_round_trips(product: str) -> None:
    tcb = abi.TcbVersion(
        BOOT_LOADER=7, TEE=1, SNP=22, MICROCODE=211, FMC=2 if product == "Turin" else None
    )
    assert abi.decode_tcb(abi.encode_tcb(tcb, product), product) == tcb


@pytest.mark.parametrize(
    ("family", "model", "product"),
    [
        (0x19, 0x01, "Milan"),
        (0x19, 0x11, "Genoa"),
        (0x19, 0xA0, "Genoa"),
        (0x1A, 0x02, "Turin"),
        (0x19, 0x30, None),
        (0x17, 0x01, None),
    ],
)
def test_product_from_cpuid(family: int, model: int, product: str | None) -> None:
    assert abi.product_from_cpuid(family, model) == product


def test_turin_report_parses_with_v5_fields() -> None:
    report = abi.parse_report((TURIN / "turin-report.bin").read_bytes())
    assert report.VERSION == 5
    assert report.product == "Turin"
    assert report.LAUNCH_MIT_VECTOR is not None
    assert report.signing_key == abi.SIGNING_KEY_VCEK
    assert report.CHIP_ID[8:] == bytes(56)


def test_v2_report_has_no_cpuid() -> None:
    report = abi.parse_report((COCO / "test-report.bin").read_bytes())
    assert report.VERSION == 2
    assert report.CPUID_FAM_ID is None
    assert report.product is None


def test_v2_report_with_cpuid_bytes_is_malformed() -> None:
    raw = bytearray((COCO / "test-report.bin").read_bytes())
    raw[0x188] = 0x19
    with pytest.raises(EvidenceFormatError) as info:
        abi.parse_report(bytes(raw))
    assert any("0x188" in f for f in info.value.failures)


def test_every_structural_defect_is_listed() -> None:
    raw = bytearray((COCO / "test-report.bin").read_bytes())
    raw[0x034] = 2  # SIGNATURE_ALGO
    raw[0x00A] &= ~0x02  # POLICY bit 17
    raw[0x04C] = 1  # reserved
    raw[0x400] = 1  # signature reserved area
    with pytest.raises(EvidenceFormatError) as info:
        abi.parse_report(bytes(raw))
    assert len(info.value.failures) == 4


def test_not_bytes_is_refused() -> None:
    with pytest.raises(EvidenceFormatError):
        abi.parse_report("report")  # type: ignore[arg-type]


def test_vcek_serial_zero_loads_without_warning() -> None:
    # Warnings are errors in this suite: a CryptographyDeprecationWarning
    # about the non-positive serial number would fail the test.
    cert = parse_certificate((COCO / "test-vcek.der").read_bytes())
    assert cert.serial_number == 0
    assert cert.subject_cn == "SEV-VCEK"


@pytest.mark.parametrize("name", ["test-vcek-invalid-legacy.der", "test-vcek-invalid-new.der"])
def test_hwid_raw_and_octet_string_encodings(name: str) -> None:
    cert = parse_certificate((COCO / name).read_bytes())
    assert cert.extensions.hw_id == bytes(range(64))


def test_turin_vcek_extensions() -> None:
    cert = parse_certificate((TURIN / "turin-vcek.der").read_bytes())
    ext = cert.extensions
    assert ext.struct_version == 1
    assert ext.product == "Turin"
    assert dict(ext.spl) == {"FMC": 1, "BOOT_LOADER": 3, "TEE": 2, "SNP": 5, "MICROCODE": 97}
    assert ext.hw_id is not None
    assert len(ext.hw_id) == 8


def test_vlek_has_csp_id_and_no_hwid() -> None:
    cert = parse_certificate((COCO / "test-vlek.der").read_bytes())
    assert cert.subject_cn == "SEV-VLEK"
    assert cert.extensions.csp_id == "CN=cc-us-east-2.amazonaws.com"
    assert cert.extensions.hw_id is None


@pytest.mark.parametrize("product", PRODUCTS)
def test_pinned_arks(product: str) -> None:
    ark = pinned_ark(product)
    assert ark.subject_cn == f"ARK-{product}"
    assert ark.is_self_issued


def test_unknown_product_has_no_root() -> None:
    with pytest.raises(ConfigurationError):
        pinned_ark("Venice")


def test_certificate_garbage_is_a_format_error() -> None:
    with pytest.raises(EvidenceFormatError):
        parse_certificate(b"\x30\x03\x02\x01\x00")


def test_split_certificates_pem_bundle_der_and_concatenated_der() -> None:
    bundle = (COCO / "milan_ask_ark_asvk.pem").read_bytes()
    ders = split_certificates(bundle)
    assert len(ders) == 3
    assert split_certificates(ders[0]) == [ders[0]]
    assert split_certificates(b"".join(ders)) == ders


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"-----BEGIN CERTIFICATE-----\n***\n-----END CERTIFICATE-----\n",
        b"\x30\x82\xff",
    ],
)
def test_split_certificates_refuses_garbage(data: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        split_certificates(data)
