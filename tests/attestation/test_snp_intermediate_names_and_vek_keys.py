"""A chain to an added (simulated) root: the intermediate's CN, and the VEK's key type.

For a chain to a root the caller added there is no product line to name the
intermediate after, so its CN must still say it is an ASK: ``SEV-`` followed
by something that is neither ``VLEK-`` (an ASVK) nor the leaf name
``SEV-VCEK``. Each refusal row re-issues the simulated ASK under another CN
(and the VCEK under that name), all signatures valid, so only the CN check can
refuse it; the control renames it to another ASK name and passes.

A VEK that certifies an RSA key is refused by name as "not ECDSA P-384",
not with an error from reading an RSA key's curve. Evidence that names no
product line (no productName in the VCEK, an unknown CPUID family in the
report) is refused even when a simulated root would anchor it. The chain
links by name as well as by signature: an ASK whose subject is not the VCEK's
issuer, or whose issuer is not the root's subject, does not link even though
the same keys signed everything. And the platform verifier
used on its own (not through ``verify_evidence``, which checks this too)
refuses a naive verification time as a configuration error rather than
comparing it with the certificates' UTC validity windows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from snp_fakes import (
    AMD,
    ark_key,
    ask_key,
    chain,
    der,
    put,
    reissue,
    sign_report,
    simulated_policy,
    vcek_key,
    with_cn,
)

from cleanroom.attestation import Evidence, verify_evidence
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.attestation.snp.verify import SnpVerifier
from cleanroom.errors import ConfigurationError, EvidenceSignatureError

MEASUREMENT = bytes(48)
REPORT_DATA = bytes(range(64))


def _evidence(
    tee: SimulatedSnpTee, vek: x509.Certificate, intermediate: x509.Certificate | None = None
) -> Evidence:
    evidence = tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    return dataclasses.replace(
        evidence,
        certificates=(
            der(vek),
            evidence.certificates[1] if intermediate is None else der(intermediate),
        ),
    )


def _ask_named(cn: str) -> Callable[[SimulatedSnpTee], Evidence]:
    """The simulated ASK re-issued as *cn*, and the VCEK re-issued under it."""

    def build(tee: SimulatedSnpTee) -> Evidence:
        vcek, ask, _ = chain(tee)
        renamed = reissue(ask, ark_key(tee), subject=with_cn(ask.subject, cn))
        return _evidence(tee, reissue(vcek, ask_key(tee), issuer=renamed.subject), renamed)

    return build


def _vcek_with_rsa_key(tee: SimulatedSnpTee) -> Evidence:
    vcek, _, _ = chain(tee)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _evidence(tee, reissue(vcek, ask_key(tee), public_key=rsa_key.public_key()))


def _no_product_line(tee: SimulatedSnpTee) -> Evidence:
    """A VCEK without productName and a report whose CPUID names no known line
    (family 17h), signed again: nothing says which product the chain is of."""
    vcek, _, _ = chain(tee)
    evidence = _evidence(tee, reissue(vcek, ask_key(tee), drop=[AMD + "2"]))
    report = sign_report(put(evidence.report, 0x188, b"\x17"), vcek_key(tee))
    return dataclasses.replace(evidence, report=report)


def _ask_renamed_vcek_not(tee: SimulatedSnpTee) -> Evidence:
    """The ASK (same key, signed by the ARK) under another subject; the VCEK
    still names the old one as its issuer: the signatures verify, the names
    do not chain."""
    vcek, ask, _ = chain(tee)
    renamed = reissue(ask, ark_key(tee), subject=with_cn(ask.subject, "SEV-Genoa"))
    return _evidence(tee, vcek, renamed)


def _ask_naming_another_issuer(tee: SimulatedSnpTee) -> Evidence:
    """The ASK signed by the ARK's key but naming another root as its issuer."""
    vcek, ask, ark = chain(tee)
    moved = reissue(ask, ark_key(tee), issuer=with_cn(ark.subject, "Another-ARK"))
    return _evidence(tee, vcek, moved)


REFUSALS: list[tuple[str, Callable[[SimulatedSnpTee], Evidence], str]] = [
    (
        "intermediate CN without the SEV- prefix",
        _ask_named("Mallory-Milan"),
        "'Mallory-Milan' issued the SEV-VCEK but is not named as an ASK",
    ),
    (
        "intermediate CN that is the leaf's name",
        _ask_named("SEV-VCEK"),
        "'SEV-VCEK' issued the SEV-VCEK but is not named as an ASK",
    ),
    ("VCEK certifying an RSA key", _vcek_with_rsa_key, "SEV-VCEK: key is not ECDSA P-384"),
    (
        "intermediate subject is not the VCEK's issuer name",
        _ask_renamed_vcek_not,
        "certificates: no ASK linking SEV-VCEK to",
    ),
    (
        "intermediate issuer is not the root's subject",
        _ask_naming_another_issuer,
        "certificates: no ASK linking SEV-VCEK to",
    ),
    (
        "no product line in the report or the VCEK",
        _no_product_line,
        "productName: unknown product line",
    ),
]


@pytest.mark.parametrize(("name", "build", "fragment"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_by_the_check_it_names(
    simulated_tee: SimulatedSnpTee,
    name: str,
    build: Callable[[SimulatedSnpTee], Evidence],
    fragment: str,
) -> None:
    with pytest.raises(EvidenceSignatureError) as info:
        verify_evidence(
            build(simulated_tee),
            simulated_policy(simulated_tee, MEASUREMENT),
            report_data=REPORT_DATA,
        )
    assert any(fragment in failure for failure in info.value.failures), info.value.failures


def test_another_ask_name_passes(simulated_tee: SimulatedSnpTee) -> None:
    evidence = _ask_named("SEV-Genoa")(simulated_tee)
    verified = verify_evidence(
        evidence, simulated_policy(simulated_tee, MEASUREMENT), report_data=REPORT_DATA
    )
    assert verified.simulated
    assert verified.signing_key == "vcek"


def test_the_platform_verifier_refuses_a_naive_time(simulated_tee: SimulatedSnpTee) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    root = simulated_tee.root_pem_path.read_bytes()
    root_der = x509.load_pem_x509_certificate(root).public_bytes(serialization.Encoding.DER)
    verifier = SnpVerifier()
    aware = datetime.now(UTC)
    claims = verifier.verify(
        evidence.report, evidence.certificates, None, at=aware, additional_roots=[root_der]
    )
    assert claims.simulated
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        verifier.verify(
            evidence.report,
            evidence.certificates,
            None,
            at=aware.replace(tzinfo=None),
            additional_roots=[root_der],
        )
