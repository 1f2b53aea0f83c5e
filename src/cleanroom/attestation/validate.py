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


# Bit names of the Intel TDX module ABI (TDATTRIBUTES) and of the Intel SDM
# (SGX ATTRIBUTES.FLAGS); other bits are reported by number.
_TD_ATTRIBUTE_NAMES = {
    0: "DEBUG",
    27: "LASS",
    28: "SEPT_VE_DISABLE",
    29: "MIGRATABLE",
    30: "PKS",
    31: "KL",
    63: "PERFMON",
}
_SGX_ATTRIBUTE_NAMES = {
    0: "INIT",
    1: "DEBUG",
    2: "MODE64BIT",
    4: "PROVISIONKEY",
    5: "EINITTOKEN_KEY",
    7: "KSS",
    10: "AEXNOTIFY",
}


def _bit_failures(
    field: str,
    names: Mapping[int, str],
    value: int,
    allowed: tuple[str, int],
    required: tuple[str, int],
    *,
    digits: int = 16,
) -> list[str]:
    """A failure per bit of *value* set but not in the *allowed* mask, or in the
    *required* mask but clear; each mask comes with its policy field's name."""
    (allowed_name, allowed_mask), (required_name, required_mask) = allowed, required

    def bit(n: int) -> str:
        return f"{field}.{names[n]}" if n in names else f"{field} bit {n}"

    failures = [
        f"{bit(n)}: got set, expected clear ({allowed_name} is {allowed_mask:#0{digits + 2}x})"
        for n in range(64)
        if value & ~allowed_mask & (1 << n)
    ]
    failures += [
        f"{bit(n)}: got clear, expected set ({required_name})"
        for n in range(64)
        if required_mask & ~value & (1 << n)
    ]
    return failures


def td_attribute_failures(claims: Claims, policy: AttestationPolicy) -> list[str]:
    """A failure per TDATTRIBUTES bit set but not allowed, or required but clear.
    DEBUG (bit 0) is left to ``allow_debug``."""
    raw = claims.fields.get("TDATTRIBUTES")
    if not isinstance(raw, bytes) or len(raw) != 8:
        return ["TDATTRIBUTES: got none, expected 8 bytes"]
    return _bit_failures(
        "TDATTRIBUTES",
        _TD_ATTRIBUTE_NAMES,
        int.from_bytes(raw, "little") & ~1,
        ("allowed_td_attributes", policy.tdx_allowed_td_attributes),
        ("required_td_attributes", policy.tdx_required_td_attributes),
    )


def _field_allow_list(claims: Claims, name: str, allowed: tuple[bytes, ...]) -> list[str]:
    value = claims.fields.get(name)
    return _allow_list(name, value if isinstance(value, bytes) else None, allowed)


def _xfam_failures(claims: Claims, policy: AttestationPolicy) -> list[str]:
    raw = claims.fields.get("XFAM")
    expected = ", ".join(f"{v:#018x}" for v in policy.tdx_xfam)
    if not isinstance(raw, bytes) or len(raw) != 8:
        return [f"XFAM: got none, expected one of {expected}"]
    value = int.from_bytes(raw, "little")
    if value in policy.tdx_xfam:
        return []
    return [f"XFAM: got {value:#018x}, expected one of {expected}"]


def _service_td_failures(claims: Claims, policy: AttestationPolicy) -> list[str]:
    """MRSERVICETD: by default all zeros (no service TD bound) where the TDX 1.5
    body carries it; a policy list must be met, and a TDX 1.0 body, which has
    no MRSERVICETD, then fails closed."""
    if policy.tdx_mrservicetd:
        return _field_allow_list(claims, "MRSERVICETD", policy.tdx_mrservicetd)
    value = claims.fields.get("MRSERVICETD")
    if not policy.checks_measurements or value is None or value == bytes(48):
        return []
    shown = value.hex() if isinstance(value, bytes) else repr(value)
    return [f"MRSERVICETD: got {shown}, expected all zeros (no service TD bound)"]


def _tdx_failures(claims: Claims, policy: AttestationPolicy) -> list[str]:
    failures: list[str] = td_attribute_failures(claims, policy)
    if policy.checks_measurements:
        failures += _allow_list("MRTD", claims.measurements.get("MRTD"), policy.mrtd)
    for register, allowed in policy.rtmrs.items():
        failures += _allow_list(register, claims.measurements.get(register), allowed)
    if policy.mrconfigid:
        failures += _allow_list("MRCONFIGID", claims.host_data, policy.mrconfigid)
    if policy.tdx_xfam:
        failures += _xfam_failures(claims, policy)
    failures += _service_td_failures(claims, policy)
    if policy.tdx_mrowner:
        failures += _field_allow_list(claims, "MROWNER", policy.tdx_mrowner)
    if policy.tdx_mrownerconfig:
        failures += _field_allow_list(claims, "MROWNERCONFIG", policy.tdx_mrownerconfig)
    failures += min_tcb_failures(claims.tcb, policy.tdx_min_tcb)
    return failures


def _sgx_identity_failures(claims: Claims, policy: AttestationPolicy) -> list[str]:
    """ATTRIBUTES.FLAGS (DEBUG left to ``allow_debug``), MISCSELECT, CONFIGID
    and CONFIGSVN."""
    raw = claims.fields.get("ATTRIBUTES")
    if not isinstance(raw, bytes) or len(raw) != 16:
        failures = ["ATTRIBUTES: got none, expected 16 bytes"]
    else:
        failures = _bit_failures(
            "ATTRIBUTES",
            _SGX_ATTRIBUTE_NAMES,
            int.from_bytes(raw[:8], "little") & ~0b10,
            ("allowed_attributes", policy.sgx_allowed_attributes),
            ("required_attributes", policy.sgx_required_attributes),
        )
    misc = claims.fields.get("MISCSELECT")
    if policy.sgx_allowed_miscselect != 0xFFFFFFFF or policy.sgx_required_miscselect:
        failures += (
            _bit_failures(
                "MISCSELECT",
                {0: "EXINFO"},
                misc,
                ("allowed_miscselect", policy.sgx_allowed_miscselect),
                ("required_miscselect", policy.sgx_required_miscselect),
                digits=8,
            )
            if isinstance(misc, int)
            else ["MISCSELECT: got none, expected a 32-bit value"]
        )
    if policy.sgx_configid:
        failures += _field_allow_list(claims, "CONFIGID", policy.sgx_configid)
    svn = claims.fields.get("CONFIGSVN")
    if policy.sgx_min_config_svn is not None and (
        not isinstance(svn, int) or svn < policy.sgx_min_config_svn
    ):
        failures.append(f"CONFIGSVN: got {svn}, expected >= {policy.sgx_min_config_svn}")
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
    failures += _sgx_identity_failures(claims, policy)
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
