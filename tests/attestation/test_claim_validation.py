"""``claim_failures`` refuses simulated claims unless the policy allows simulation.

Through ``verify_evidence`` this check is never the one that refuses:
``check_evidence`` turns away evidence marked simulated first, and gives the
verifier no simulated root unless the policy allows simulation, so no claims
chained to one reach validation. It stays as defence in depth for any other
caller of ``claim_failures``, and is tested here directly.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from cleanroom.attestation import AttestationPolicy
from cleanroom.attestation.platform import TCB_STATUS_NOT_APPLICABLE, Claims
from cleanroom.attestation.validate import claim_failures

MEASUREMENT = b"\x11" * 48
MRENCLAVE = b"\x22" * 32
REPORT_DATA = b"\x33" * 64
SIMULATED = (
    "simulated: got evidence from a simulated TEE, expected hardware evidence"
    " (allow_simulated is false)"
)

SNP = Claims(
    platform="sev-snp",
    measurements={"MEASUREMENT": MEASUREMENT},
    report_data=REPORT_DATA,
    host_data=bytes(32),
    debug=False,
    tcb={"BOOT_LOADER": 4, "TEE": 0, "SNP": 24, "MICROCODE": 219},
    tcb_status=TCB_STATUS_NOT_APPLICABLE,
    advisory_ids=(),
    signing_key="vcek",
    root="ARK-Simulated",
    simulated=True,
    fields={"VMPL": 0},
)
SGX = Claims(
    platform="sgx",
    measurements={"MRENCLAVE": MRENCLAVE, "MRSIGNER": bytes(32)},
    report_data=REPORT_DATA,
    host_data=bytes(64),
    debug=False,
    tcb={},
    tcb_status="UpToDate",
    advisory_ids=(),
    signing_key="pck",
    root="Test SGX Root CA",
    simulated=True,
    revocation_checked=True,
    fields={"ATTRIBUTES": bytes.fromhex("0500000000000000e700000000000000")},  # INIT, MODE64BIT
)
CASES = [
    pytest.param(SNP, {"measurements": [MEASUREMENT.hex()]}, id="sev-snp"),
    pytest.param(SGX, {"mrenclave": [MRENCLAVE.hex()]}, id="sgx"),
]


@pytest.mark.parametrize(("claims", "fields"), CASES)
def test_simulated_claims_fail_a_policy_without_allow_simulated(
    claims: Claims, fields: dict[str, list[str]]
) -> None:
    policy = AttestationPolicy(**fields)  # type: ignore[arg-type]
    assert claim_failures(claims, policy, report_data=REPORT_DATA) == [SIMULATED]


@pytest.mark.parametrize(("claims", "fields"), CASES)
def test_simulated_claims_pass_when_the_policy_allows_simulation(
    claims: Claims, fields: dict[str, list[str]]
) -> None:
    policy = AttestationPolicy(allow_simulated=True, **fields)  # type: ignore[arg-type]
    assert claim_failures(claims, policy, report_data=REPORT_DATA) == []


@pytest.mark.parametrize(("claims", "fields"), CASES)
def test_hardware_claims_are_not_judged_as_simulated(
    claims: Claims, fields: dict[str, list[str]]
) -> None:
    hardware = replace(claims, simulated=False, revocation_checked=True)
    policy = AttestationPolicy(**fields)  # type: ignore[arg-type]
    assert claim_failures(hardware, policy, report_data=REPORT_DATA) == []


def test_the_simulated_failure_comes_with_the_others() -> None:
    # Every failed check is reported at once, the simulated one first.
    failures = claim_failures(
        replace(SNP, debug=True),
        AttestationPolicy([bytes(48).hex()]),
        report_data=bytes(64),
    )
    assert [f.split(":")[0] for f in failures] == [
        "simulated",
        "REPORT_DATA",
        "POLICY.DEBUG",
        "MEASUREMENT",
    ]
