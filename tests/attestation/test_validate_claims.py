"""Policy validation on claims of every platform: all failures at once,
got-versus-expected, spec field names."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cleanroom.attestation import AttestationPolicy
from cleanroom.attestation.platform import Claims
from cleanroom.attestation.validate import claim_failures

MRTD = b"\x11" * 48
RTMR0 = b"\x22" * 48
MRCONFIGID = b"\x33" * 48
MRENCLAVE = b"\x44" * 32
MRSIGNER = b"\x55" * 32
REPORT_DATA = b"\x66" * 64

TDX = Claims(
    platform="tdx",
    measurements={"MRTD": MRTD, "RTMR0": RTMR0, "RTMR1": bytes(48)},
    report_data=REPORT_DATA,
    host_data=MRCONFIGID,
    debug=False,
    tcb={"PCESVN": 13},
    tcb_status="UpToDate",
    advisory_ids=(),
    signing_key="pck",
    root="Intel SGX Root CA",
)
SGX = Claims(
    platform="sgx",
    measurements={"MRENCLAVE": MRENCLAVE, "MRSIGNER": MRSIGNER},
    report_data=REPORT_DATA,
    host_data=bytes(64),
    debug=False,
    tcb={},
    tcb_status="UpToDate",
    advisory_ids=(),
    signing_key="pck",
    root="Intel SGX Root CA",
    fields={"ISVPRODID": 1, "ISVSVN": 3},
)

TDX_POLICY: dict[str, Any] = {
    "mrtd": [MRTD.hex()],
    "rtmrs": {"RTMR0": [RTMR0.hex()]},
    "mrconfigid": [MRCONFIGID.hex()],
}
SGX_POLICY: dict[str, Any] = {
    "mrenclave": [MRENCLAVE.hex()],
    "mrsigner": [MRSIGNER.hex()],
    "sgx_isv_prod_id": 1,
    "sgx_min_isv_svn": 3,
}


def test_matching_tdx_and_sgx_claims_pass() -> None:
    assert claim_failures(TDX, AttestationPolicy(**TDX_POLICY), report_data=REPORT_DATA) == []
    assert claim_failures(SGX, AttestationPolicy(**SGX_POLICY), report_data=REPORT_DATA) == []


CASES: list[tuple[str, Claims, dict[str, Any], list[str]]] = [
    ("TDX empty policy", TDX, {}, ["MRTD"]),
    (
        "TDX other MRTD",
        replace(TDX, measurements={**TDX.measurements, "MRTD": bytes(48)}),
        TDX_POLICY,
        ["MRTD"],
    ),
    (
        "TDX RTMR0",
        replace(TDX, measurements={"MRTD": MRTD, "RTMR0": bytes(48)}),
        TDX_POLICY,
        ["RTMR0"],
    ),
    ("TDX RTMR0 missing", replace(TDX, measurements={"MRTD": MRTD}), TDX_POLICY, ["RTMR0"]),
    ("TDX MRCONFIGID", replace(TDX, host_data=bytes(48)), TDX_POLICY, ["MRCONFIGID"]),
    ("TDX debug", replace(TDX, debug=True), TDX_POLICY, ["TDATTRIBUTES.DEBUG"]),
    ("TDX out of date", replace(TDX, tcb_status="OutOfDate"), TDX_POLICY, ["TCB status"]),
    (
        "TDX advisories",
        replace(TDX, tcb_status="SWHardeningNeeded", advisory_ids=("INTEL-SA-00837",)),
        TDX_POLICY,
        ["TCB status", "advisory IDs"],
    ),
    (
        "TDX everything at once",
        replace(
            TDX,
            measurements={},
            host_data=bytes(48),
            debug=True,
            tcb_status="Revoked",
            report_data=bytes(64),
        ),
        TDX_POLICY,
        ["REPORTDATA", "TDATTRIBUTES.DEBUG", "TCB status", "MRTD", "RTMR0", "MRCONFIGID"],
    ),
    ("TDX PCESVN below", TDX, {**TDX_POLICY, "tdx_min_tcb": {"PCESVN": 14}}, ["PCESVN"]),
    (
        "TDX component missing",
        TDX,
        {**TDX_POLICY, "tdx_min_tcb": {"TDXTCBCOMP01": 1}},
        ["TDXTCBCOMP01"],
    ),
    ("SGX empty policy", SGX, {}, ["MRENCLAVE"]),
    (
        "SGX component missing",
        SGX,
        {**SGX_POLICY, "sgx_min_tcb": {"SGXTCBCOMP01": 1}},
        ["SGXTCBCOMP01"],
    ),
    (
        "SGX MRENCLAVE",
        replace(SGX, measurements={"MRENCLAVE": bytes(32), "MRSIGNER": MRSIGNER}),
        SGX_POLICY,
        ["MRENCLAVE"],
    ),
    (
        "SGX MRSIGNER",
        replace(SGX, measurements={"MRENCLAVE": MRENCLAVE, "MRSIGNER": bytes(32)}),
        SGX_POLICY,
        ["MRSIGNER"],
    ),
    (
        "SGX ISVPRODID",
        replace(SGX, fields={"ISVPRODID": 2, "ISVSVN": 3}),
        SGX_POLICY,
        ["ISVPRODID"],
    ),
    ("SGX ISVSVN", replace(SGX, fields={"ISVPRODID": 1, "ISVSVN": 2}), SGX_POLICY, ["ISVSVN"]),
    ("SGX debug", replace(SGX, debug=True), SGX_POLICY, ["ATTRIBUTES.DEBUG"]),
    (
        "SGX configuration needed",
        replace(
            SGX,
            tcb_status="ConfigurationAndSWHardeningNeeded",
            advisory_ids=("INTEL-SA-00289", "INTEL-SA-00615"),
        ),
        SGX_POLICY,
        ["TCB status", "advisory IDs"],
    ),
    (
        "unknown platform",
        replace(SGX, platform="nitro", tcb_status="NotApplicable"),
        SGX_POLICY,
        ["TCB status", "platform"],
    ),
]


@pytest.mark.parametrize(("name", "claims", "policy", "fields"), CASES, ids=[c[0] for c in CASES])
def test_failures_name_every_field(
    name: str, claims: Claims, policy: dict[str, Any], fields: list[str]
) -> None:
    failures = claim_failures(claims, AttestationPolicy(**policy), report_data=REPORT_DATA)
    assert [f.split(":")[0] for f in failures] == fields
    assert all(": got " in f and "expected" in f for f in failures)


def test_dcap_minimum_tcb_at_its_limit_passes() -> None:
    policy = AttestationPolicy(**TDX_POLICY, tdx_min_tcb={"PCESVN": 13})
    assert claim_failures(TDX, policy, report_data=REPORT_DATA) == []


def test_tolerated_statuses_and_advisories_pass() -> None:
    claims = replace(
        SGX,
        tcb_status="ConfigurationAndSWHardeningNeeded",
        advisory_ids=("INTEL-SA-00289", "INTEL-SA-00615"),
    )
    policy = AttestationPolicy(
        **SGX_POLICY,
        accepted_tcb_statuses=["UpToDate", "ConfigurationAndSWHardeningNeeded"],
        tolerated_advisory_ids=["INTEL-SA-00289", "INTEL-SA-00615"],
    )
    assert claim_failures(claims, policy, report_data=REPORT_DATA) == []


def test_authenticity_only_still_requires_up_to_date() -> None:
    policy = AttestationPolicy.authenticity_only()
    assert claim_failures(TDX, policy, report_data=None) == []
    failures = claim_failures(replace(TDX, tcb_status="OutOfDate"), policy, report_data=None)
    assert [f.split(":")[0] for f in failures] == ["TCB status"]


def test_snp_status_not_applicable_is_not_judged_by_status() -> None:
    snp = replace(
        TDX,
        platform="sev-snp",
        measurements={"MEASUREMENT": MRTD},
        tcb_status="NotApplicable",
        signing_key="vcek",
        fields={"VMPL": 0},
        revocation_checked=True,  # a current AMD CRL was checked (required by default)
    )
    assert claim_failures(snp, AttestationPolicy([MRTD.hex()]), report_data=REPORT_DATA) == []
    # A SEV-SNP claim with any other status is judged like everyone else's.
    odd = replace(snp, tcb_status="OutOfDate")
    assert claim_failures(odd, AttestationPolicy([MRTD.hex()]), report_data=REPORT_DATA) == [
        "TCB status: got OutOfDate, expected one of UpToDate"
    ]
