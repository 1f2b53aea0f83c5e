"""Malformed DER inside AMD certificates and CRLs is a format error, never a crash.

asn1crypto parses lazily and has no exception base class: a wrong tag inside the
RSASSA-PSS parameters of the outer signatureAlgorithm surfaces as AttributeError
on first access. The evidence is host-controlled, so the verifier must turn that
into :class:`EvidenceFormatError` with a fixed message.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cleanroom.attestation import AttestationPolicy, Evidence, verify_evidence
from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.attestation.snp.crl import parse_crl
from cleanroom.errors import EvidenceFormatError

MS = Path(__file__).resolve().parents[1] / "assets/attestation/snp/ms-tav-milan-genoa-turin"
# The [1] maskGenAlgorithm tag of the outer PSS parameters of the real Milan ASK.
ASK_MGF_TAG_OFFSET = 1120
PRIVATE_TAG = 0xC7
PSS_OID = bytes.fromhex("06092a864886f70d01010a")
# After the OID: the params SEQUENCE header (2 bytes) and the [0] hashAlgorithm (17 bytes).
MGF_TAG_AFTER_OID = len(PSS_OID) + 2 + 17


def _pem(name: str) -> bytes:
    return split_certificates((MS / name).read_bytes())[0]


def _retag(der: bytes, offset: int) -> bytes:
    assert der[offset] == 0xA1, "the vector no longer has the [1] tag there"
    out = bytearray(der)
    out[offset] = PRIVATE_TAG
    return bytes(out)


def _crl_der() -> bytes:
    """A PSS-signed CRL named like AMD's (its issuer and key do not matter: it
    must not get past parsing)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ARK-Milan")])
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(now)
        .next_update(now + timedelta(days=7))
        .sign(
            key,
            hashes.SHA384(),
            rsa_padding=padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
        )
    )
    return crl.public_bytes(serialization.Encoding.DER)


def _bad_ask(vcek: bytes) -> Evidence:
    bad = _retag(_pem("milan_ask.pem"), ASK_MGF_TAG_OFFSET)
    return Evidence("sev-snp", (MS / "milan_attestation_report.bin").read_bytes(), (vcek, bad))


def _bad_crl(vcek: bytes) -> Evidence:
    der = _crl_der()
    bad = _retag(der, der.rindex(PSS_OID) + MGF_TAG_AFTER_OID)
    return Evidence(
        "sev-snp",
        (MS / "milan_attestation_report.bin").read_bytes(),
        (vcek, _pem("milan_ask.pem")),
        {"amd_crls": [base64.b64encode(bad).decode()]},
    )


CASES: list[tuple[str, Callable[[bytes], Evidence], str]] = [
    ("ASK outer PSS maskGenAlgorithm tag", _bad_ask, "certificate does not parse"),
    ("CRL outer PSS maskGenAlgorithm tag", _bad_crl, "CRL does not parse"),
]


@pytest.mark.parametrize(("name", "make", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_wrong_tag_in_pss_parameters_is_a_format_error(
    name: str, make: Callable[[bytes], Evidence], message: str
) -> None:
    vcek = _pem("milan_vcek.pem")
    at = parse_certificate(vcek).not_before + timedelta(days=1)
    policy = AttestationPolicy([bytes(48).hex()], snp_require_crl=False)
    with pytest.raises(EvidenceFormatError) as info:
        verify_evidence(make(vcek), policy, report_data=bytes(64), at=at)
    assert message in str(info.value)
    # A fixed message: nothing of the input (nor asn1crypto's text about it) is quoted.
    assert "native" not in str(info.value)
    assert not any("native" in f or "Object" in f for f in info.value.failures)


def test_parsers_translate_the_lazy_asn1_errors() -> None:
    with pytest.raises(EvidenceFormatError):
        parse_certificate(_retag(_pem("milan_ask.pem"), ASK_MGF_TAG_OFFSET))
    der = _crl_der()
    with pytest.raises(EvidenceFormatError):
        parse_crl(_retag(der, der.rindex(PSS_OID) + MGF_TAG_AFTER_OID))
