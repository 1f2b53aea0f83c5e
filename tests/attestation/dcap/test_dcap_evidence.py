"""DCAP evidence through the common entry point: parse, verify, then the policy."""

from __future__ import annotations

import pytest
from dcap_vectors import QVL_SGX, QVL_SGX_AT, QVL_TDX, QVL_TDX_V4_AT, qvl_collateral

from cleanroom.attestation.evidence import Evidence
from cleanroom.attestation.policy import AttestationPolicy
from cleanroom.attestation.verifier import verify_evidence
from cleanroom.errors import PolicyViolation

SGX_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
SGX_REPORT_DATA = b"Hello, world!".ljust(64, b"\0")
TDX_MRTD = (
    "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407"
    "de03ae6dc5f87f27428b2538873118b7"
)


def _sgx_evidence() -> Evidence:
    return Evidence(
        platform="sgx",
        report=(QVL_SGX / "sgx_quote_v3.bin").read_bytes(),
        collateral=qvl_collateral(QVL_SGX / "sgx_quote_v3_collateral.json"),
    )


def test_sgx_needs_its_status_and_advisories_accepted() -> None:
    strict = AttestationPolicy(mrenclave=[SGX_MRENCLAVE])
    with pytest.raises(PolicyViolation) as info:
        verify_evidence(_sgx_evidence(), strict, report_data=SGX_REPORT_DATA, at=QVL_SGX_AT)
    text = "\n".join(info.value.failures)
    assert "ConfigurationAndSWHardeningNeeded" in text
    assert "INTEL-SA-00289" in text

    lenient = AttestationPolicy(
        mrenclave=[SGX_MRENCLAVE],
        accepted_tcb_statuses=["UpToDate", "ConfigurationAndSWHardeningNeeded"],
        tolerated_advisory_ids=["INTEL-SA-00289", "INTEL-SA-00615"],
    )
    verified = verify_evidence(_sgx_evidence(), lenient, report_data=SGX_REPORT_DATA, at=QVL_SGX_AT)
    assert verified.measurement.hex() == SGX_MRENCLAVE
    assert verified.simulated is False


def test_tdx_evidence_round_trips_through_json_and_verifies() -> None:
    quote = (QVL_TDX / "tdx_quote_v4.bin").read_bytes()
    evidence = Evidence(
        platform="tdx",
        report=quote,
        collateral=qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json"),
    )
    evidence = Evidence.from_json(evidence.to_json())
    report_data = quote[0x30 + 0x208 : 0x30 + 0x248]
    verified = verify_evidence(
        evidence, AttestationPolicy(mrtd=[TDX_MRTD]), report_data=report_data, at=QVL_TDX_V4_AT
    )
    assert verified.tcb_status == "UpToDate"
    with pytest.raises(PolicyViolation, match="policy"):
        verify_evidence(
            evidence,
            AttestationPolicy(mrtd=["00" * 48]),
            report_data=report_data,
            at=QVL_TDX_V4_AT,
        )
