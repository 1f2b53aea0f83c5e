"""The VEK binding and chain selection refuse what each of their checks names.

Each case re-issues one piece of the simulated TEE's chain (or its report, or
a CRL) with the TEE's own keys, so everything else stays valid and exactly
one check can refuse it: the Turin (8-byte hwID) CHIP_ID binding, a VEK
missing the SPL of a reported TCB component, a VEK key that is not P-384, an
intermediate whose name links the chain but whose CN is the other key type's,
and a CRL that revokes the VCEK or VLEK itself. The positive controls show
the same constructions pass without their one defect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from snp_fakes import (
    CHIP_ID,
    HW_ID,
    KEY_INFO,
    SIGNING_KEY_VLEK,
    SNP_SPL,
    ark_key,
    ask_key,
    chain,
    crl,
    der,
    put,
    reissue,
    set_u32,
    sign_report,
    simulated_policy,
    vcek_key,
    with_cn,
    with_crls,
)
from test_snp_hwid_encodings import _reissued_vcek

from cleanroom.attestation import Evidence, verify_evidence
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.attestation.snp import abi
from cleanroom.errors import AttestationError, EvidenceSignatureError

MEASUREMENT = bytes(48)
REPORT_DATA = bytes(range(64))


def _evidence(
    tee: SimulatedSnpTee,
    *,
    vek: x509.Certificate | bytes | None = None,
    intermediate: x509.Certificate | None = None,
    report: Callable[[bytes], bytes] | None = None,
) -> Evidence:
    """*tee*'s evidence with its VEK, intermediate or report replaced."""
    evidence = tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    leaf = evidence.certificates[0] if vek is None else vek
    return dataclasses.replace(
        evidence,
        report=evidence.report if report is None else report(evidence.report),
        certificates=(
            leaf if isinstance(leaf, bytes) else der(leaf),
            evidence.certificates[1] if intermediate is None else der(intermediate),
        ),
    )


# --- Turin: an 8-byte hwID binds CHIP_ID[0:8], and the other 56 bytes are zero ---


def _turin(tee: SimulatedSnpTee, *, hw_id: bytes, chip_id: bytes) -> Evidence:
    """A VCEK with the 8-byte *hw_id* and a report (signed again) carrying *chip_id*."""
    return _evidence(
        tee,
        vek=_reissued_vcek(tee, hw_id),
        report=lambda r: sign_report(put(r, CHIP_ID, chip_id), vcek_key(tee)),
    )


def _chip(tee: SimulatedSnpTee) -> bytes:
    return abi.parse_report(tee.evidence(REPORT_DATA).report).CHIP_ID[:8]


def turin_other_chip(tee: SimulatedSnpTee) -> Evidence:
    chip = _chip(tee)
    other = bytes(b ^ 0xFF for b in chip)
    return _turin(tee, hw_id=other, chip_id=chip + bytes(56))


def turin_tail_not_zero(tee: SimulatedSnpTee) -> Evidence:
    chip = _chip(tee)
    return _turin(tee, hw_id=chip, chip_id=chip + b"\x01" + bytes(55))


def turin_bound(tee: SimulatedSnpTee) -> Evidence:
    chip = _chip(tee)
    return _turin(tee, hw_id=chip, chip_id=chip + bytes(56))


# --- the VEK itself ------------------------------------------------------------


def vcek_without_snp_spl(tee: SimulatedSnpTee) -> Evidence:
    vcek, _, _ = chain(tee)
    return _evidence(tee, vek=reissue(vcek, ask_key(tee), drop=[SNP_SPL]))


def vcek_with_p256_key(tee: SimulatedSnpTee) -> Evidence:
    """A VCEK certifying a P-256 key, and a report that key signed: only the
    curve check stands between it and acceptance."""
    vcek, _, _ = chain(tee)
    p256 = ec.generate_private_key(ec.SECP256R1())
    return _evidence(
        tee,
        vek=reissue(vcek, ask_key(tee), public_key=p256.public_key()),
        report=lambda r: sign_report(r, p256),
    )


# --- the intermediate: its name links the chain, its CN says which key type ---


def vcek_under_asvk_named_intermediate(tee: SimulatedSnpTee) -> Evidence:
    vcek, ask, _ = chain(tee)
    asvk = reissue(ask, ark_key(tee), subject=with_cn(ask.subject, "SEV-VLEK-Milan"))
    return _evidence(tee, vek=reissue(vcek, ask_key(tee), issuer=asvk.subject), intermediate=asvk)


def _vlek(tee: SimulatedSnpTee, *, intermediate_cn: str) -> tuple[Evidence, x509.Certificate]:
    """A VLEK-signed report: the VCEK key certified as ``SEV-VLEK`` (no hwID)
    by an intermediate named *intermediate_cn*, and KEY_INFO saying VLEK."""
    vcek, ask, _ = chain(tee)
    intermediate = reissue(ask, ark_key(tee), subject=with_cn(ask.subject, intermediate_cn))
    vlek = reissue(
        vcek,
        ask_key(tee),
        subject=with_cn(vcek.subject, "SEV-VLEK"),
        issuer=intermediate.subject,
        drop=[HW_ID],
    )
    evidence = _evidence(
        tee,
        vek=vlek,
        intermediate=intermediate,
        report=lambda r: sign_report(set_u32(r, KEY_INFO, SIGNING_KEY_VLEK), vcek_key(tee)),
    )
    return evidence, vlek


def vlek_under_ask_named_intermediate(tee: SimulatedSnpTee) -> Evidence:
    return _vlek(tee, intermediate_cn="SEV-Milan")[0]


def vlek_under_asvk(tee: SimulatedSnpTee) -> Evidence:
    return _vlek(tee, intermediate_cn="SEV-VLEK-Milan")[0]


# --- revocation of the VEK itself ------------------------------------------------


def _ark_name(tee: SimulatedSnpTee) -> x509.Name:
    return chain(tee)[2].subject


def crl_revoking_the_vcek(tee: SimulatedSnpTee) -> Evidence:
    evidence = _evidence(tee)
    serial = x509.load_der_x509_certificate(evidence.certificates[0]).serial_number
    return with_crls(evidence, crl(_ark_name(tee), ark_key(tee), revoked=[serial]))


def crl_revoking_the_vlek(tee: SimulatedSnpTee) -> Evidence:
    evidence, vlek = _vlek(tee, intermediate_cn="SEV-VLEK-Milan")
    return with_crls(evidence, crl(_ark_name(tee), ark_key(tee), revoked=[vlek.serial_number]))


def crl_revoking_others(tee: SimulatedSnpTee) -> Evidence:
    evidence, vlek = _vlek(tee, intermediate_cn="SEV-VLEK-Milan")
    return with_crls(
        evidence, crl(_ark_name(tee), ark_key(tee), revoked=[vlek.serial_number + 1, 7])
    )


Case = tuple[str, Callable[[SimulatedSnpTee], Evidence], type[AttestationError], str]

REFUSALS: list[Case] = [
    (
        "Turin hwID of another chip (CHIP_ID tail zero)",
        turin_other_chip,
        EvidenceSignatureError,
        " + zero (VCEK hwID)",
    ),
    (
        "Turin hwID matches CHIP_ID[0:8] but the tail is not zero",
        turin_tail_not_zero,
        EvidenceSignatureError,
        " + zero (VCEK hwID)",
    ),
    (
        "VCEK without snpSPL for the reported SNP component",
        vcek_without_snp_spl,
        EvidenceSignatureError,
        "REPORTED_TCB.SNP: got 24, expected the VEK SPL (missing)",
    ),
    (
        "VCEK with a P-256 key that signed the report",
        vcek_with_p256_key,
        EvidenceSignatureError,
        "SEV-VCEK: key is not ECDSA P-384",
    ),
    (
        "VCEK issued by an intermediate named as its issuer but with an ASVK's CN",
        vcek_under_asvk_named_intermediate,
        EvidenceSignatureError,
        "'SEV-VLEK-Milan' issued the SEV-VCEK but is not named as an ASK",
    ),
    (
        "VLEK issued by an intermediate named as its issuer but with an ASK's CN",
        vlek_under_ask_named_intermediate,
        EvidenceSignatureError,
        "'SEV-Milan' issued the SEV-VLEK but is not named as an ASVK",
    ),
    (
        "CRL lists the VCEK's own serial",
        crl_revoking_the_vcek,
        EvidenceSignatureError,
        "SEV-VCEK: serial 0x",
    ),
    (
        "CRL lists the VLEK's own serial",
        crl_revoking_the_vlek,
        EvidenceSignatureError,
        "SEV-VLEK: serial 0x",
    ),
]


@pytest.mark.parametrize(
    ("name", "build", "error", "fragment"), REFUSALS, ids=[c[0] for c in REFUSALS]
)
def test_refused_by_the_check_it_names(
    simulated_tee: SimulatedSnpTee,
    name: str,
    build: Callable[[SimulatedSnpTee], Evidence],
    error: type[AttestationError],
    fragment: str,
) -> None:
    with pytest.raises(AttestationError) as info:
        verify_evidence(
            build(simulated_tee),
            simulated_policy(simulated_tee, MEASUREMENT),
            report_data=REPORT_DATA,
        )
    assert type(info.value) is error, (name, info.value.failures)
    assert any(fragment in failure for failure in info.value.failures), info.value.failures


CONTROLS: list[tuple[str, Callable[[SimulatedSnpTee], Evidence], str]] = [
    ("Turin hwID bound to CHIP_ID[0:8] + zeros", turin_bound, "vcek"),
    ("VLEK under an ASVK", vlek_under_asvk, "vlek"),
    ("CRL listing other serials", crl_revoking_others, "vlek"),
]


@pytest.mark.parametrize(("name", "build", "key"), CONTROLS, ids=[c[0] for c in CONTROLS])
def test_the_same_construction_passes_without_its_defect(
    simulated_tee: SimulatedSnpTee,
    name: str,
    build: Callable[[SimulatedSnpTee], Evidence],
    key: str,
) -> None:
    verified = verify_evidence(
        build(simulated_tee), simulated_policy(simulated_tee, MEASUREMENT), report_data=REPORT_DATA
    )
    assert verified.simulated
    assert verified.signing_key == key, name
