"""CHIP_ID binds to the VCEK's hwID in both encodings: the raw bytes (as KDS
issues them) and a DER OCTET STRING wrapping them."""

from __future__ import annotations

import dataclasses
import datetime as dt

import asn1crypto.core
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cleanroom.attestation import AttestationPolicy, verify_evidence
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.attestation.snp import abi
from cleanroom.errors import EvidenceSignatureError

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
AMD = "1.3.6.1.4.1.3704.1."


def _reissued_vcek(tee: SimulatedSnpTee, hw_id_value: bytes) -> bytes:
    """The TEE's VCEK (same key, same SPLs) issued again with *hw_id_value*
    as the hwID extension value, signed by the TEE's ASK."""
    original = x509.load_der_x509_certificate(tee.evidence(bytes(64)).certificates[0])
    ask_key = serialization.load_pem_private_key(
        (tee.data_dir / "simulated-ask.key").read_bytes(), None
    )
    assert isinstance(ask_key, rsa.RSAPrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.issuer)
        .public_key(original.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
    )
    for ext in original.extensions:
        if ext.oid.dotted_string == AMD + "4":
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ext.oid, hw_id_value), critical=False
            )
        else:
            builder = builder.add_extension(ext.value, critical=ext.critical)
    cert = builder.sign(ask_key, hashes.SHA384(), rsa_padding=PSS)
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("wrapped", [False, True], ids=["raw", "octet-string"])
def test_both_hwid_encodings_bind(simulated_tee: SimulatedSnpTee, wrapped: bool) -> None:
    evidence = simulated_tee.evidence(bytes(64), measurement=bytes(48))
    chip_id = abi.parse_report(evidence.report).CHIP_ID
    value = bytes(asn1crypto.core.OctetString(chip_id).dump()) if wrapped else chip_id
    assert value[:2] == (b"\x04\x40" if wrapped else chip_id[:2])
    reissued = dataclasses.replace(
        evidence, certificates=(_reissued_vcek(simulated_tee, value), *evidence.certificates[1:])
    )
    policy = AttestationPolicy(
        [bytes(48).hex()], allow_simulated=True, simulated_root=simulated_tee.root_pem_path
    )
    assert verify_evidence(reissued, policy, report_data=bytes(64)).simulated


def test_a_wrapped_hwid_of_another_chip_fails(simulated_tee: SimulatedSnpTee) -> None:
    evidence = simulated_tee.evidence(bytes(64), measurement=bytes(48))
    other_chip = bytes(64)[:-1] + b"\x01"
    value = bytes(asn1crypto.core.OctetString(other_chip).dump())
    reissued = dataclasses.replace(
        evidence, certificates=(_reissued_vcek(simulated_tee, value), *evidence.certificates[1:])
    )
    policy = AttestationPolicy(
        [bytes(48).hex()], allow_simulated=True, simulated_root=simulated_tee.root_pem_path
    )
    with pytest.raises(EvidenceSignatureError) as info:
        verify_evidence(reissued, policy, report_data=bytes(64))
    assert any(f.startswith("CHIP_ID") for f in info.value.failures)
