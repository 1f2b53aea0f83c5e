"""SEV-SNP claims against the attestation policy (the SNP-only fields).

Works on authenticated :class:`~cleanroom.attestation.platform.Claims` and
never imports :mod:`.verify`: validation judges claims, it does not establish
them. Every failed field is reported as ``FIELD: got X, expected Y``.
"""

from __future__ import annotations

from cleanroom.attestation.platform import Claims
from cleanroom.attestation.policy import AttestationPolicy

__all__ = ["snp_failures"]

# POLICY bit 18, MIGRATE_MA (ABI 56860, Table "Guest Policy Structure").
_POLICY_MIGRATE_MA = 1 << 18


def _one_of(values: tuple[bytes, ...]) -> str:
    if not values:
        return "a value from an empty allow-list (nothing is accepted)"
    return "one of " + ", ".join(v.hex() for v in values)


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
    for name, minimum in policy.min_tcb.items():
        value = claims.tcb.get(name)
        if value is None:
            failures.append(
                f"REPORTED_TCB.{name}: got none (not on this product), expected >= {minimum}"
            )
        elif value < minimum:
            failures.append(f"REPORTED_TCB.{name}: got {value}, expected >= {minimum}")
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
    # The host chooses what collateral comes with its evidence: a revoked host
    # would leave the CRL out. Simulated chains are exempt (nothing to revoke).
    if policy.snp_require_crl and not claims.simulated and not claims.revocation_checked:
        failures.append(
            f"CRL: got none current, expected a current AMD CRL of {claims.root} (fetch it"
            " from AMD KDS, or set require_crl to false to accept unchecked revocation)"
        )
    return failures
