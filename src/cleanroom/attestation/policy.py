"""The attestation policy: what evidence a client accepts, for every platform.

One object, read from one documented file (TOML or JSON, see
``docs/attestation-policy.md``) by both the SDK and the CLI. Every option says
what "unset" means. Measurement allow-lists fail closed: an empty list for a
platform accepts no evidence of that platform.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cleanroom.errors import ConfigurationError

__all__ = [
    "SNP_PLATFORM_INFO_BITS",
    "SNP_POLICY_BITS",
    "SGX_ATTRIBUTES_DEFAULT_ALLOWED",
    "SGX_ATTRIBUTES_DEFAULT_REQUIRED",
    "SNP_TCB_COMPONENTS",
    "TD_ATTRIBUTES_DEFAULT_ALLOWED",
    "AttestationPolicy",
]

SNP_TCB_COMPONENTS = ("BOOT_LOADER", "TEE", "SNP", "MICROCODE", "FMC")
# Guest POLICY bits a policy may require or forbid by name (SEV-SNP ABI 56860,
# "Guest Policy Structure"). DEBUG (19) is allow_debug's and MIGRATE_MA (18)
# allow_migration_agent's; bit 17 is checked when the report is parsed.
SNP_POLICY_BITS: Mapping[str, int] = MappingProxyType(
    {
        "SMT": 16,
        "SINGLE_SOCKET": 20,
        "CXL_ALLOW": 21,
        "MEM_AES_256_XTS": 22,
        "RAPL_DIS": 23,
        "CIPHERTEXT_HIDING": 24,
        "PAGE_SWAP_DISABLE": 25,
    }
)
# PLATFORM_INFO bits (ABI 56860, ATTESTATION_REPORT "PLATFORM_INFO"). Firmware
# older than a bit reports it as zero: requiring it then fails closed.
SNP_PLATFORM_INFO_BITS: Mapping[str, int] = MappingProxyType(
    {
        "SMT_EN": 0,
        "TSME_EN": 1,
        "ECC_EN": 2,
        "RAPL_DIS": 3,
        "CIPHERTEXT_HIDING_EN": 4,
        "ALIAS_CHECK_COMPLETE": 5,
    }
)
_OWN_FIELD_BITS = {"DEBUG": "allow_debug", "MIGRATE_MA": "allow_migration_agent"}
_SIGNING_KEYS = ("vcek", "vlek")
_RTMRS = ("RTMR0", "RTMR1", "RTMR2", "RTMR3")
_TOP_KEYS = frozenset(
    {
        "allow_simulated",
        "simulated_root",
        "allow_debug",
        "accepted_tcb_statuses",
        "tolerated_advisory_ids",
        "sev-snp",
        "tdx",
        "sgx",
    }
)
_SNP_KEYS = frozenset(
    {
        "measurements",
        "host_data",
        "min_tcb",
        "signing_keys",
        "vmpl",
        "id_key_digests",
        "products",
        "min_guest_svn",
        "allow_migration_agent",
        "vlek_csp_ids",
        "require_crl",
        "min_launch_tcb",
        "min_committed_tcb",
        "min_firmware",
        "min_abi",
        "policy_required",
        "policy_forbidden",
        "platform_info_required",
        "platform_info_forbidden",
    }
)
_SNP_PRODUCTS = ("Milan", "Genoa", "Turin")
_TDX_KEYS = frozenset(
    {
        "mrtd",
        "rtmrs",
        "mrconfigid",
        "min_tcb",
        "allowed_td_attributes",
        "required_td_attributes",
        "xfam",
        "mrservicetd",
        "mrowner",
        "mrownerconfig",
    }
)
# TDATTRIBUTES bits (Intel TDX module ABI, TD_PARAMS.ATTRIBUTES). DEBUG is judged
# by allow_debug alone. The default allows only guest CPU features that do not
# weaken the TD: LASS (27), SEPT_VE_DISABLE (28), PKS (30) and KL (31). Refused
# unless allowed: the other TUD bits (1-7: debug and profiling), MIGRATABLE (29:
# a migration TD may export the TD), PERFMON (63), and every reserved bit.
_TD_ATTRIBUTE_DEBUG = 1 << 0
TD_ATTRIBUTES_DEFAULT_ALLOWED = (1 << 27) | (1 << 28) | (1 << 30) | (1 << 31)
_SGX_KEYS = frozenset(
    {
        "mrenclave",
        "mrsigner",
        "isv_prod_id",
        "min_isv_svn",
        "min_tcb",
        "allowed_attributes",
        "required_attributes",
        "allowed_miscselect",
        "required_miscselect",
        "configid",
        "min_config_svn",
    }
)
# SGX ATTRIBUTES.FLAGS bits (Intel SDM vol. 3D, "SECS ATTRIBUTES"; the first 8
# bytes of ATTRIBUTES, XFRM is not judged). DEBUG (1) is judged by allow_debug
# alone. The default allows INIT (0), MODE64BIT (2) and AEXNOTIFY (10) and
# requires MODE64BIT. Refused unless allowed: PROVISIONKEY (4: the enclave may
# derive the platform's provisioning key), EINITTOKEN_KEY (5: the launch
# enclave's key), KSS (7: CONFIGID, ISVFAMILYID and ISVEXTPRODID become part of
# the identity the host chooses) and the reserved bits.
_SGX_ATTRIBUTE_DEBUG = 1 << 1
SGX_ATTRIBUTES_DEFAULT_ALLOWED = (1 << 0) | (1 << 2) | (1 << 10)
SGX_ATTRIBUTES_DEFAULT_REQUIRED = 1 << 2
# Intel TCB component names as the DCAP claims carry them (PCK certificate
# profile: SGX TCB components 1-16 and PCESVN; the QE's ISVSVN; TDX: the 16
# bytes of TEE_TCB_SVN).
_DCAP_TCB_COMPONENTS = frozenset(
    {f"SGXTCBCOMP{i:02d}" for i in range(1, 17)}
    | {f"TDXTCBCOMP{i:02d}" for i in range(1, 17)}
    | {"PCESVN", "QE_ISVSVN"}
)


def _list(values: object, name: str, what: str) -> list[object]:
    """*values* as a list, or :class:`ConfigurationError` unless it is a list-like
    collection (not None, not a string, not a mapping)."""
    if (
        values is None
        or isinstance(values, str | bytes | Mapping)
        or not isinstance(values, Iterable)
    ):
        raise ConfigurationError(f"attestation policy {name} must be a list of {what}")
    return list(values)


def _hex_values(values: Iterable[str], name: str, size: int) -> tuple[bytes, ...]:
    out = []
    for value in _list(values, name, "hex strings"):
        if not isinstance(value, str):
            raise ConfigurationError(f"attestation policy {name} must hold hex strings")
        try:
            raw = bytes.fromhex(value)
        except ValueError as exc:
            raise ConfigurationError(f"attestation policy {name}: {value!r} is not hex") from exc
        if len(raw) != size:
            raise ConfigurationError(
                f"attestation policy {name}: {value!r} has {len(raw)} bytes, expected {size}"
            )
        out.append(raw)
    return tuple(dict.fromkeys(out))


def _strings(values: Iterable[str], name: str) -> tuple[str, ...]:
    items = _list(values, name, "strings")
    if not all(isinstance(v, str) for v in items):
        raise ConfigurationError(f"attestation policy {name} must be a list of strings")
    return tuple(dict.fromkeys(str(v) for v in items))


def _registers(
    rtmrs: Mapping[str, Sequence[str]] | None,
) -> Mapping[str, tuple[bytes, ...]]:
    if rtmrs is None:
        return MappingProxyType({})
    if not isinstance(rtmrs, Mapping):
        raise ConfigurationError("attestation policy rtmrs must be a table/object of registers")
    registers: dict[str, tuple[bytes, ...]] = {}
    for name, values in rtmrs.items():
        if not isinstance(name, str) or name.upper() not in _RTMRS:
            raise ConfigurationError(f"attestation policy rtmrs has unknown register {name!r}")
        registers[name.upper()] = _hex_values(values, f"rtmrs.{name}", 48)
    return MappingProxyType(registers)


def _optional_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"attestation policy {name} must be a non-negative integer")
    return value


def _bits(value: object, name: str, width: int, what: str) -> int:
    """A *width*-bit value: an integer or a hex string ("0x50000000")."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value, 16)
        except ValueError:
            number = None
    if number is None or not 0 <= number < 1 << width:
        raise ConfigurationError(
            f"attestation policy {name} must be a {width}-bit {what}",
            remedy='write it as a hex string, for example "0x50000000"',
        )
    return number


def _attribute_mask(
    value: object, name: str, default: int, *, width: int, what: str, debug: int
) -> int:
    """An attribute mask (*default* when unset) that does not name the DEBUG
    bit *debug* (0: the field has none), which ``allow_debug`` governs."""
    if value is None:
        return default
    mask = _bits(value, name, width, f"{what} mask")
    if mask & debug:
        raise ConfigurationError(
            f"attestation policy {name} must not name DEBUG (bit {debug.bit_length() - 1})",
            remedy=f"allow_debug decides about {what}.DEBUG",
        )
    return mask


def _required_subset(required: int, allowed: int, section: str, what: str) -> None:
    if required & ~allowed:
        raise ConfigurationError(
            f"attestation policy {section} required_{what} names bits that"
            f" allowed_{what} does not allow",
            remedy=f"add the required bits to allowed_{what}",
        )


def _xfam_values(values: object, name: str) -> tuple[int, ...]:
    items = _list(values, name, "64-bit XFAM values")
    return tuple(dict.fromkeys(_bits(v, name, 64, "XFAM value") for v in items))


def _bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"attestation policy {name} must be true or false")
    return value


def _check_keys(doc: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    """Refuse a section that is not a mapping, has unknown fields, or has a null
    field: null is not "the default" (``"vmpl": null`` must not mean "any")."""
    if not isinstance(doc, Mapping):
        raise ConfigurationError(f"attestation policy {where} must be a table/object")
    unknown = sorted(str(key) for key in set(doc) - allowed)
    if unknown:
        raise ConfigurationError(
            f"attestation policy {where} has unknown fields: {', '.join(unknown)}",
            remedy=f"allowed fields: {', '.join(sorted(allowed))}",
        )
    nulls = sorted(key for key, value in doc.items() if value is None)
    if nulls:
        raise ConfigurationError(
            f"attestation policy {where} has null fields: {', '.join(nulls)}",
            remedy="leave a field out to get its default",
        )


def _minimums(
    values: Mapping[str, int] | None, name: str, allowed: Iterable[str], limit: int
) -> Mapping[str, int]:
    allowed = frozenset(allowed)
    if values is not None and not isinstance(values, Mapping):
        raise ConfigurationError(f"attestation policy {name} must be a table/object")
    out: dict[str, int] = {}
    for component, value in (values or {}).items():
        if component not in allowed:
            raise ConfigurationError(
                f"attestation policy {name} has unknown component {component!r}",
                remedy=f"components: {', '.join(sorted(allowed))}",
            )
        minimum = _optional_int(value, f"{name}.{component}")
        if minimum is None or minimum > limit:
            raise ConfigurationError(f"attestation policy {name}.{component} must be 0 to {limit}")
        out[component] = minimum
    return MappingProxyType(out)


def _version(value: object, name: str, parts: tuple[int, ...]) -> tuple[int, ...] | None:
    """A ``"MAJOR.MINOR"`` (or, where *parts* allows, ``"MAJOR.MINOR.BUILD"``)
    version, each part 0 to 255, as a tuple; None stays None (not checked)."""
    if value is None:
        return None
    numbers = value.split(".") if isinstance(value, str) else []
    if len(numbers) not in parts or not all(
        n.isascii() and n.isdigit() and int(n) <= 0xFF for n in numbers
    ):
        shape = " or ".join(".".join(("N",) * n) for n in parts)
        raise ConfigurationError(
            f"attestation policy {name} must be a version string {shape} (each 0 to 255)",
            remedy='for example "1.55"',
        )
    return tuple(int(n) for n in numbers)


def _bit_names(
    required: Sequence[str],
    forbidden: Sequence[str],
    name: str,
    bits: Mapping[str, int],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The named bits a policy requires and forbids: known names only, and no
    name in both lists."""
    lists = (_strings(required, f"{name}_required"), _strings(forbidden, f"{name}_forbidden"))
    for kind, names in zip(("required", "forbidden"), lists, strict=True):
        unknown = [n for n in names if n not in bits]
        if unknown:
            owners = [f"{n} is {_OWN_FIELD_BITS[n]}'s" for n in unknown if n in _OWN_FIELD_BITS]
            raise ConfigurationError(
                f"attestation policy {name}_{kind}: unknown {', '.join(unknown)}",
                remedy="; ".join([*owners, f"use {', '.join(bits)}"]),
            )
    both = sorted(set(lists[0]) & set(lists[1]))
    if both:
        raise ConfigurationError(
            f"attestation policy {name}_required and {name}_forbidden both name {', '.join(both)}"
        )
    return lists


class AttestationPolicy:
    """What evidence to accept.

    Common to all platforms:

    ``allow_simulated`` (default False)
        Accept evidence from the simulated TEE. Simulated evidence proves
        nothing about hardware and gives no confidentiality.
    ``simulated_root``
        The simulated TEE's root certificate (a PEM file path, or PEM text).
        Needed to accept simulated evidence; unset: simulated evidence is
        refused even when ``allow_simulated`` is True.
    ``allow_debug`` (default False)
        Accept TEEs that allow a debugger (SNP POLICY.DEBUG, TDX
        TDATTRIBUTES.DEBUG, SGX ATTRIBUTES.DEBUG).
    ``accepted_tcb_statuses`` (default ``("UpToDate",)``)
        Intel TCB statuses accepted for TDX and SGX. SEV-SNP has no vendor
        status; use ``min_tcb``.
    ``tolerated_advisory_ids`` (default empty)
        Intel advisory IDs (``INTEL-SA-*``) that may apply to an accepted TCB;
        any other advisory is a failure.

    SEV-SNP:

    ``measurements``
        Allowed MEASUREMENT values (48-byte hex). Empty: no SEV-SNP evidence
        is accepted.
    ``host_data``
        Allowed HOST_DATA values (32-byte hex). Unset: not checked.
    ``min_tcb``
        Minimum REPORTED_TCB per component (``BOOT_LOADER``, ``TEE``,
        ``SNP``, ``MICROCODE``, ``FMC``). Unset components are not checked;
        a component the platform does not report (FMC before Turin) fails.
        Empty (the default) accepts a VCEK of any TCB, including firmware
        with published SNP fixes missing: set it for hardware evidence.
    ``snp_min_launch_tcb``, ``snp_min_committed_tcb``
        The same per-component minimums for LAUNCH_TCB (the TCB the guest was
        launched under, which a later firmware update does not raise) and
        COMMITTED_TCB (the TCB the platform cannot roll back below). Unset:
        not checked.
    ``snp_min_firmware``
        Minimum firmware version, ``"MAJOR.MINOR"`` or ``"MAJOR.MINOR.BUILD"``,
        compared in that order against CURRENT_MAJOR, CURRENT_MINOR and
        CURRENT_BUILD. None: not checked.
    ``snp_min_abi``
        Minimum guest ABI, ``"MAJOR.MINOR"``, compared against POLICY.ABI_MAJOR
        and POLICY.ABI_MINOR. None: not checked.
    ``snp_policy_required``, ``snp_policy_forbidden``
        Guest POLICY bits (:data:`SNP_POLICY_BITS`: ``SMT``,
        ``SINGLE_SOCKET``, ``CXL_ALLOW``, ``MEM_AES_256_XTS``, ``RAPL_DIS``,
        ``CIPHERTEXT_HIDING``, ``PAGE_SWAP_DISABLE``) that must be set, and
        that must be clear. Unset: not checked.
    ``snp_platform_info_required``, ``snp_platform_info_forbidden``
        The same for PLATFORM_INFO (:data:`SNP_PLATFORM_INFO_BITS`:
        ``SMT_EN``, ``TSME_EN``, ``ECC_EN``, ``RAPL_DIS``,
        ``CIPHERTEXT_HIDING_EN``, ``ALIAS_CHECK_COMPLETE``).
    ``signing_keys`` (default both)
        Endorsement keys accepted: ``"vcek"`` and/or ``"vlek"``.
    ``vmpl`` (default 0)
        The VMPL the report must come from; None (``"any"`` in a file): not
        checked.
    ``id_key_digests``
        Allowed ID_KEY_DIGEST values (48-byte hex). Unset: not checked.
    ``snp_products``
        Allowed product lines (``Milan``, ``Genoa``, ``Turin``). Unset: any.
    ``snp_min_guest_svn``
        Minimum GUEST_SVN. None: not checked.
    ``snp_vlek_csp_ids``
        For VLEK-signed reports, the allowed cspID values of the VLEK (the
        cloud provider it was issued to). Unset: not checked.
    ``snp_allow_migration_agent`` (default False)
        Accept guests launched with POLICY.MIGRATE_MA, whose memory a
        migration agent may export.
    ``snp_require_crl`` (default True)
        Refuse hardware evidence whose chain was not checked against a
        current AMD CRL of its ARK (one with a nextUpdate that has not
        passed). The host being verified supplies the evidence and can leave
        the CRL out, so without this a host whose ASK, ASVK or VEK AMD revoked
        would still be accepted. Get the CRL on the verifier's side with
        :func:`cleanroom.attestation.fetch.complete_evidence`. False accepts
        that risk: CRLs that come with the evidence are still checked.
        Simulated evidence is not affected (its CRL would be signed by the
        same local key as everything else).

    Intel TDX: ``mrtd`` allowed MRTD values (48-byte hex; empty: no TDX
    evidence accepted); ``rtmrs`` allowed values per register (``RTMR0`` to
    ``RTMR3``; registers not named are not checked); ``mrconfigid`` allowed
    MRCONFIGID values (unset: not checked); ``tdx_min_tcb`` minimum TCB
    components (``TDXTCBCOMP01``..``16``, ``SGXTCBCOMP01``..``16``,
    ``PCESVN``, ``QE_ISVSVN``; unset: not checked);
    ``tdx_allowed_td_attributes`` the TDATTRIBUTES bits that may be set
    (a 64-bit mask, integer or hex string; unset: only LASS, SEPT_VE_DISABLE,
    PKS and KL, so MIGRATABLE, PERFMON, the TUD bits and reserved bits are
    refused; DEBUG is governed by ``allow_debug`` alone);
    ``tdx_required_td_attributes`` the bits that must be set (unset: none;
    ``"0x10000000"`` requires SEPT_VE_DISABLE), a subset of the allowed ones;
    ``tdx_xfam`` allowed XFAM values, exact (integers or hex strings; unset:
    not checked, as no XFAM bit lets the host into the TD);
    ``tdx_mrservicetd`` allowed MRSERVICETD values (48-byte hex; unset: a
    TDX 1.5 body must carry all zeros, no service TD bound; set: the quote
    must carry a TDX 1.5 body with a listed value); ``tdx_mrowner`` and
    ``tdx_mrownerconfig`` allowed MROWNER and MROWNERCONFIG values (48-byte
    hex; unset: not checked).

    Intel SGX: ``mrenclave`` and ``mrsigner`` (32-byte hex) allow-lists; at
    least one must be set to accept SGX evidence, and each one set is
    checked; ``sgx_isv_prod_id`` the required ISVPRODID and
    ``sgx_min_isv_svn`` the minimum ISVSVN (None: not checked);
    ``sgx_min_tcb`` minimum TCB components, named as for TDX;
    ``sgx_allowed_attributes`` the ATTRIBUTES.FLAGS bits that may be set (a
    64-bit mask; unset: INIT, MODE64BIT and AEXNOTIFY, so PROVISIONKEY,
    EINITTOKEN_KEY, KSS and reserved bits are refused; DEBUG is
    ``allow_debug``'s alone) and ``sgx_required_attributes`` those that must
    be set (unset: MODE64BIT); ``sgx_allowed_miscselect`` and
    ``sgx_required_miscselect`` the same for MISCSELECT (a 32-bit mask;
    unset: not checked); ``sgx_configid`` allowed CONFIGID values (64-byte
    hex) and ``sgx_min_config_svn`` the minimum CONFIGSVN (unset: not
    checked; the host chooses both at launch; they are zero unless KSS is set).
    """

    def __init__(
        self,
        measurements: Sequence[str] = (),
        *,
        allow_simulated: bool = False,
        simulated_root: str | os.PathLike[str] | None = None,
        allow_debug: bool = False,
        accepted_tcb_statuses: Sequence[str] = ("UpToDate",),
        tolerated_advisory_ids: Sequence[str] = (),
        host_data: Sequence[str] = (),
        min_tcb: Mapping[str, int] | None = None,
        signing_keys: Sequence[str] = _SIGNING_KEYS,
        vmpl: int | None = 0,
        id_key_digests: Sequence[str] = (),
        mrtd: Sequence[str] = (),
        rtmrs: Mapping[str, Sequence[str]] | None = None,
        mrconfigid: Sequence[str] = (),
        mrenclave: Sequence[str] = (),
        mrsigner: Sequence[str] = (),
        sgx_isv_prod_id: int | None = None,
        sgx_min_isv_svn: int | None = None,
        tdx_min_tcb: Mapping[str, int] | None = None,
        tdx_allowed_td_attributes: int | str | None = None,
        tdx_required_td_attributes: int | str | None = None,
        tdx_xfam: Sequence[int | str] = (),
        tdx_mrservicetd: Sequence[str] = (),
        tdx_mrowner: Sequence[str] = (),
        tdx_mrownerconfig: Sequence[str] = (),
        sgx_min_tcb: Mapping[str, int] | None = None,
        sgx_allowed_attributes: int | str | None = None,
        sgx_required_attributes: int | str | None = None,
        sgx_allowed_miscselect: int | str | None = None,
        sgx_required_miscselect: int | str | None = None,
        sgx_configid: Sequence[str] = (),
        sgx_min_config_svn: int | None = None,
        snp_products: Sequence[str] = (),
        snp_min_guest_svn: int | None = None,
        snp_allow_migration_agent: bool = False,
        snp_vlek_csp_ids: Sequence[str] = (),
        snp_require_crl: bool = True,
        snp_min_launch_tcb: Mapping[str, int] | None = None,
        snp_min_committed_tcb: Mapping[str, int] | None = None,
        snp_min_firmware: str | None = None,
        snp_min_abi: str | None = None,
        snp_policy_required: Sequence[str] = (),
        snp_policy_forbidden: Sequence[str] = (),
        snp_platform_info_required: Sequence[str] = (),
        snp_platform_info_forbidden: Sequence[str] = (),
    ) -> None:
        self.measurements = _hex_values(measurements, "measurements", 48)
        self.allow_simulated = _bool(allow_simulated, "allow_simulated")
        self.simulated_root_pem = self._load_root(simulated_root)
        self.allow_debug = _bool(allow_debug, "allow_debug")
        self.accepted_tcb_statuses = _strings(accepted_tcb_statuses, "accepted_tcb_statuses")
        self.tolerated_advisory_ids = _strings(tolerated_advisory_ids, "tolerated_advisory_ids")
        self.host_data = _hex_values(host_data, "host_data", 32)
        self.min_tcb = _minimums(min_tcb, "min_tcb", SNP_TCB_COMPONENTS, 0xFF)
        self.signing_keys = _strings(signing_keys, "signing_keys")
        bad_keys = sorted(set(self.signing_keys) - set(_SIGNING_KEYS))
        if bad_keys:
            raise ConfigurationError(
                f"attestation policy signing_keys: unknown {', '.join(bad_keys)}",
                remedy="use vcek and/or vlek",
            )
        self.vmpl = _optional_int(vmpl, "vmpl")
        if self.vmpl is not None and self.vmpl > 3:
            raise ConfigurationError("attestation policy vmpl must be 0 to 3")
        self.id_key_digests = _hex_values(id_key_digests, "id_key_digests", 48)
        self.mrtd = _hex_values(mrtd, "mrtd", 48)
        self.rtmrs: Mapping[str, tuple[bytes, ...]] = _registers(rtmrs)
        self.mrconfigid = _hex_values(mrconfigid, "mrconfigid", 48)
        self.mrenclave = _hex_values(mrenclave, "mrenclave", 32)
        self.mrsigner = _hex_values(mrsigner, "mrsigner", 32)
        self.sgx_isv_prod_id = _optional_int(sgx_isv_prod_id, "isv_prod_id")
        self.sgx_min_isv_svn = _optional_int(sgx_min_isv_svn, "min_isv_svn")
        self.tdx_min_tcb = _minimums(tdx_min_tcb, "[tdx] min_tcb", _DCAP_TCB_COMPONENTS, 0xFFFF)
        self.tdx_allowed_td_attributes = _attribute_mask(
            tdx_allowed_td_attributes,
            "[tdx] allowed_td_attributes",
            TD_ATTRIBUTES_DEFAULT_ALLOWED,
            width=64,
            what="TDATTRIBUTES",
            debug=_TD_ATTRIBUTE_DEBUG,
        )
        self.tdx_required_td_attributes = _attribute_mask(
            tdx_required_td_attributes,
            "[tdx] required_td_attributes",
            0,
            width=64,
            what="TDATTRIBUTES",
            debug=_TD_ATTRIBUTE_DEBUG,
        )
        _required_subset(
            self.tdx_required_td_attributes,
            self.tdx_allowed_td_attributes,
            "[tdx]",
            "td_attributes",
        )
        self.tdx_xfam = _xfam_values(tdx_xfam, "[tdx] xfam")
        self.tdx_mrservicetd = _hex_values(tdx_mrservicetd, "[tdx] mrservicetd", 48)
        self.tdx_mrowner = _hex_values(tdx_mrowner, "[tdx] mrowner", 48)
        self.tdx_mrownerconfig = _hex_values(tdx_mrownerconfig, "[tdx] mrownerconfig", 48)
        self.sgx_min_tcb = _minimums(sgx_min_tcb, "[sgx] min_tcb", _DCAP_TCB_COMPONENTS, 0xFFFF)
        self.sgx_allowed_attributes = _attribute_mask(
            sgx_allowed_attributes,
            "[sgx] allowed_attributes",
            SGX_ATTRIBUTES_DEFAULT_ALLOWED,
            width=64,
            what="ATTRIBUTES",
            debug=_SGX_ATTRIBUTE_DEBUG,
        )
        self.sgx_required_attributes = _attribute_mask(
            sgx_required_attributes,
            "[sgx] required_attributes",
            SGX_ATTRIBUTES_DEFAULT_REQUIRED,
            width=64,
            what="ATTRIBUTES",
            debug=_SGX_ATTRIBUTE_DEBUG,
        )
        _required_subset(
            self.sgx_required_attributes, self.sgx_allowed_attributes, "[sgx]", "attributes"
        )
        self.sgx_allowed_miscselect = _attribute_mask(
            sgx_allowed_miscselect,
            "[sgx] allowed_miscselect",
            0xFFFFFFFF,
            width=32,
            what="MISCSELECT",
            debug=0,
        )
        self.sgx_required_miscselect = _attribute_mask(
            sgx_required_miscselect,
            "[sgx] required_miscselect",
            0,
            width=32,
            what="MISCSELECT",
            debug=0,
        )
        _required_subset(
            self.sgx_required_miscselect, self.sgx_allowed_miscselect, "[sgx]", "miscselect"
        )
        self.sgx_configid = _hex_values(sgx_configid, "[sgx] configid", 64)
        self.sgx_min_config_svn = _optional_int(sgx_min_config_svn, "[sgx] min_config_svn")
        self.snp_products = _strings(snp_products, "products")
        unknown_products = sorted(set(self.snp_products) - set(_SNP_PRODUCTS))
        if unknown_products:
            raise ConfigurationError(
                f"attestation policy products: unknown {', '.join(unknown_products)}",
                remedy=f"use {', '.join(_SNP_PRODUCTS)}",
            )
        self.snp_min_guest_svn = _optional_int(snp_min_guest_svn, "min_guest_svn")
        self.snp_allow_migration_agent = _bool(snp_allow_migration_agent, "allow_migration_agent")
        self.snp_vlek_csp_ids = _strings(snp_vlek_csp_ids, "vlek_csp_ids")
        self.snp_require_crl = _bool(snp_require_crl, "require_crl")
        self.snp_min_launch_tcb = _minimums(
            snp_min_launch_tcb, "min_launch_tcb", SNP_TCB_COMPONENTS, 0xFF
        )
        self.snp_min_committed_tcb = _minimums(
            snp_min_committed_tcb, "min_committed_tcb", SNP_TCB_COMPONENTS, 0xFF
        )
        self.snp_min_firmware = _version(snp_min_firmware, "min_firmware", (2, 3))
        self.snp_min_abi = _version(snp_min_abi, "min_abi", (2,))
        self.snp_policy_required, self.snp_policy_forbidden = _bit_names(
            snp_policy_required, snp_policy_forbidden, "policy", SNP_POLICY_BITS
        )
        self.snp_platform_info_required, self.snp_platform_info_forbidden = _bit_names(
            snp_platform_info_required,
            snp_platform_info_forbidden,
            "platform_info",
            SNP_PLATFORM_INFO_BITS,
        )
        self._authenticity_only = False

    @staticmethod
    def _load_root(root: str | os.PathLike[str] | None) -> bytes | None:
        if root is None:
            return None
        if isinstance(root, str) and root.lstrip().startswith("-----BEGIN CERTIFICATE-----"):
            return root.encode("ascii")
        try:
            data = Path(root).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read simulated_root {os.fspath(root)!r}") from exc
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise ConfigurationError(f"simulated_root {os.fspath(root)!r} is not a PEM certificate")
        return data

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> AttestationPolicy:
        """Read a policy file: TOML (``.toml``) or JSON (anything else that
        parses as a JSON object). Unknown fields are errors; an empty policy
        is refused. A relative ``simulated_root`` is relative to the file."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read attestation policy {str(file)!r}") from exc
        doc: Any
        try:
            doc = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ConfigurationError(
                f"attestation policy {str(file)!r} does not parse: {exc}"
            ) from exc
        return cls.from_dict(doc, base_dir=file.parent)

    @classmethod
    def from_dict(
        cls, doc: Mapping[str, Any], *, base_dir: Path | None = None
    ) -> AttestationPolicy:
        """Build a policy from the file's structure (see :meth:`from_file`)."""
        _check_keys(doc, _TOP_KEYS, "")
        if not doc:
            raise ConfigurationError(
                "the attestation policy is empty",
                remedy="name the measurements to accept, or set allow_simulated for simulation",
            )
        snp = doc.get("sev-snp", {})
        tdx = doc.get("tdx", {})
        sgx = doc.get("sgx", {})
        _check_keys(snp, _SNP_KEYS, "[sev-snp]")
        _check_keys(tdx, _TDX_KEYS, "[tdx]")
        _check_keys(sgx, _SGX_KEYS, "[sgx]")
        root = doc.get("simulated_root")
        if root is not None:
            if not isinstance(root, str):
                raise ConfigurationError("attestation policy simulated_root must be a string")
            if base_dir is not None and not root.lstrip().startswith("-----BEGIN"):
                root = str(base_dir / root)
        return cls(
            snp.get("measurements", ()),
            allow_simulated=doc.get("allow_simulated", False),
            simulated_root=root,
            allow_debug=doc.get("allow_debug", False),
            accepted_tcb_statuses=doc.get("accepted_tcb_statuses", ("UpToDate",)),
            tolerated_advisory_ids=doc.get("tolerated_advisory_ids", ()),
            host_data=snp.get("host_data", ()),
            min_tcb=snp.get("min_tcb"),
            signing_keys=snp.get("signing_keys", _SIGNING_KEYS),
            vmpl=None if snp.get("vmpl", 0) == "any" else snp.get("vmpl", 0),
            id_key_digests=snp.get("id_key_digests", ()),
            mrtd=tdx.get("mrtd", ()),
            rtmrs=tdx.get("rtmrs"),
            mrconfigid=tdx.get("mrconfigid", ()),
            mrenclave=sgx.get("mrenclave", ()),
            mrsigner=sgx.get("mrsigner", ()),
            sgx_isv_prod_id=sgx.get("isv_prod_id"),
            sgx_min_isv_svn=sgx.get("min_isv_svn"),
            tdx_min_tcb=tdx.get("min_tcb"),
            tdx_allowed_td_attributes=tdx.get("allowed_td_attributes"),
            tdx_required_td_attributes=tdx.get("required_td_attributes"),
            tdx_xfam=tdx.get("xfam", ()),
            tdx_mrservicetd=tdx.get("mrservicetd", ()),
            tdx_mrowner=tdx.get("mrowner", ()),
            tdx_mrownerconfig=tdx.get("mrownerconfig", ()),
            sgx_min_tcb=sgx.get("min_tcb"),
            sgx_allowed_attributes=sgx.get("allowed_attributes"),
            sgx_required_attributes=sgx.get("required_attributes"),
            sgx_allowed_miscselect=sgx.get("allowed_miscselect"),
            sgx_required_miscselect=sgx.get("required_miscselect"),
            sgx_configid=sgx.get("configid", ()),
            sgx_min_config_svn=sgx.get("min_config_svn"),
            snp_products=snp.get("products", ()),
            snp_min_guest_svn=snp.get("min_guest_svn"),
            snp_allow_migration_agent=snp.get("allow_migration_agent", False),
            snp_vlek_csp_ids=snp.get("vlek_csp_ids", ()),
            snp_require_crl=snp.get("require_crl", True),
            snp_min_launch_tcb=snp.get("min_launch_tcb"),
            snp_min_committed_tcb=snp.get("min_committed_tcb"),
            snp_min_firmware=snp.get("min_firmware"),
            snp_min_abi=snp.get("min_abi"),
            snp_policy_required=snp.get("policy_required", ()),
            snp_policy_forbidden=snp.get("policy_forbidden", ()),
            snp_platform_info_required=snp.get("platform_info_required", ()),
            snp_platform_info_forbidden=snp.get("platform_info_forbidden", ()),
        )

    def to_dict(self) -> dict[str, Any]:
        """The policy in the file's structure (JSON-ready; ``from_dict``
        reads it back). The simulated root is included as PEM text."""
        if self._authenticity_only:
            raise ConfigurationError("an authenticity-only policy has no file form")

        def hexes(values: tuple[bytes, ...]) -> list[str]:
            return [v.hex() for v in values]

        snp: dict[str, Any] = {
            "measurements": hexes(self.measurements),
            "host_data": hexes(self.host_data),
            "min_tcb": dict(self.min_tcb),
            "signing_keys": list(self.signing_keys),
            "id_key_digests": hexes(self.id_key_digests),
            "products": list(self.snp_products),
            "allow_migration_agent": self.snp_allow_migration_agent,
            "vlek_csp_ids": list(self.snp_vlek_csp_ids),
            "require_crl": self.snp_require_crl,
            "min_launch_tcb": dict(self.snp_min_launch_tcb),
            "min_committed_tcb": dict(self.snp_min_committed_tcb),
            "policy_required": list(self.snp_policy_required),
            "policy_forbidden": list(self.snp_policy_forbidden),
            "platform_info_required": list(self.snp_platform_info_required),
            "platform_info_forbidden": list(self.snp_platform_info_forbidden),
        }
        snp["vmpl"] = "any" if self.vmpl is None else self.vmpl
        if self.snp_min_guest_svn is not None:
            snp["min_guest_svn"] = self.snp_min_guest_svn
        if self.snp_min_firmware is not None:
            snp["min_firmware"] = ".".join(map(str, self.snp_min_firmware))
        if self.snp_min_abi is not None:
            snp["min_abi"] = ".".join(map(str, self.snp_min_abi))
        tdx: dict[str, Any] = {
            "mrtd": hexes(self.mrtd),
            "rtmrs": {name: hexes(values) for name, values in self.rtmrs.items()},
            "mrconfigid": hexes(self.mrconfigid),
            "min_tcb": dict(self.tdx_min_tcb),
            "allowed_td_attributes": f"{self.tdx_allowed_td_attributes:#018x}",
            "required_td_attributes": f"{self.tdx_required_td_attributes:#018x}",
            "xfam": [f"{value:#018x}" for value in self.tdx_xfam],
            "mrservicetd": hexes(self.tdx_mrservicetd),
            "mrowner": hexes(self.tdx_mrowner),
            "mrownerconfig": hexes(self.tdx_mrownerconfig),
        }
        sgx: dict[str, Any] = {
            "mrenclave": hexes(self.mrenclave),
            "mrsigner": hexes(self.mrsigner),
            "min_tcb": dict(self.sgx_min_tcb),
            "allowed_attributes": f"{self.sgx_allowed_attributes:#018x}",
            "required_attributes": f"{self.sgx_required_attributes:#018x}",
            "allowed_miscselect": f"{self.sgx_allowed_miscselect:#010x}",
            "required_miscselect": f"{self.sgx_required_miscselect:#010x}",
            "configid": hexes(self.sgx_configid),
        }
        if self.sgx_min_config_svn is not None:
            sgx["min_config_svn"] = self.sgx_min_config_svn
        if self.sgx_isv_prod_id is not None:
            sgx["isv_prod_id"] = self.sgx_isv_prod_id
        if self.sgx_min_isv_svn is not None:
            sgx["min_isv_svn"] = self.sgx_min_isv_svn
        doc: dict[str, Any] = {
            "allow_simulated": self.allow_simulated,
            "allow_debug": self.allow_debug,
            "accepted_tcb_statuses": list(self.accepted_tcb_statuses),
            "tolerated_advisory_ids": list(self.tolerated_advisory_ids),
            "sev-snp": snp,
            "tdx": tdx,
            "sgx": sgx,
        }
        if self.simulated_root_pem is not None:
            doc["simulated_root"] = self.simulated_root_pem.decode("ascii")
        return doc

    @classmethod
    def authenticity_only(
        cls,
        *,
        simulated_root: str | os.PathLike[str] | None = None,
        snp_require_crl: bool = True,
    ) -> AttestationPolicy:
        """A policy that checks no claim but the TCB status (``UpToDate``
        only) and, for SEV-SNP hardware, a current AMD CRL (unless
        ``snp_require_crl`` is False): authenticity alone. With
        ``simulated_root``, evidence of that simulated TEE is accepted too.
        For inspecting evidence (the CLI without ``--policy``); never for
        deciding to send secrets."""
        policy = cls(
            allow_debug=True,
            vmpl=None,
            snp_allow_migration_agent=True,
            tdx_allowed_td_attributes=((1 << 64) - 1) & ~_TD_ATTRIBUTE_DEBUG,
            sgx_allowed_attributes=((1 << 64) - 1) & ~_SGX_ATTRIBUTE_DEBUG,
            sgx_required_attributes=0,
            allow_simulated=simulated_root is not None,
            simulated_root=simulated_root,
            snp_require_crl=snp_require_crl,
        )
        policy._authenticity_only = True
        return policy

    @property
    def checks_measurements(self) -> bool:
        """False only for :meth:`authenticity_only` policies."""
        return not self._authenticity_only

    def __repr__(self) -> str:
        return (
            f"AttestationPolicy(measurements={len(self.measurements)},"
            f" allow_simulated={self.allow_simulated}, allow_debug={self.allow_debug},"
            f" mrtd={len(self.mrtd)}, mrenclave={len(self.mrenclave)},"
            f" mrsigner={len(self.mrsigner)}, snp_require_crl={self.snp_require_crl})"
        )
