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
    fields={"TDATTRIBUTES": (1 << 28).to_bytes(8, "little")},  # SEPT_VE_DISABLE
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
    fields={
        "ISVPRODID": 1,
        "ISVSVN": 3,
        "ATTRIBUTES": bytes.fromhex("0500000000000000e700000000000000"),  # INIT, MODE64BIT
    },
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
        replace(SGX, fields={**SGX.fields, "ISVPRODID": 2}),
        SGX_POLICY,
        ["ISVPRODID"],
    ),
    ("SGX ISVSVN", replace(SGX, fields={**SGX.fields, "ISVSVN": 2}), SGX_POLICY, ["ISVSVN"]),
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


def _attributes(value: int) -> Claims:
    return replace(TDX, fields={"TDATTRIBUTES": value.to_bytes(8, "little")})


# TDATTRIBUTES value -> the failures it gets under the TDX policy (extra policy fields).
TD_ATTRIBUTE_CASES: list[tuple[str, int, dict[str, Any], list[str]]] = [
    ("none set", 0, {}, []),
    ("SEPT_VE_DISABLE", 1 << 28, {}, []),
    ("LASS, SEPT_VE_DISABLE, PKS and KL", 0xD8000000, {}, []),
    ("MIGRATABLE", 1 << 29, {}, ["TDATTRIBUTES.MIGRATABLE"]),
    ("PERFMON", 1 << 63, {}, ["TDATTRIBUTES.PERFMON"]),
    (
        "MIGRATABLE and PERFMON",
        (1 << 29) | (1 << 63),
        {},
        ["TDATTRIBUTES.MIGRATABLE", "TDATTRIBUTES.PERFMON"],
    ),
    ("TUD bit 1", 1 << 1, {}, ["TDATTRIBUTES bit 1"]),
    ("TUD bit 7", 1 << 7, {}, ["TDATTRIBUTES bit 7"]),
    ("reserved bit 8", 1 << 8, {}, ["TDATTRIBUTES bit 8"]),
    ("reserved bit 32", 1 << 32, {}, ["TDATTRIBUTES bit 32"]),
    ("reserved bit 62", 1 << 62, {}, ["TDATTRIBUTES bit 62"]),
    ("DEBUG is left to allow_debug", 1, {}, []),
    (
        "every bit",
        (1 << 64) - 1,
        {},
        [f"TDATTRIBUTES bit {b}" for b in range(1, 27)]
        + ["TDATTRIBUTES.MIGRATABLE"]
        + [f"TDATTRIBUTES bit {b}" for b in range(32, 63)]
        + ["TDATTRIBUTES.PERFMON"],
    ),
    ("MIGRATABLE allowed", 1 << 29, {"tdx_allowed_td_attributes": "0x20000000"}, []),
    (
        "an allow-list without SEPT_VE_DISABLE",
        1 << 28,
        {"tdx_allowed_td_attributes": 0},
        ["TDATTRIBUTES.SEPT_VE_DISABLE"],
    ),
    (
        "SEPT_VE_DISABLE required and clear",
        0,
        {"tdx_required_td_attributes": "0x10000000"},
        ["TDATTRIBUTES.SEPT_VE_DISABLE"],
    ),
    ("SEPT_VE_DISABLE required and set", 1 << 28, {"tdx_required_td_attributes": 1 << 28}, []),
]


@pytest.mark.parametrize(
    ("name", "value", "policy", "fields"),
    TD_ATTRIBUTE_CASES,
    ids=[c[0] for c in TD_ATTRIBUTE_CASES],
)
def test_td_attributes(name: str, value: int, policy: dict[str, Any], fields: list[str]) -> None:
    failures = claim_failures(
        _attributes(value), AttestationPolicy(**TDX_POLICY, **policy), report_data=REPORT_DATA
    )
    assert [f.split(":")[0] for f in failures] == fields
    assert all(": got " in f and "expected" in f for f in failures)


def test_td_attributes_missing_fail_closed() -> None:
    claims = replace(TDX, fields={})
    failures = claim_failures(claims, AttestationPolicy(**TDX_POLICY), report_data=REPORT_DATA)
    assert failures == ["TDATTRIBUTES: got none, expected 8 bytes"]


def test_authenticity_only_does_not_judge_td_attributes() -> None:
    claims = _attributes((1 << 29) | (1 << 63))
    policy = AttestationPolicy.authenticity_only()
    assert claim_failures(claims, policy, report_data=None) == []
