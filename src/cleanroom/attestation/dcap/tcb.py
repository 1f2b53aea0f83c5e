"""TCB status evaluation, as Intel's Quote Verification Library defines it.

Intel "TDX DCAP Quote Verification" and QVL sources, section 4.1.2.4.17:

1. The SGX TCB level is the first ``tcb_levels`` entry (levels are ordered
   newest first) whose every ``sgxtcbcomponents[i].svn`` is at most the PCK
   certificate's CPUSVN component *i* and whose ``pcesvn`` is at most the PCK
   PCESVN.
2. For TDX, the TDX TCB level is the first such entry whose
   ``tdxtcbcomponents`` are also at most TEE_TCB_SVN, component-wise; when
   the TDX module major version (TEE_TCB_SVN[1]) is non-zero, components 0
   and 1 are skipped because the module is judged through its identity
   (``tdx_module_identities``) instead.
3. The TDX module status is that identity's first level with ``isvsvn`` at
   most TEE_TCB_SVN[0]; it is folded into the TDX level's status.
4. For a TDX 1.5 body, a TD whose module was updated while it ran may be
   "TDRelaunchAdvised" (TEE_TCB_SVN2 shows the update).
5. The QE identity status (by the QE's ISVSVN) is folded in last.

No matching level is a refusal, never a status: Intel reports
``TCB_NOT_SUPPORTED``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cleanroom.attestation.dcap.identity import (
    IdentityTcbLevel,
    TcbInfo,
    TcbLevel,
    TdxModuleIdentity,
)
from cleanroom.errors import EvidenceSignatureError, PolicyViolation

__all__ = [
    "CONFIGURATION_AND_SW_HARDENING_NEEDED",
    "CONFIGURATION_NEEDED",
    "OUT_OF_DATE",
    "OUT_OF_DATE_CONFIGURATION_NEEDED",
    "REVOKED",
    "SW_HARDENING_NEEDED",
    "TCB_STATUSES",
    "TD_RELAUNCH_ADVISED",
    "TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED",
    "UP_TO_DATE",
    "TcbEvaluation",
    "evaluate_tcb",
    "find_module_identity",
    "qe_identity_level",
]

UP_TO_DATE = "UpToDate"
SW_HARDENING_NEEDED = "SWHardeningNeeded"
CONFIGURATION_NEEDED = "ConfigurationNeeded"
CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
OUT_OF_DATE = "OutOfDate"
OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
TD_RELAUNCH_ADVISED = "TDRelaunchAdvised"
TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED = "TDRelaunchAdvisedConfigurationNeeded"
REVOKED = "Revoked"

#: Every status a successful evaluation can give, best first.
TCB_STATUSES = (
    UP_TO_DATE,
    SW_HARDENING_NEEDED,
    CONFIGURATION_NEEDED,
    CONFIGURATION_AND_SW_HARDENING_NEEDED,
    TD_RELAUNCH_ADVISED,
    TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
    OUT_OF_DATE,
    OUT_OF_DATE_CONFIGURATION_NEEDED,
    REVOKED,
)
_LEVEL_STATUSES = frozenset(
    {
        UP_TO_DATE,
        SW_HARDENING_NEEDED,
        CONFIGURATION_NEEDED,
        CONFIGURATION_AND_SW_HARDENING_NEEDED,
        OUT_OF_DATE,
        OUT_OF_DATE_CONFIGURATION_NEEDED,
        REVOKED,
    }
)
_IDENTITY_STATUSES = frozenset({UP_TO_DATE, OUT_OF_DATE, REVOKED})
_CONFIGURATION = frozenset(
    {
        CONFIGURATION_NEEDED,
        OUT_OF_DATE_CONFIGURATION_NEEDED,
        CONFIGURATION_AND_SW_HARDENING_NEEDED,
        TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
    }
)


@dataclass(frozen=True, slots=True)
class TcbEvaluation:
    """The outcome: the final status, every applicable advisory, and the parts."""

    status: str
    advisory_ids: tuple[str, ...]
    platform_status: str
    platform_tcb_date: str
    qe_status: str
    tdx_module_status: str | None


def _checked(status: str, allowed: frozenset[str], where: str) -> str:
    if status not in allowed:
        raise EvidenceSignatureError(
            "collateral names an unknown TCB status",
            failures=[f"{where}.tcbStatus: {status!r} is not one of {sorted(allowed)}"],
        )
    return status


def _not_supported(detail: str) -> PolicyViolation:
    return PolicyViolation(
        "no TCB level in Intel's collateral matches this platform (TCB not supported)",
        failures=[detail],
        remedy="the platform's TCB is below every level Intel lists; update it or its collateral",
    )


def qe_identity_level(
    levels: Iterable[IdentityTcbLevel], isvsvn: int, what: str
) -> IdentityTcbLevel:
    """The first level whose ``isvsvn`` is at most *isvsvn*; refusal if none."""
    for level in levels:
        if level.isvsvn <= isvsvn:
            _checked(level.tcb_status, _IDENTITY_STATUSES, what)
            return level
    raise _not_supported(f"{what}: ISVSVN {isvsvn} is below every tcbLevels isvsvn")


def find_module_identity(tcb_info: TcbInfo, major_version: int) -> TdxModuleIdentity | None:
    """The ``tdxModuleIdentities`` entry for a TDX module major version."""
    wanted = f"TDX_{major_version:02X}"
    for identity in tcb_info.tdx_module_identities:
        if identity.id.upper() == wanted:
            return identity
    return None


def _sgx_ok(level: TcbLevel, cpusvn: tuple[int, ...], pcesvn: int) -> bool:
    return (
        all(have >= need for have, need in zip(cpusvn, level.sgxtcbcomponents, strict=True))
        and pcesvn >= level.pcesvn
    )


def _tdx_ok(level: TcbLevel, tee_tcb_svn: bytes) -> bool:
    assert level.tdxtcbcomponents is not None
    start = 2 if tee_tcb_svn[1] > 0 else 0
    return all(tee_tcb_svn[i] >= level.tdxtcbcomponents[i] for i in range(start, 16))


def _fold_out_of_date(level_status: str, other: str) -> str:
    """Fold a module or QE status into a level status (QVL convergeTcbStatus*)."""
    if other == REVOKED:
        return REVOKED
    if other == OUT_OF_DATE:
        if level_status in (UP_TO_DATE, SW_HARDENING_NEEDED):
            return OUT_OF_DATE
        if level_status in (CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED):
            return OUT_OF_DATE_CONFIGURATION_NEEDED
    return level_status


def _relaunch(
    tcb_info: TcbInfo,
    tee_tcb_svn2: bytes,
    sgx_status: str,
    tdx_status: str,
    module_status: str,
    qe_status: str,
) -> str:
    """QVL checkForRelaunch (4.1.2.4.17.4.3), for TDX 1.5 bodies only."""
    if qe_status != UP_TO_DATE or sgx_status not in (
        UP_TO_DATE,
        SW_HARDENING_NEEDED,
        CONFIGURATION_NEEDED,
        CONFIGURATION_AND_SW_HARDENING_NEEDED,
    ):
        return tdx_status
    if tdx_status not in (OUT_OF_DATE, OUT_OF_DATE_CONFIGURATION_NEEDED):
        return tdx_status
    if module_status != OUT_OF_DATE:
        return tdx_status
    latest = tcb_info.tcb_levels[0]
    assert latest.tdxtcbcomponents is not None
    if tee_tcb_svn2[1] == 0:
        module_isvsvn_needed = latest.tdxtcbcomponents[0]
    else:
        identity = find_module_identity(tcb_info, tee_tcb_svn2[1])
        if identity is None:
            raise EvidenceSignatureError(
                "TDX module identity mismatch",
                failures=[f"tdxModuleIdentities: no TDX_{tee_tcb_svn2[1]:02X} for TEE_TCB_SVN2"],
            )
        module_isvsvn_needed = identity.tcb_levels[0].isvsvn
    if tee_tcb_svn2[0] >= module_isvsvn_needed and tee_tcb_svn2[2] >= latest.tdxtcbcomponents[2]:
        if sgx_status in _CONFIGURATION or tdx_status in _CONFIGURATION:
            return TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED
        return TD_RELAUNCH_ADVISED
    return tdx_status


def _union(*groups: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for group in groups:
        for item in group:
            seen.setdefault(item, None)
    return tuple(seen)


def evaluate_tcb(
    tcb_info: TcbInfo,
    pck_cpusvn: tuple[int, ...],
    pck_pcesvn: int,
    qe_level: IdentityTcbLevel,
    tee_tcb_svn: bytes | None,
    tee_tcb_svn2: bytes | None,
) -> TcbEvaluation:
    """The TCB status Intel's QVL would give (see the module docstring).

    ``tee_tcb_svn`` is ``None`` for SGX; ``tee_tcb_svn2`` is set only for
    TDX 1.5 bodies. Raises ``PolicyViolation`` when no level matches.
    """
    sgx_level: TcbLevel | None = None
    tdx_level: TcbLevel | None = None
    for level in tcb_info.tcb_levels:
        if not _sgx_ok(level, pck_cpusvn, pck_pcesvn):
            continue
        if sgx_level is None:
            sgx_level = level
        if tee_tcb_svn is None or _tdx_ok(level, tee_tcb_svn):
            tdx_level = level
            break
    svns = f"PCK CPUSVN components {list(pck_cpusvn)}, PCESVN {pck_pcesvn}"
    if sgx_level is None:
        raise _not_supported(f"tcbLevels (FMSPC {tcb_info.fmspc.hex()}): none at or below {svns}")
    sgx_status = _checked(sgx_level.tcb_status, _LEVEL_STATUSES, "tcbLevels[sgx]")
    qe_status = qe_level.tcb_status
    if tee_tcb_svn is None:
        return TcbEvaluation(
            status=_fold_out_of_date(sgx_status, qe_status),
            advisory_ids=_union(sgx_level.advisory_ids, qe_level.advisory_ids),
            platform_status=sgx_status,
            platform_tcb_date=sgx_level.tcb_date,
            qe_status=qe_status,
            tdx_module_status=None,
        )
    if tdx_level is None:
        raise _not_supported(
            f"tcbLevels (FMSPC {tcb_info.fmspc.hex()}): none at or below {svns} and "
            f"TEE_TCB_SVN {tee_tcb_svn.hex()}"
        )
    tdx_status = _checked(tdx_level.tcb_status, _LEVEL_STATUSES, "tcbLevels[tdx]")
    module_status = UP_TO_DATE
    module_advisories: tuple[str, ...] = ()
    if tee_tcb_svn[1] > 0:
        identity = find_module_identity(tcb_info, tee_tcb_svn[1])
        if identity is None:
            raise EvidenceSignatureError(
                "TDX module identity mismatch",
                failures=[f"tdxModuleIdentities: no TDX_{tee_tcb_svn[1]:02X} for TEE_TCB_SVN[1]"],
            )
        module_level = qe_identity_level(
            identity.tcb_levels, tee_tcb_svn[0], f"tdxModuleIdentities[{identity.id}]"
        )
        module_status = module_level.tcb_status
        module_advisories = module_level.advisory_ids
    status = _fold_out_of_date(tdx_status, module_status)
    if status != REVOKED and tee_tcb_svn2 is not None:
        status = _relaunch(tcb_info, tee_tcb_svn2, sgx_status, status, module_status, qe_status)
    if status != REVOKED:
        status = _fold_out_of_date(status, qe_status)
    return TcbEvaluation(
        status=status,
        advisory_ids=_union(tdx_level.advisory_ids, module_advisories, qe_level.advisory_ids),
        platform_status=tdx_status,
        platform_tcb_date=tdx_level.tcb_date,
        qe_status=qe_status,
        tdx_module_status=module_status,
    )
