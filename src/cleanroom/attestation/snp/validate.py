"""SEV-SNP claims against the attestation policy (the SNP-only fields).

Works on authenticated :class:`~cleanroom.attestation.platform.Claims` and
never imports :mod:`.verify`: validation judges claims, it does not establish
them. Every failed field is reported as ``FIELD: got X, expected Y``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cleanroom.attestation.platform import Claims
from cleanroom.attestation.policy import (
    SNP_PLATFORM_INFO_BITS,
    SNP_POLICY_BITS,
    AttestationPolicy,
)

__all__ = ["snp_failures"]

# POLICY bit 18, MIGRATE_MA (ABI 56860, Table "Guest Policy Structure").
_POLICY_MIGRATE_MA = 1 << 18


def _one_of(values: tuple[bytes, ...]) -> str:
    if not values:
        return "a value from an empty allow-list (nothing is accepted)"
    return "one of " + ", ".join(v.hex() for v in values)


def _tcb_failures(field: str, tcb: object, minimums: Mapping[str, int]) -> list[str]:
    """A failure per component of the TCB *field* below its minimum; a
    component the product does not have fails (closed)."""
    failures: list[str] = []
    for name, minimum in minimums.items():
        value = tcb.get(name) if isinstance(tcb, Mapping) else None
        if not isinstance(value, int):
            failures.append(
                f"{field}.{name}: got none (not on this product), expected >= {minimum}"
            )
        elif value < minimum:
            failures.append(f"{field}.{name}: got {value}, expected >= {minimum}")
    return failures


def _version_failures(
    names: Sequence[str], got: tuple[int, ...] | None, minimum: tuple[int, ...]
) -> list[str]:
    """A version below *minimum*, compared part by part (most significant
    first), as one failure named by the part that decides."""
    wanted = ".".join(map(str, minimum))
    if got is None:
        return [f"{names[0]}: got none, expected >= {wanted}"]
    for name, value, floor in zip(names, got, minimum, strict=False):
        if value != floor:
            if value > floor:
                return []
            shown = ".".join(map(str, got))
            return [f"{name}: got {value} (version {shown}), expected >= {wanted}"]
    return []


def _firmware(value: object) -> tuple[int, ...] | None:
    """(CURRENT_MAJOR, CURRENT_MINOR, CURRENT_BUILD) from the claims'
    ``CURRENT_VERSION`` ("MAJOR.MINOR.BUILD"); None if absent or malformed."""
    parts = value.split(".") if isinstance(value, str) else []
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _bit_failures(
    field: str,
    value: object,
    bits: Mapping[str, int],
    required: Sequence[str],
    forbidden: Sequence[str],
    setting: str,
) -> list[str]:
    """A failure per named bit of *field* that is clear but required, or set
    but forbidden; every named bit fails when *field* is missing."""
    failures: list[str] = []
    for names, want in ((required, 1), (forbidden, 0)):
        for name in names:
            got = (value >> bits[name]) & 1 if isinstance(value, int) else None
            if got != want:
                failures.append(
                    f"{field}.{name}: got {'none' if got is None else got}, expected {want}"
                    f" ({setting}_{'required' if want else 'forbidden'})"
                )
    return failures


def snp_failures(claims: Claims, policy: AttestationPolicy) -> list[str]:
    """Every SEV-SNP policy field *claims* break (empty when all hold)."""
    failures: list[str] = []
    if policy.checks_measurements:
        measurement = claims.measurements.get("MEASUREMENT", b"")
        if measurement not in policy.measurements:
            failures.append(
                f"MEASUREMENT: got {measurement.hex()}, expected {_one_of(policy.measurements)}"
            )
    if policy.host_data and claims.host_data not in policy.host_data:
        failures.append(
            f"HOST_DATA: got {claims.host_data.hex()}, expected {_one_of(policy.host_data)}"
        )
    failures += _tcb_failures("REPORTED_TCB", claims.tcb, policy.min_tcb)
    failures += _tcb_failures(
        "LAUNCH_TCB", claims.fields.get("LAUNCH_TCB"), policy.snp_min_launch_tcb
    )
    failures += _tcb_failures(
        "COMMITTED_TCB", claims.fields.get("COMMITTED_TCB"), policy.snp_min_committed_tcb
    )
    if policy.snp_min_firmware is not None:
        failures += _version_failures(
            ("CURRENT_MAJOR", "CURRENT_MINOR", "CURRENT_BUILD"),
            _firmware(claims.fields.get("CURRENT_VERSION")),
            policy.snp_min_firmware,
        )
    if claims.signing_key not in policy.signing_keys:
        failures.append(
            f"KEY_INFO.SIGNING_KEY: got {claims.signing_key.upper()}, expected one of"
            f" {', '.join(k.upper() for k in policy.signing_keys) or 'none'}"
        )
    vmpl = claims.fields.get("VMPL")
    if policy.vmpl is not None and vmpl != policy.vmpl:
        failures.append(f"VMPL: got {vmpl}, expected {policy.vmpl}")
    if policy.id_key_digests:
        digest = claims.fields.get("ID_KEY_DIGEST", b"")
        if digest not in policy.id_key_digests:
            shown = digest.hex() if isinstance(digest, bytes) else repr(digest)
            failures.append(
                f"ID_KEY_DIGEST: got {shown}, expected {_one_of(policy.id_key_digests)}"
            )
    csp_id = claims.fields.get("cspID")
    if (
        claims.signing_key == "vlek"
        and policy.snp_vlek_csp_ids
        and (csp_id not in policy.snp_vlek_csp_ids)
    ):
        failures.append(
            f"cspID: got {csp_id}, expected one of {', '.join(policy.snp_vlek_csp_ids)}"
        )
    product = claims.fields.get("PRODUCT")
    if policy.snp_products and product not in policy.snp_products:
        failures.append(f"PRODUCT: got {product}, expected one of {', '.join(policy.snp_products)}")
    guest_svn = claims.fields.get("GUEST_SVN")
    if policy.snp_min_guest_svn is not None and (
        not isinstance(guest_svn, int) or guest_svn < policy.snp_min_guest_svn
    ):
        failures.append(f"GUEST_SVN: got {guest_svn}, expected >= {policy.snp_min_guest_svn}")
    guest_policy = claims.fields.get("POLICY")
    migrate_ma = isinstance(guest_policy, int) and bool(guest_policy & _POLICY_MIGRATE_MA)
    if migrate_ma and not policy.snp_allow_migration_agent:
        failures.append("POLICY.MIGRATE_MA: got 1, expected 0 (no migration agent)")
    if policy.snp_min_abi is not None:
        abi = (
            ((guest_policy >> 8) & 0xFF, guest_policy & 0xFF)
            if isinstance(guest_policy, int)
            else None
        )
        failures += _version_failures(
            ("POLICY.ABI_MAJOR", "POLICY.ABI_MINOR"), abi, policy.snp_min_abi
        )
    failures += _bit_failures(
        "POLICY",
        guest_policy,
        SNP_POLICY_BITS,
        policy.snp_policy_required,
        policy.snp_policy_forbidden,
        "policy",
    )
    failures += _bit_failures(
        "PLATFORM_INFO",
        claims.fields.get("PLATFORM_INFO"),
        SNP_PLATFORM_INFO_BITS,
        policy.snp_platform_info_required,
        policy.snp_platform_info_forbidden,
        "platform_info",
    )
    # The host chooses what collateral comes with its evidence: a revoked host
    # would leave the CRL out. Simulated chains are exempt (nothing to revoke).
    if policy.snp_require_crl and not claims.simulated and not claims.revocation_checked:
        failures.append(
            f"CRL: got none current, expected a current AMD CRL of {claims.root} (fetch it"
            " from AMD KDS, or set require_crl to false to accept unchecked revocation)"
        )
    return failures
