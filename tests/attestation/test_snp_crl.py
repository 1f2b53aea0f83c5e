"""AMD CRLs, checked when supplied: revoked ASK, forged, stale, foreign CRLs."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cleanroom.attestation import AttestationPolicy, VerifiedEvidence, verify_evidence
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.attestation.snp.certs import AmdCertificate, parse_certificate
from cleanroom.attestation.snp.crl import check_revocation, parse_crl
from cleanroom.errors import AttestationError, EvidenceFormatError, EvidenceSignatureError

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
NOW = datetime.now(UTC)


def _ark_key(tee: SimulatedSnpTee) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(
        (tee.data_dir / "simulated-ark.key").read_bytes(), None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _crl(
    tee: SimulatedSnpTee,
    *,
    revoked: tuple[int, ...] = (),
    signer: SimulatedSnpTee | None = None,
    this_update: datetime = NOW - timedelta(days=1),
    next_update: datetime = NOW + timedelta(days=1),
    rsa_padding: padding.PSS | padding.PKCS1v15 = PSS,
) -> str:
    issuer = x509.load_pem_x509_certificate(tee.root_pem).subject
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(this_update)
        .next_update(next_update)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(this_update)
            .build()
        )
    crl = builder.sign(_ark_key(signer or tee), hashes.SHA384(), rsa_padding=rsa_padding)
    return base64.b64encode(crl.public_bytes(serialization.Encoding.DER)).decode()


def _ask_serial(tee: SimulatedSnpTee) -> int:
    ask = tee.evidence(bytes(64)).certificates[1]
    return x509.load_der_x509_certificate(ask).serial_number


def _anchor_and_chain(tee: SimulatedSnpTee) -> tuple[AmdCertificate, list[AmdCertificate]]:
    certificates = tee.evidence(bytes(64)).certificates
    anchor = parse_certificate(
        x509.load_pem_x509_certificate(tee.root_pem).public_bytes(serialization.Encoding.DER)
    )
    return anchor, [parse_certificate(der) for der in certificates[:2]]


def _verify(tee: SimulatedSnpTee, crls: list[str]) -> VerifiedEvidence:
    evidence = dataclasses.replace(
        tee.evidence(bytes(64), measurement=bytes(48)), collateral={"amd_crls": crls}
    )
    policy = AttestationPolicy(
        [bytes(48).hex()], allow_simulated=True, simulated_root=tee.root_pem_path
    )
    return verify_evidence(evidence, policy, report_data=bytes(64))


def test_a_current_crl_without_our_serials_passes(simulated_tee: SimulatedSnpTee) -> None:
    # Simulated evidence is exempt from require_crl, so passing alone proves nothing:
    # the CRL must have been applied and counted as a current check.
    verified = _verify(simulated_tee, [_crl(simulated_tee, revoked=(12345,))])
    assert verified.revocation_checked is True
    assert _verify(simulated_tee, []).revocation_checked is False


def test_an_expired_crl_neither_refuses_nor_counts(simulated_tee: SimulatedSnpTee) -> None:
    """Evidence that carried a CRL stays verifiable once the CRL expires: it is still
    applied, but the verification no longer counts as checked against a current one."""
    stale = _crl(
        simulated_tee, this_update=NOW - timedelta(days=60), next_update=NOW - timedelta(days=30)
    )
    _verify(simulated_tee, [stale])
    anchor, chain = _anchor_and_chain(simulated_tee)
    crls = [parse_crl(base64.b64decode(stale))]
    assert check_revocation(crls, anchor, chain, NOW) is False
    fresh = parse_crl(base64.b64decode(_crl(simulated_tee)))
    assert check_revocation([*crls, fresh], anchor, chain, NOW) is True


def test_a_crl_with_our_issuer_name_but_another_key_is_refused(
    simulated_tee: SimulatedSnpTee, other_simulated_tee: SimulatedSnpTee
) -> None:
    # Same issuer name, other key: it claims to be our ARK's, so it must verify.
    with pytest.raises(EvidenceSignatureError):
        _verify(simulated_tee, [_crl(simulated_tee, signer=other_simulated_tee)])


def test_a_crl_of_another_issuer_is_ignored(
    simulated_tee: SimulatedSnpTee, other_simulated_tee: SimulatedSnpTee
) -> None:
    issuer = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ARK-Milan")])
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(NOW - timedelta(days=1))
        .next_update(NOW + timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(_ask_serial(simulated_tee))
            .revocation_date(NOW - timedelta(days=1))
            .build()
        )
        .sign(_ark_key(other_simulated_tee), hashes.SHA384(), rsa_padding=PSS)
    )
    _verify(
        simulated_tee, [base64.b64encode(crl.public_bytes(serialization.Encoding.DER)).decode()]
    )


CrlCase = tuple[str, Callable[[SimulatedSnpTee], list[str]], type[AttestationError], str]

CASES: list[CrlCase] = [
    (
        "ASK revoked",
        lambda tee: [_crl(tee, revoked=(_ask_serial(tee),))],
        EvidenceSignatureError,
        "revoked",
    ),
    (
        # Expired, yet what it revokes stays revoked.
        "a stale CRL revoking the ASK",
        lambda tee: [
            _crl(
                tee,
                revoked=(_ask_serial(tee),),
                this_update=NOW - timedelta(days=60),
                next_update=NOW - timedelta(days=30),
            )
        ],
        EvidenceSignatureError,
        "revoked",
    ),
    (
        "CRL from the future",
        lambda tee: [
            _crl(tee, this_update=NOW + timedelta(days=2), next_update=NOW + timedelta(days=3))
        ],
        EvidenceSignatureError,
        "issued after",
    ),
    (
        "PKCS#1 v1.5 signature",
        lambda tee: [_crl(tee, rsa_padding=padding.PKCS1v15())],
        EvidenceSignatureError,
        "RSASSA-PSS",
    ),
    ("not base64", lambda tee: ["***"], EvidenceFormatError, ""),
    ("not a CRL", lambda tee: [base64.b64encode(b"\x30\x00").decode()], EvidenceFormatError, "CRL"),
]


@pytest.mark.parametrize(("name", "crls", "error", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_or_revoking_crls_are_refused(
    simulated_tee: SimulatedSnpTee,
    name: str,
    crls: Callable[[SimulatedSnpTee], list[str]],
    error: type[AttestationError],
    field: str,
) -> None:
    with pytest.raises(AttestationError) as info:
        _verify(simulated_tee, crls(simulated_tee))
    assert type(info.value) is error
    assert any(field in f for f in info.value.failures) or not field


def test_parse_crl_reads_revoked_serials(simulated_tee: SimulatedSnpTee) -> None:
    crl = parse_crl(base64.b64decode(_crl(simulated_tee, revoked=(7, 9))))
    assert crl.revoked == frozenset({7, 9})
