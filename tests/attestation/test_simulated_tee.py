"""The simulated TEE: one chain per data directory, AMD's profile, real reports."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cleanroom.attestation.measurement import package_measurement
from cleanroom.attestation.providers import EvidenceProvider
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.attestation.snp import abi
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.errors import ConfigurationError, InvalidRequest


def test_reopening_keeps_the_chain(simulated_tee: SimulatedSnpTee) -> None:
    again = SimulatedSnpTee.open(simulated_tee.data_dir)
    assert again.root_pem == simulated_tee.root_pem
    assert again.evidence(bytes(64)).certificates == simulated_tee.evidence(bytes(64)).certificates


def test_private_keys_are_owner_only(simulated_tee: SimulatedSnpTee) -> None:
    keys = sorted(simulated_tee.data_dir.glob("simulated-*.key"))
    assert len(keys) == 3
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert simulated_tee.root_pem_path == simulated_tee.data_dir / "simulated-root.pem"


def test_certificates_follow_the_amd_profile(simulated_tee: SimulatedSnpTee) -> None:
    vcek_der, ask_der, ark_der = simulated_tee.evidence(bytes(64)).certificates
    vcek, ask, ark = (parse_certificate(d) for d in (vcek_der, ask_der, ark_der))
    assert (vcek.subject_cn, ask.subject_cn, ark.subject_cn) == (
        "SEV-VCEK",
        "SEV-Simulated",
        "ARK-Simulated",
    )
    for cert in (vcek, ask, ark):
        assert (
            cert.signature_algorithm,
            cert.pss_hash,
            cert.pss_mgf_hash,
            cert.pss_salt_length,
        ) == (
            "rsassa_pss",
            "sha384",
            "sha384",
            48,
        )
    assert isinstance(vcek.public_key, ec.EllipticCurvePublicKey)
    assert vcek.public_key.curve.name == "secp384r1"
    assert isinstance(ark.public_key, rsa.RSAPublicKey)
    assert (
        x509.load_der_x509_certificate(ark_der).issuer
        == x509.load_der_x509_certificate(ark_der).subject
    )
    ext = vcek.extensions
    assert ext.product_name == "Milan-B0"
    assert dict(ext.spl) == {"BOOT_LOADER": 4, "TEE": 0, "SNP": 24, "MICROCODE": 219}
    report = abi.parse_report(simulated_tee.evidence(bytes(64)).report)
    assert ext.hw_id == report.CHIP_ID


def test_report_fields(simulated_tee: SimulatedSnpTee) -> None:
    evidence = simulated_tee.evidence(b"\x01" * 64, host_data=b"\x02" * 32)
    assert evidence.simulated is True
    assert evidence.platform == "sev-snp"
    report = abi.parse_report(evidence.report)
    assert len(evidence.report) == 1184
    assert report.VERSION == 3
    assert report.SIGNATURE_ALGO == 1
    assert report.POLICY & (1 << 17)
    assert not report.debug
    assert report.VMPL == 0
    assert report.signing_key == abi.SIGNING_KEY_VCEK
    assert report.product == "Milan"
    assert report.REPORT_DATA == b"\x01" * 64
    assert report.HOST_DATA == b"\x02" * 32
    assert package_measurement() == report.MEASUREMENT
    assert abi.decode_tcb(report.REPORTED_TCB, "Milan").SNP == 24
    assert simulated_tee.evidence(bytes(64), debug=True).report[0x00A] & 0x08


@pytest.mark.parametrize(
    ("name", "kwargs", "error"),
    [
        ("short report data", {"report_data": bytes(63)}, InvalidRequest),
        (
            "short measurement",
            {"report_data": bytes(64), "measurement": bytes(32)},
            ConfigurationError,
        ),
        ("short host data", {"report_data": bytes(64), "host_data": bytes(31)}, ConfigurationError),
    ],
)
def test_bad_arguments(
    simulated_tee: SimulatedSnpTee, name: str, kwargs: dict[str, bytes], error: type[Exception]
) -> None:
    with pytest.raises(error):
        simulated_tee.evidence(**kwargs)


def test_is_an_evidence_provider(simulated_tee: SimulatedSnpTee) -> None:
    assert isinstance(simulated_tee, EvidenceProvider)


def test_corrupt_data_directory_is_a_configuration_error(
    simulated_tee: SimulatedSnpTee, tmp_path: Path
) -> None:
    (tmp_path / "simulated-root.pem").write_bytes(simulated_tee.root_pem)
    with pytest.raises(ConfigurationError):
        SimulatedSnpTee.open(tmp_path)


def test_concurrent_openers_share_one_chain(tmp_path: Path) -> None:
    results: list[bytes] = []

    def open_it() -> None:
        results.append(SimulatedSnpTee.open(tmp_path / "shared").root_pem)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3
    assert len(set(results)) == 1
