"""Hardware SEV-SNP evidence needs a current AMD CRL unless the policy opts out.

The evidence, collateral included, comes from the host being verified: a host
whose ASK, ASVK or VEK AMD revoked would simply leave the CRL out. So by
default (``snp_require_crl``) hardware evidence whose chain was not checked
against a current CRL of its ARK is refused; the verifier can fetch the CRL
itself (``complete_evidence`` with a ``KdsFetcher``).

No AMD CRL can be made in tests, and the stored real vectors come without
one: the real reports show the default refusal and the explicit opt-out.
Everything else runs on the simulated chain with its ARK pinned as Milan's
(``snp_fakes.pin_as_milan``), so it is judged exactly as hardware evidence.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from snp_fakes import (
    NOW,
    FakeKds,
    ark_key,
    b64,
    crl,
    hardware_evidence,
    pin_as_milan,
    with_crls,
)

from cleanroom.attestation import AttestationPolicy, Evidence, verify_evidence
from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.fetch import KdsFetcher, complete_evidence
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.errors import (
    AttestationError,
    ConfigurationError,
    EvidenceSignatureError,
    PolicyViolation,
    ServiceUnavailable,
)

MEASUREMENT = bytes(48)
REPORT_DATA = bytes(range(64))
NO_CRL = "CRL: got none current, expected a current AMD CRL of"
DAY = dt.timedelta(days=1)


@pytest.fixture
def ark_name(monkeypatch: pytest.MonkeyPatch, simulated_tee: SimulatedSnpTee) -> x509.Name:
    """The simulated ARK, pinned as Milan's for this test."""
    return pin_as_milan(monkeypatch, simulated_tee)


def _verify(evidence: Evidence, **policy: bool) -> object:
    return verify_evidence(
        evidence, AttestationPolicy([MEASUREMENT.hex()], **policy), report_data=REPORT_DATA
    )


def test_the_pinned_simulated_chain_is_judged_as_hardware(
    simulated_tee: SimulatedSnpTee, ark_name: x509.Name
) -> None:
    current = crl(ark_name, ark_key(simulated_tee))
    evidence = with_crls(hardware_evidence(simulated_tee, REPORT_DATA), current)
    verified = verify_evidence(
        evidence, AttestationPolicy([MEASUREMENT.hex()]), report_data=REPORT_DATA
    )
    assert verified.simulated is False
    assert verified.revocation_checked is True
    assert verified.root == "ARK-Simulated"


def _crls(tee: SimulatedSnpTee, name: x509.Name, case: str) -> list[bytes]:
    key = ark_key(tee)
    if case == "no CRL":
        return []
    if case == "stale CRL":
        return [crl(name, key, this_update=NOW - 30 * DAY, next_update=NOW - DAY)]
    if case == "CRL from the future":
        return [crl(name, key, this_update=NOW + DAY, next_update=NOW + 2 * DAY)]
    if case == "CRL without nextUpdate":
        return [crl(name, key, next_update=None)]
    if case == "only a CRL of another ARK":
        return [crl(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ARK-Genoa")]), key)]
    raise AssertionError(case)


REFUSALS: list[tuple[str, type[AttestationError], str]] = [
    ("no CRL", PolicyViolation, NO_CRL),
    # Applied, but expired: a newer one may revoke more.
    ("stale CRL", PolicyViolation, NO_CRL),
    ("CRL from the future", EvidenceSignatureError, "issued after"),
    # Applied, but it never goes stale: an old copy could be replayed forever.
    ("CRL without nextUpdate", PolicyViolation, NO_CRL),
    ("only a CRL of another ARK", PolicyViolation, NO_CRL),
]


@pytest.mark.parametrize(("case", "error", "fragment"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_hardware_evidence_without_a_current_crl_is_refused(
    simulated_tee: SimulatedSnpTee,
    ark_name: x509.Name,
    case: str,
    error: type[AttestationError],
    fragment: str,
) -> None:
    evidence = with_crls(
        hardware_evidence(simulated_tee, REPORT_DATA), *_crls(simulated_tee, ark_name, case)
    )
    with pytest.raises(AttestationError) as info:
        _verify(evidence)
    assert type(info.value) is error, info.value.failures
    assert any(fragment in f for f in info.value.failures), info.value.failures


def test_without_a_crl_the_only_failure_is_the_crl(
    simulated_tee: SimulatedSnpTee, ark_name: x509.Name
) -> None:
    evidence = dataclasses.replace(hardware_evidence(simulated_tee, REPORT_DATA), collateral=None)
    with pytest.raises(PolicyViolation) as info:
        _verify(evidence)
    assert info.value.failures == [
        "CRL: got none current, expected a current AMD CRL of ARK-Simulated (fetch it from"
        " AMD KDS, or set require_crl to false to accept unchecked revocation)"
    ]


def test_the_opt_out_accepts_evidence_without_a_crl(
    simulated_tee: SimulatedSnpTee, ark_name: x509.Name
) -> None:
    verified = verify_evidence(
        hardware_evidence(simulated_tee, REPORT_DATA),
        AttestationPolicy([MEASUREMENT.hex()], snp_require_crl=False),
        report_data=REPORT_DATA,
    )
    assert verified.simulated is False
    assert verified.revocation_checked is False


def test_the_opt_out_still_checks_the_crls_that_come(
    simulated_tee: SimulatedSnpTee, ark_name: x509.Name
) -> None:
    evidence = hardware_evidence(simulated_tee, REPORT_DATA)
    ask_serial = x509.load_der_x509_certificate(evidence.certificates[1]).serial_number
    revoking = crl(ark_name, ark_key(simulated_tee), revoked=[ask_serial])
    with pytest.raises(EvidenceSignatureError) as info:
        _verify(with_crls(evidence, revoking), snp_require_crl=False)
    assert any("SEV-Milan: serial" in f for f in info.value.failures)


def test_simulated_evidence_needs_no_crl(simulated_tee: SimulatedSnpTee) -> None:
    # Its CRL would be signed by the same local key as everything else: the
    # requirement is for hardware evidence only, so the demo and the SDK's
    # simulated policies work as before.
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    assert evidence.collateral is None
    policy = AttestationPolicy(
        [MEASUREMENT.hex()], allow_simulated=True, simulated_root=simulated_tee.root_pem_path
    )
    assert policy.snp_require_crl is True
    verified = verify_evidence(evidence, policy, report_data=REPORT_DATA)
    assert verified.simulated is True
    assert verified.revocation_checked is False


# --- the verifier fetches the CRL itself ------------------------------------------------


def test_a_verifier_that_fetches_the_crl_accepts_what_the_host_left_out(
    simulated_tee: SimulatedSnpTee, ark_name: x509.Name
) -> None:
    bare = hardware_evidence(simulated_tee, REPORT_DATA)
    assert bare.collateral is None
    current = crl(ark_name, ark_key(simulated_tee))
    web = FakeKds({KdsFetcher().crl_url("Milan"): current})
    completed = complete_evidence(bare, kds=KdsFetcher(web))
    assert completed.collateral == {"amd_crls": [b64(current)]}
    assert _verify(completed) is not None
    assert web.requests == ["https://kdsintf.amd.com/vcek/v1/Milan/crl"]


def test_a_fetched_crl_revokes_even_if_the_host_sent_an_older_one(
    simulated_tee: SimulatedSnpTee, ark_name: x509.Name
) -> None:
    evidence = hardware_evidence(simulated_tee, REPORT_DATA)
    vcek_serial = x509.load_der_x509_certificate(evidence.certificates[0]).serial_number
    older = crl(ark_name, ark_key(simulated_tee), this_update=NOW - 2 * DAY)
    newer = crl(ark_name, ark_key(simulated_tee), revoked=[vcek_serial])
    web = FakeKds({KdsFetcher().crl_url("Milan"): newer})
    completed = complete_evidence(with_crls(evidence, older), kds=KdsFetcher(web))
    assert completed.collateral == {"amd_crls": [b64(newer), b64(older)]}
    with pytest.raises(EvidenceSignatureError) as info:
        _verify(completed)
    assert any("SEV-VCEK: serial" in f for f in info.value.failures)


def test_the_fetcher_keeps_a_crl_in_memory_for_a_while(simulated_tee: SimulatedSnpTee) -> None:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ARK-Milan")])
    first = crl(name, ark_key(simulated_tee), next_update=NOW + 2 * DAY)
    url = KdsFetcher().crl_url("Milan")
    web = FakeKds({url: first})
    clock = [NOW]
    kds = KdsFetcher(web, crl_max_age=dt.timedelta(hours=1), clock=lambda: clock[0])
    assert kds.crl("Milan") == first
    clock[0] = NOW + dt.timedelta(minutes=59)
    assert kds.crl("Milan") == first
    assert web.requests == [url]
    clock[0] = NOW + dt.timedelta(minutes=61)
    kds.crl("Milan")
    assert web.requests == [url, url]
    # Never past its nextUpdate, however long the cache would keep it.
    patient = KdsFetcher(web, crl_max_age=dt.timedelta(days=30), clock=lambda: clock[0])
    patient.crl("Milan")
    clock[0] = NOW + 2 * DAY + dt.timedelta(seconds=1)
    patient.crl("Milan")
    assert web.requests == [url] * 4


def test_the_fetcher_refuses_an_answer_that_is_not_a_crl() -> None:
    web = FakeKds({KdsFetcher().crl_url("Milan"): b"<html>maintenance</html>"})
    with pytest.raises(ServiceUnavailable, match="did not answer a DER CRL"):
        KdsFetcher(web).crl("Milan")


ASSETS = Path(__file__).resolve().parents[1] / "assets" / "attestation" / "snp"
COCO = ASSETS / "coco-trustee-milan-vcek-vlek"


def test_a_vlek_report_gets_the_vlek_crl_and_a_v2_report_its_product_from_the_vek() -> None:
    # A version 2 VLEK report: no CPUID, so the product line is the VLEK's.
    report = ASSETS / "openanolis-trustee-turin-v5-and-vlek" / "test-vlek-report.bin"
    certificates = tuple(
        split_certificates(
            (ASSETS / "openanolis-trustee-turin-v5-and-vlek" / "test-vlek.der").read_bytes()
        )
    )
    assert parse_certificate(certificates[0]).extensions.product == "Milan"
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ARK-Milan")])
    any_crl = crl(name, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    url = KdsFetcher().crl_url("Milan", "vlek")
    web = FakeKds({url: any_crl})
    completed = complete_evidence(
        Evidence("sev-snp", report.read_bytes(), certificates), kds=KdsFetcher(web)
    )
    assert web.requests == [url]
    assert completed.certificates == certificates
    assert completed.collateral == {"amd_crls": [base64.b64encode(any_crl).decode()]}


def test_a_v2_report_without_a_known_product_is_a_configuration_error() -> None:
    report = (COCO / "test-report.bin").read_bytes()  # version 2, VCEK not given
    web = FakeKds({})
    with pytest.raises(ConfigurationError):
        KdsFetcher(web).crl_for(report)
    assert web.requests == []


def test_simulated_evidence_is_not_completed(simulated_tee: SimulatedSnpTee) -> None:
    web = FakeKds({})
    evidence = simulated_tee.evidence(REPORT_DATA)
    assert complete_evidence(evidence, kds=KdsFetcher(web)) == evidence
    assert web.requests == []


# --- the real vectors: refused by default, accepted with the explicit opt-out ---------

MS = ASSETS / "ms-tav-milan-genoa-turin"
REAL = [
    pytest.param(
        MS / "milan_attestation_report.bin", ("milan_vcek.pem", "milan_ask.pem"), id="milan"
    ),
    pytest.param(
        MS / "turin_attestation_report.bin", ("turin_vcek.pem", "turin_ask.pem"), id="turin"
    ),
    pytest.param(
        COCO / "test-vlek-report.bin",
        ("test-vlek.der", "milan_ask_ark_asvk.pem"),
        id="milan-vlek",
    ),
]


@pytest.mark.parametrize(("report", "certs"), REAL)
def test_real_reports_without_a_crl_are_refused_unless_the_policy_opts_out(
    report: Path, certs: tuple[str, ...]
) -> None:
    certificates = tuple(
        der for name in certs for der in split_certificates((report.parent / name).read_bytes())
    )
    evidence = Evidence("sev-snp", report.read_bytes(), certificates)
    at = max(parse_certificate(d).not_before for d in certificates) + DAY
    raw = report.read_bytes()
    measurement, report_data = raw[0x90:0xC0], raw[0x50:0x90]
    strict = AttestationPolicy([measurement.hex()], vmpl=None)
    with pytest.raises(PolicyViolation) as info:
        verify_evidence(evidence, strict, report_data=report_data, at=at)
    assert [f.split(":")[0] for f in info.value.failures] == ["CRL"]
    assert NO_CRL in info.value.failures[0]
    relaxed = AttestationPolicy([measurement.hex()], vmpl=None, snp_require_crl=False)
    verified = verify_evidence(evidence, relaxed, report_data=report_data, at=at)
    assert verified.simulated is False
    assert verified.revocation_checked is False


# --- the policy field ------------------------------------------------------------------


def test_require_crl_in_a_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[sev-snp]\nmeasurements = ["' + "00" * 48 + '"]\n')
    assert AttestationPolicy.from_file(path).snp_require_crl is True
    path.write_text('[sev-snp]\nmeasurements = ["' + "00" * 48 + '"]\nrequire_crl = false\n')
    relaxed = AttestationPolicy.from_file(path)
    assert relaxed.snp_require_crl is False
    assert relaxed.to_dict()["sev-snp"]["require_crl"] is False
    assert AttestationPolicy.from_dict(relaxed.to_dict()).snp_require_crl is False
    path.write_text('[sev-snp]\nmeasurements = ["' + "00" * 48 + '"]\nrequire_crl = "no"\n')
    with pytest.raises(ConfigurationError, match="require_crl"):
        AttestationPolicy.from_file(path)


def test_authenticity_only_requires_a_crl_unless_told_otherwise() -> None:
    assert AttestationPolicy.authenticity_only().snp_require_crl is True
    assert AttestationPolicy.authenticity_only(snp_require_crl=False).snp_require_crl is False
