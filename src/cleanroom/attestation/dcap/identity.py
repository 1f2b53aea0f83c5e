"""Typed TCB Info (v3) and Enclave Identity (v2) documents from Intel PCS.

Structure only: field presence, types, sizes and the 16-component rule. The
signatures, the validity windows and the matching against a quote are in
:mod:`cleanroom.attestation.dcap.verify` and :mod:`cleanroom.attestation.dcap.tcb`.
Field meanings: Intel PCS API v4, "TCB Info V3" and "Enclave Identity V2".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cleanroom.errors import EvidenceFormatError

__all__ = [
    "EnclaveIdentity",
    "IdentityTcbLevel",
    "TcbInfo",
    "TcbLevel",
    "TdxModule",
    "TdxModuleIdentity",
    "parse_enclave_identity",
    "parse_tcb_info",
]

_COMPONENTS = 16


class _Doc:
    """Typed access to one JSON object, naming the path in every refusal."""

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _malformed(f"{path}: expected an object")
        self.value: dict[str, Any] = value
        self.path = path

    def has(self, key: str) -> bool:
        return key in self.value

    def get(self, key: str) -> Any:
        if key not in self.value:
            raise _malformed(f"{self.path}.{key}: missing")
        return self.value[key]

    def obj(self, key: str) -> _Doc:
        return _Doc(self.get(key), f"{self.path}.{key}")

    def objs(self, key: str) -> list[_Doc]:
        items = self.get(key)
        if not isinstance(items, list):
            raise _malformed(f"{self.path}.{key}: expected a list")
        return [_Doc(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(items)]

    def get_int(self, key: str, limit: int = 0xFFFF) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise _malformed(f"{self.path}.{key}: expected an integer in 0..{limit}")
        return value

    def get_str(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise _malformed(f"{self.path}.{key}: expected a string")
        return value

    def get_hex(self, key: str, size: int) -> bytes:
        text = self.get_str(key)
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise _malformed(f"{self.path}.{key}: not hex") from None
        if len(raw) != size:
            raise _malformed(f"{self.path}.{key}: {len(raw)} bytes, expected {size}")
        return raw

    def time(self, key: str) -> datetime:
        text = self.get_str(key)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _malformed(f"{self.path}.{key}: not an ISO 8601 date-time") from None
        if parsed.tzinfo is None:
            raise _malformed(f"{self.path}.{key}: no time zone")
        return parsed.astimezone(UTC)

    def advisories(self) -> tuple[str, ...]:
        if not self.has("advisoryIDs"):
            return ()
        items = self.get("advisoryIDs")
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise _malformed(f"{self.path}.advisoryIDs: expected a list of strings")
        return tuple(items)


def _malformed(detail: str) -> EvidenceFormatError:
    return EvidenceFormatError("collateral document is malformed", failures=[detail])


def _load(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _malformed(f"{what}: not JSON ({exc})") from None


@dataclass(frozen=True, slots=True)
class TcbLevel:
    """One entry of ``tcbLevels``: the minimum SVNs and the status they earn."""

    sgxtcbcomponents: tuple[int, ...]
    pcesvn: int
    tdxtcbcomponents: tuple[int, ...] | None
    tcb_date: str
    tcb_status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TdxModule:
    """``tdxModule``: the expected MRSIGNERSEAM and SEAMATTRIBUTES."""

    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes


@dataclass(frozen=True, slots=True)
class IdentityTcbLevel:
    """A ``tcbLevels`` entry of an enclave or TDX module identity."""

    isvsvn: int
    tcb_date: str
    tcb_status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TdxModuleIdentity:
    """One ``tdxModuleIdentities`` entry (id ``TDX_<major version, 2 hex digits>``)."""

    id: str
    module: TdxModule
    tcb_levels: tuple[IdentityTcbLevel, ...]


@dataclass(frozen=True, slots=True)
class TcbInfo:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    tdx_module: TdxModule | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]
    tcb_levels: tuple[TcbLevel, ...]


@dataclass(frozen=True, slots=True)
class EnclaveIdentity:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int
    miscselect: bytes
    miscselect_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isvprodid: int
    tcb_levels: tuple[IdentityTcbLevel, ...]


def _components(doc: _Doc, key: str) -> tuple[int, ...]:
    items = doc.objs(key)
    if len(items) != _COMPONENTS:
        raise _malformed(f"{doc.path}.{key}: {len(items)} components, expected {_COMPONENTS}")
    return tuple(item.get_int("svn", 255) for item in items)


def _module(doc: _Doc) -> TdxModule:
    return TdxModule(
        mrsigner=doc.get_hex("mrsigner", 48),
        attributes=doc.get_hex("attributes", 8),
        attributes_mask=doc.get_hex("attributesMask", 8),
    )


def _identity_levels(doc: _Doc) -> tuple[IdentityTcbLevel, ...]:
    levels = tuple(
        IdentityTcbLevel(
            isvsvn=level.obj("tcb").get_int("isvsvn"),
            tcb_date=level.get_str("tcbDate"),
            tcb_status=level.get_str("tcbStatus"),
            advisory_ids=level.advisories(),
        )
        for level in doc.objs("tcbLevels")
    )
    if not levels:
        raise _malformed(f"{doc.path}.tcbLevels: empty")
    return levels


def parse_tcb_info(raw: bytes) -> TcbInfo:
    """Parse the exact ``tcbInfo`` bytes (TCB Info version 3, SGX or TDX)."""
    doc = _Doc(_load(raw, "tcbInfo"), "tcbInfo")
    version = doc.get_int("version")
    if version != 3:
        raise EvidenceFormatError(
            "unsupported TCB Info version",
            failures=[f"tcbInfo.version: got {version}, expected 3"],
        )
    tcb_id = doc.get_str("id")
    if tcb_id not in ("SGX", "TDX"):
        raise _malformed(f"tcbInfo.id: got {tcb_id!r}, expected 'SGX' or 'TDX'")
    is_tdx = tcb_id == "TDX"
    if doc.get_int("tcbType") != 0:
        # tcbType 0 is the only defined way to compare SVNs; refuse the unknown.
        raise _malformed(f"tcbInfo.tcbType: got {doc.get_int('tcbType')}, expected 0")
    levels: list[TcbLevel] = []
    for level in doc.objs("tcbLevels"):
        tcb = level.obj("tcb")
        levels.append(
            TcbLevel(
                sgxtcbcomponents=_components(tcb, "sgxtcbcomponents"),
                pcesvn=tcb.get_int("pcesvn"),
                tdxtcbcomponents=_components(tcb, "tdxtcbcomponents") if is_tdx else None,
                tcb_date=level.get_str("tcbDate"),
                tcb_status=level.get_str("tcbStatus"),
                advisory_ids=level.advisories(),
            )
        )
    if not levels:
        raise _malformed("tcbInfo.tcbLevels: empty")
    identities: tuple[TdxModuleIdentity, ...] = ()
    if is_tdx and doc.has("tdxModuleIdentities"):
        identities = tuple(
            TdxModuleIdentity(
                id=item.get_str("id"), module=_module(item), tcb_levels=_identity_levels(item)
            )
            for item in doc.objs("tdxModuleIdentities")
        )
    return TcbInfo(
        id=tcb_id,
        version=version,
        issue_date=doc.time("issueDate"),
        next_update=doc.time("nextUpdate"),
        fmspc=doc.get_hex("fmspc", 6),
        pce_id=doc.get_hex("pceId", 2),
        tcb_type=doc.get_int("tcbType"),
        tcb_evaluation_data_number=doc.get_int("tcbEvaluationDataNumber", 0xFFFFFFFF),
        tdx_module=_module(doc.obj("tdxModule")) if is_tdx else None,
        tdx_module_identities=identities,
        tcb_levels=tuple(levels),
    )


def parse_enclave_identity(raw: bytes) -> EnclaveIdentity:
    """Parse the exact ``enclaveIdentity`` bytes (Enclave Identity version 2)."""
    doc = _Doc(_load(raw, "enclaveIdentity"), "enclaveIdentity")
    version = doc.get_int("version")
    if version != 2:
        raise EvidenceFormatError(
            "unsupported Enclave Identity version",
            failures=[f"enclaveIdentity.version: got {version}, expected 2"],
        )
    return EnclaveIdentity(
        id=doc.get_str("id"),
        version=version,
        issue_date=doc.time("issueDate"),
        next_update=doc.time("nextUpdate"),
        tcb_evaluation_data_number=doc.get_int("tcbEvaluationDataNumber", 0xFFFFFFFF),
        miscselect=doc.get_hex("miscselect", 4),
        miscselect_mask=doc.get_hex("miscselectMask", 4),
        attributes=doc.get_hex("attributes", 16),
        attributes_mask=doc.get_hex("attributesMask", 16),
        mrsigner=doc.get_hex("mrsigner", 32),
        isvprodid=doc.get_int("isvprodid"),
        tcb_levels=_identity_levels(doc),
    )
