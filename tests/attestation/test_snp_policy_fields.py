"""The SEV-SNP policy fields beyond REPORTED_TCB: LAUNCH_TCB and COMMITTED_TCB
minimums, the firmware version, the guest ABI, and named POLICY and
PLATFORM_INFO bits.

Each row re-signs two variants of a simulated report with the simulated VCEK:
one the policy accepts and one it refuses, with the failure named by the
field of the SEV-SNP ABI specification. The simulated report has POLICY.SMT
set, ABI 0.0, PLATFORM_INFO.SMT_EN set, TCB (BOOT_LOADER 4, TEE 0, SNP 24,
MICROCODE 219) in every TCB field, and firmware 1.55.21.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import pytest
from tests.attestation.test_attestation_api import (
    MEASUREMENT,
    REPORT_DATA,
    put,
    resign,
    set_u64,
)

from cleanroom.attestation import AttestationPolicy, verify_evidence
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.errors import PolicyViolation

Mutation = Callable[[bytes], bytes]

_POLICY = 0x008
_PLATFORM_INFO = 0x040
_COMMITTED_TCB = 0x1E0
_CURRENT_BUILD, _CURRENT_MINOR, _CURRENT_MAJOR = 0x1E8, 0x1E9, 0x1EA
_LAUNCH_TCB = 0x1F0


def same(report: bytes) -> bytes:
    return report


def bit(offset: int, number: int, on: bool) -> Mutation:
    """Set (or clear) bit *number* of the u64 at *offset*."""

    def mutate(report: bytes) -> bytes:
        value = int.from_bytes(report[offset : offset + 8], "little")
        value = value | (1 << number) if on else value & ~(1 << number)
        return set_u64(report, offset, value)

    return mutate


def abi(major: int, minor: int) -> Mutation:
    """POLICY.ABI_MAJOR and POLICY.ABI_MINOR (bits 15:8 and 7:0)."""
    return lambda r: put(r, _POLICY, bytes([minor, major]))


def milan_tcb(
    offset: int, *, bl: int = 4, tee: int = 0, snp: int = 24, ucode: int = 219
) -> Mutation:
    """A Milan TCB_VERSION (byte 0 BOOT_LOADER, 1 TEE, 6 SNP, 7 MICROCODE) at *offset*."""
    return lambda r: put(r, offset, bytes([bl, tee, 0, 0, 0, 0, snp, ucode]))


def firmware(major: int, minor: int, build: int) -> Mutation:
    return lambda r: put(r, _CURRENT_BUILD, bytes([build, minor, major]))


Row = tuple[str, dict[str, object], Mutation, Mutation, str]

# (field, offset, bit name, bit number in the ABI specification, whether the
# policy of the row requires or forbids it).
NAMED_BITS: list[tuple[str, int, str, int, str]] = [
    ("POLICY", _POLICY, "SMT", 16, "forbidden"),
    ("POLICY", _POLICY, "SMT", 16, "required"),
    ("POLICY", _POLICY, "SINGLE_SOCKET", 20, "required"),
    ("POLICY", _POLICY, "CXL_ALLOW", 21, "forbidden"),
    ("POLICY", _POLICY, "MEM_AES_256_XTS", 22, "required"),
    ("POLICY", _POLICY, "RAPL_DIS", 23, "required"),
    ("POLICY", _POLICY, "CIPHERTEXT_HIDING", 24, "required"),
    ("POLICY", _POLICY, "PAGE_SWAP_DISABLE", 25, "required"),
    ("PLATFORM_INFO", _PLATFORM_INFO, "SMT_EN", 0, "forbidden"),
    ("PLATFORM_INFO", _PLATFORM_INFO, "TSME_EN", 1, "required"),
    ("PLATFORM_INFO", _PLATFORM_INFO, "ECC_EN", 2, "required"),
    ("PLATFORM_INFO", _PLATFORM_INFO, "RAPL_DIS", 3, "forbidden"),
    ("PLATFORM_INFO", _PLATFORM_INFO, "CIPHERTEXT_HIDING_EN", 4, "required"),
    ("PLATFORM_INFO", _PLATFORM_INFO, "ALIAS_CHECK_COMPLETE", 5, "required"),
]


def _bit_row(field: str, offset: int, name: str, number: int, kind: str) -> Row:
    """Required: accepted set, refused clear; forbidden: the other way round."""
    on, off = bit(offset, number, True), bit(offset, number, False)
    good, bad = (on, off) if kind == "required" else (off, on)
    setting = f"snp_{field.lower()}_{kind}"
    return (f"{field}.{name} {kind}", {setting: [name]}, good, bad, f"{field}.{name}")


launch = partial(milan_tcb, _LAUNCH_TCB)
committed = partial(milan_tcb, _COMMITTED_TCB)


def _row(field: str, fields: dict[str, object], good: Mutation, bad: Mutation) -> Row:
    return (field, fields, good, bad, field)


# (name, policy fields, a variant the policy accepts, one it refuses, failure field)
POLICY_MUTATIONS: list[Row] = [_bit_row(*named) for named in NAMED_BITS] + [
    _row("POLICY.ABI_MINOR", {"snp_min_abi": "1.51"}, abi(1, 51), abi(1, 50)),
    _row("POLICY.ABI_MAJOR", {"snp_min_abi": "1.51"}, abi(2, 0), abi(0, 99)),
    _row("LAUNCH_TCB.SNP", {"snp_min_launch_tcb": {"SNP": 24}}, same, launch(snp=23)),
    _row(
        "LAUNCH_TCB.MICROCODE", {"snp_min_launch_tcb": {"MICROCODE": 220}}, launch(ucode=220), same
    ),
    # A component the product does not have fails closed: Milan has no FMC.
    _row("LAUNCH_TCB.FMC", {"snp_min_launch_tcb": {"FMC": 0}}, same, same),
    _row(
        "COMMITTED_TCB.BOOT_LOADER",
        {"snp_min_committed_tcb": {"BOOT_LOADER": 4}},
        same,
        committed(bl=3),
    ),
    _row("COMMITTED_TCB.TEE", {"snp_min_committed_tcb": {"TEE": 1}}, committed(tee=1), same),
    # The version compares part by part: 2.0.0 passes 1.55 although 0 < 55.
    _row("CURRENT_MINOR", {"snp_min_firmware": "1.55"}, firmware(2, 0, 0), firmware(1, 54, 99)),
    _row("CURRENT_MAJOR", {"snp_min_firmware": "2.0"}, firmware(2, 0, 0), same),
    _row("CURRENT_BUILD", {"snp_min_firmware": "1.55.22"}, firmware(1, 55, 22), same),
]


def _policy(tee: SimulatedSnpTee, fields: dict[str, object]) -> AttestationPolicy:
    return AttestationPolicy(
        [MEASUREMENT.hex()],
        allow_simulated=True,
        simulated_root=tee.root_pem_path,
        **fields,  # type: ignore[arg-type]
    )


def _verify(tee: SimulatedSnpTee, mutate: Mutation, policy: AttestationPolicy) -> None:
    evidence = tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    mutated = dataclasses.replace(evidence, report=resign(tee, mutate(evidence.report)))
    verify_evidence(mutated, policy, report_data=REPORT_DATA)


@pytest.mark.parametrize(
    ("name", "fields", "good", "bad", "field"),
    POLICY_MUTATIONS,
    ids=[m[0] for m in POLICY_MUTATIONS],
)
def test_policy_field_refuses_the_bad_variant_only(
    simulated_tee: SimulatedSnpTee,
    name: str,
    fields: dict[str, object],
    good: Mutation,
    bad: Mutation,
    field: str,
) -> None:
    policy = _policy(simulated_tee, fields)
    if good is not bad:
        _verify(simulated_tee, good, policy)
    with pytest.raises(PolicyViolation) as info:
        _verify(simulated_tee, bad, policy)
    failures = info.value.failures
    assert [f for f in failures if f.startswith(f"{field}:")], (name, failures)
    assert len(failures) == 1, (name, failures)


def test_unset_fields_check_nothing(simulated_tee: SimulatedSnpTee) -> None:
    """The defaults accept every variant the table refuses (no new default
    check), except LAUNCH_TCB.FMC, which is refused only when asked for."""
    policy = _policy(simulated_tee, {})
    for _name, _fields, _good, bad, _field in POLICY_MUTATIONS:
        _verify(simulated_tee, bad, policy)


def test_every_failure_is_reported_at_once(simulated_tee: SimulatedSnpTee) -> None:
    policy = _policy(
        simulated_tee,
        {
            "snp_policy_forbidden": ["SMT"],
            "snp_platform_info_forbidden": ["SMT_EN"],
            "snp_min_launch_tcb": {"SNP": 25},
            "snp_min_committed_tcb": {"SNP": 25},
            "snp_min_firmware": "1.56",
            "snp_min_abi": "1.0",
        },
    )
    with pytest.raises(PolicyViolation) as info:
        _verify(simulated_tee, same, policy)
    assert sorted(f.split(":")[0] for f in info.value.failures) == [
        "COMMITTED_TCB.SNP",
        "CURRENT_MINOR",
        "LAUNCH_TCB.SNP",
        "PLATFORM_INFO.SMT_EN",
        "POLICY.ABI_MAJOR",
        "POLICY.SMT",
    ]
