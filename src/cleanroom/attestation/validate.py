"""Claims against the attestation policy, for every platform.

Collects *every* failed check, each as ``FIELD: got X, expected Y`` with the
vendor specification's field name, so one refusal tells an operator all that
is wrong. Works on :class:`~cleanroom.attestation.platform.Claims` only.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from cleanroom.attestation.platform import TCB_STATUS_NOT_APPLICABLE, Claims
from cleanroom.attestation.policy import AttestationPolicy
from cleanroom.attestation.snp.validate import snp_failures

__all__ = ["claim_failures", "min_tcb_failures", "td_attribute_failures"]

_DEBUG_FIELD = {"sev-snp": "POLICY.DEBUG", "tdx": "TDATTRIBUTES.DEBUG", "sgx": "ATTRIBUTES.DEBUG"}
_REPORT_DATA_FIELD = {"sev-snp": "REPORT_DATA"}


def _allow_list(name: str, value: bytes | None, allowed: tuple[bytes, ...]) -> list[str]:
    if value is None:
        return [f"{name}: got none, expected one of {', '.join(v.hex() for v in allowed)}"]
    if value in allowed:
        return []
    expected = (
        "one of " + ", ".join(v.hex() for v in allowed)
        if allowed
        else "a value from an empty allow-list (nothing is accepted)"
    )
    return [f"{name}: got {value.hex()}, expected {expected}"]


def min_tcb_failures(
    tcb: Mapping[str, int], minimums: Mapping[str, int], prefix: str = ""
) -> list[str]:
    """A failure per component below its minimum (or missing: fail closed)."""
    failures = []
    for name, minimum in minimums.items():
        value = tcb.get(name)
        if value is None:
            failures.append(f"{prefix}{name}: got none, expected >= {minimum}")
        elif value < minimum:
            failures.append(f"{prefix}{name}: got {value}, expected >= {minimum}")
    return failures


# TDATTRIBUTES bit names of the Intel TDX module ABI; other bits are reported by number.
_TD_ATTRIBUTE_NAMES = {
    0: "DEBUG",
    27: "LASS",
    28: "SEPT_VE_DISABLE",
    29: "MIGRATABLE",
    30: "PKS",
    31: "KL",
    63: "PERFMON",
}


def _td_attribute(bit: int) -> str:
    name = _TD_ATTRIBUTE_NAMES.get(bit)
    return f"TDATTRIBUTES.{name}" if name else f"TDATTRIBUTES bit {bit}"


def td_attribute_failures(claims: Claims, policy: AttestationPolicy) -> list[str]:
    """A failure per TDATTRIBUTES bit set but not allowed, or required but clear.
    DEBUG (bit 0) is left to ``allow_debug``."""
    raw = claims.fields.get("TDATTRIBUTES")
    if not isinstance(raw, bytes) or len(raw) != 8:
        return ["TDATTRIBUTES: got none, expected 8 bytes"]
    value = int.from_bytes(raw, "little") & ~1
    allowed = policy.tdx_allowed_td_attributes
    required = policy.tdx_required_td_attributes
    failures = [
        f"{_td_attribute(bit)}: got set, expected clear (allowed_td_attributes is {allowed:#018x})"
        for bit in range(64)
        if value & ~allowed & (1 << bit)
    ]
    failures += [
        f"{_td_attribute(bit)}: got clear, expected set (required_td_attributes)"
        for bit in range(64)
        if required & ~value & (1 << bit)
    ]
    return failures


def _tdx_failures(claims: Claims, policy: AttestationPolicy) -> list[str]:
    failures: list[str] = td_attribute_failures(claims, policy)
    if policy.checks_measurements:
        failures += _allow_list("MRTD", claims.measurements.get("MRTD"), policy.mrtd)
    for register, allowed in policy.rtmrs.items():
        failures += _allow_list(register, claims.measurements.get(register), allowed)
    if policy.mrconfigid:
        failures += _allow_list("MRCONFIGID", claims.host_data, policy.mrconfigid)
    failures += min_tcb_failures(claims.tcb, policy.tdx_min_tcb)
    return failures


def _sgx_failures(claims: Claims, policy: AttestationPolicy) -> list[str]:
    failures: list[str] = []
    if policy.checks_measurements:
        if not policy.mrenclave and not policy.mrsigner:
            failures.append(
                "MRENCLAVE: got "
                + claims.measurements.get("MRENCLAVE", b"").hex()
                + ", expected a value from an empty allow-list (nothing is accepted)"
            )
        if policy.mrenclave:
            failures += _allow_list(
                "MRENCLAVE", claims.measurements.get("MRENCLAVE"), policy.mrenclave
            )
        if policy.mrsigner:
            failures += _allow_list(
                "MRSIGNER", claims.measurements.get("MRSIGNER"), policy.mrsigner
            )
    prod_id = claims.fields.get("ISVPRODID")
    if policy.sgx_isv_prod_id is not None and prod_id != policy.sgx_isv_prod_id:
        failures.append(f"ISVPRODID: got {prod_id}, expected {policy.sgx_isv_prod_id}")
    svn = claims.fields.get("ISVSVN")
    if policy.sgx_min_isv_svn is not None and (
        not isinstance(svn, int) or svn < policy.sgx_min_isv_svn
    ):
        failures.append(f"ISVSVN: got {svn}, expected >= {policy.sgx_min_isv_svn}")
    failures += min_tcb_failures(claims.tcb, policy.sgx_min_tcb)
    return failures


def claim_failures(
    claims: Claims, policy: AttestationPolicy, *, report_data: bytes | None
) -> list[str]:
    """Every policy check *claims* fail; empty when the evidence is acceptable.

    ``report_data`` is the 64-byte value REPORT_DATA must equal; ``None``
    skips that check (only for inspecting evidence, never before sending a
    secret).
    """
    failures: list[str] = []
    # Defence in depth: check_evidence already refuses evidence marked
    # simulated, and gives the verifier no simulated root, unless the policy
    # allows simulation; this holds for any other caller of claim_failures.
    if claims.simulated and not policy.allow_simulated:
        failures.append(
            "simulated: got evidence from a simulated TEE, expected hardware evidence"
            " (allow_simulated is false)"
        )
    if report_data is not None and not hmac.compare_digest(claims.report_data, report_data):
        name = _REPORT_DATA_FIELD.get(claims.platform, "REPORTDATA")
        failures.append(f"{name}: got {claims.report_data.hex()}, expected {report_data.hex()}")
    if claims.debug and not policy.allow_debug:
        failures.append(
            f"{_DEBUG_FIELD.get(claims.platform, 'DEBUG')}: got enabled, expected disabled"
        )
    if not (claims.platform == "sev-snp" and claims.tcb_status == TCB_STATUS_NOT_APPLICABLE):
        if claims.tcb_status not in policy.accepted_tcb_statuses:
            failures.append(
                f"TCB status: got {claims.tcb_status}, expected one of"
                f" {', '.join(policy.accepted_tcb_statuses) or 'none'}"
            )
        untolerated = [a for a in claims.advisory_ids if a not in policy.tolerated_advisory_ids]
        if untolerated:
            failures.append(
                f"advisory IDs: got {', '.join(untolerated)}, expected only tolerated ones"
                f" ({', '.join(policy.tolerated_advisory_ids) or 'none tolerated'})"
            )
    if claims.platform == "sev-snp":
        failures += snp_failures(claims, policy)
    elif claims.platform == "tdx":
        failures += _tdx_failures(claims, policy)
    elif claims.platform == "sgx":
        failures += _sgx_failures(claims, policy)
    else:
        failures.append(f"platform: got {claims.platform!r}, expected sev-snp, tdx or sgx")
    return failures
