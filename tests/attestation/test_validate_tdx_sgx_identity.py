"""TDX XFAM, MRSERVICETD, MROWNER and MROWNERCONFIG, and SGX ATTRIBUTES beyond
DEBUG, MISCSELECT, CONFIGID and CONFIGSVN: claim value -> failure named as the
specifications name the field. Measurements all match, so only these can fail."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from test_validate_claims import REPORT_DATA, SGX, TDX

from cleanroom.attestation import AttestationPolicy
from cleanroom.attestation.platform import Claims
from cleanroom.attestation.validate import claim_failures

XFAM = 0x618E7  # x87, SSE, AVX, AVX-512, CET_U/S, AMX: a Linux TD's
OWNER = b"\x0a" * 48
OWNER_CONFIG = b"\x0b" * 48
SERVICE_TD = b"\x0c" * 48
CONFIGID = b"\x0d" * 64
MISSING = object()

FIELDS: dict[str, dict[str, Any]] = {
    "tdx": {
        "TDATTRIBUTES": (1 << 28).to_bytes(8, "little"),
        "XFAM": XFAM.to_bytes(8, "little"),
        "MROWNER": bytes(48),
        "MROWNERCONFIG": bytes(48),
        "MRSERVICETD": bytes(48),
    },
    "sgx": {
        "ATTRIBUTES": bytes.fromhex("0500000000000000e700000000000000"),  # INIT, MODE64BIT
        "MISCSELECT": 0,
        "CONFIGID": bytes(64),
        "CONFIGSVN": 0,
    },
}
# The measurements of the base claims, pinned: only the fields judged here can fail.
PINS: dict[str, dict[str, Any]] = {
    "tdx": {"mrtd": [TDX.measurements["MRTD"].hex()]},
    "sgx": {"mrenclave": [SGX.measurements["MRENCLAVE"].hex()]},
}


def _claims(platform: str, changes: dict[str, Any]) -> Claims:
    merged = {**FIELDS[platform], **changes}
    base = TDX if platform == "tdx" else SGX
    return replace(base, fields={k: v for k, v in merged.items() if v is not MISSING})


def _names(claims: Claims, policy: AttestationPolicy) -> list[str]:
    failures = claim_failures(claims, policy, report_data=REPORT_DATA)
    assert all(": got " in f and "expected" in f for f in failures)
    return [f.split(":")[0] for f in failures]


def _flags(value: int) -> bytes:
    """SGX ATTRIBUTES: FLAGS *value*, XFRM x87|SSE|AVX|AVX-512."""
    return value.to_bytes(8, "little") + bytes.fromhex("e700000000000000")


# name, claim fields changed, policy fields, expected failure names.
TDX_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    ("defaults", {}, {}, []),
    (
        "XFAM, MROWNER and MROWNERCONFIG unchecked by default",
        {"XFAM": bytes([0xFF] * 8), "MROWNER": OWNER, "MROWNERCONFIG": OWNER_CONFIG},
        {},
        [],
    ),
    ("XFAM listed", {}, {"tdx_xfam": ["0x618e7", 0x602E7]}, []),
    (
        "XFAM with PT not listed",
        {"XFAM": (XFAM | 1 << 8).to_bytes(8, "little")},
        {"tdx_xfam": [XFAM]},
        ["XFAM"],
    ),
    ("XFAM missing", {"XFAM": MISSING}, {"tdx_xfam": [XFAM]}, ["XFAM"]),
    ("service TD bound", {"MRSERVICETD": SERVICE_TD}, {}, ["MRSERVICETD"]),
    ("TDX 1.0 body: no MRSERVICETD", {"MRSERVICETD": MISSING}, {}, []),
    ("service TD listed", {"MRSERVICETD": SERVICE_TD}, {"tdx_mrservicetd": [SERVICE_TD.hex()]}, []),
    ("no service TD, one listed", {}, {"tdx_mrservicetd": [SERVICE_TD.hex()]}, ["MRSERVICETD"]),
    ("zeros listed", {}, {"tdx_mrservicetd": ["00" * 48]}, []),
    (
        "a list needs a TDX 1.5 body",
        {"MRSERVICETD": MISSING},
        {"tdx_mrservicetd": ["00" * 48]},
        ["MRSERVICETD"],
    ),
    ("MROWNER listed", {"MROWNER": OWNER}, {"tdx_mrowner": [OWNER.hex()]}, []),
    ("MROWNER other", {}, {"tdx_mrowner": [OWNER.hex()]}, ["MROWNER"]),
    ("MROWNER missing", {"MROWNER": MISSING}, {"tdx_mrowner": [OWNER.hex()]}, ["MROWNER"]),
    (
        "MROWNERCONFIG listed",
        {"MROWNERCONFIG": OWNER_CONFIG},
        {"tdx_mrownerconfig": [OWNER_CONFIG.hex()]},
        [],
    ),
    ("MROWNERCONFIG other", {}, {"tdx_mrownerconfig": [OWNER_CONFIG.hex()]}, ["MROWNERCONFIG"]),
    (
        "all four at once",
        {"XFAM": bytes(8), "MRSERVICETD": SERVICE_TD},
        {
            "tdx_xfam": [XFAM],
            "tdx_mrowner": [OWNER.hex()],
            "tdx_mrownerconfig": [OWNER_CONFIG.hex()],
        },
        ["XFAM", "MRSERVICETD", "MROWNER", "MROWNERCONFIG"],
    ),
]


SGX_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    ("INIT and MODE64BIT", {}, {}, []),
    ("AEXNOTIFY", {"ATTRIBUTES": _flags(0x405)}, {}, []),
    ("DEBUG is left to allow_debug", {"ATTRIBUTES": _flags(0x07)}, {}, []),
    ("32-bit enclave", {"ATTRIBUTES": _flags(0x01)}, {}, ["ATTRIBUTES.MODE64BIT"]),
    ("PROVISIONKEY", {"ATTRIBUTES": _flags(0x15)}, {}, ["ATTRIBUTES.PROVISIONKEY"]),
    ("EINITTOKEN_KEY", {"ATTRIBUTES": _flags(0x25)}, {}, ["ATTRIBUTES.EINITTOKEN_KEY"]),
    ("KSS", {"ATTRIBUTES": _flags(0x85)}, {}, ["ATTRIBUTES.KSS"]),
    ("reserved bit 3", {"ATTRIBUTES": _flags(0x0D)}, {}, ["ATTRIBUTES bit 3"]),
    ("reserved bit 63", {"ATTRIBUTES": _flags(0x05 | 1 << 63)}, {}, ["ATTRIBUTES bit 63"]),
    ("XFRM is not judged", {"ATTRIBUTES": bytes.fromhex("05" + "00" * 7 + "ff" * 8)}, {}, []),
    ("KSS allowed", {"ATTRIBUTES": _flags(0x85)}, {"sgx_allowed_attributes": "0x85"}, []),
    (
        "KSS required and clear",
        {},
        {"sgx_allowed_attributes": "0x85", "sgx_required_attributes": "0x84"},
        ["ATTRIBUTES.KSS"],
    ),
    ("ATTRIBUTES missing", {"ATTRIBUTES": MISSING}, {}, ["ATTRIBUTES"]),
    ("MISCSELECT unchecked by default", {"MISCSELECT": 0xFFFFFFFF}, {}, []),
    ("EXINFO refused", {"MISCSELECT": 1}, {"sgx_allowed_miscselect": 0}, ["MISCSELECT.EXINFO"]),
    ("EXINFO required", {}, {"sgx_required_miscselect": "0x1"}, ["MISCSELECT.EXINFO"]),
    (
        "MISCSELECT bit 5",
        {"MISCSELECT": 1 << 5},
        {"sgx_allowed_miscselect": 1},
        ["MISCSELECT bit 5"],
    ),
    ("MISCSELECT missing", {"MISCSELECT": MISSING}, {"sgx_allowed_miscselect": 1}, ["MISCSELECT"]),
    ("CONFIGID unchecked by default", {"CONFIGID": CONFIGID}, {}, []),
    ("CONFIGID listed", {"CONFIGID": CONFIGID}, {"sgx_configid": [CONFIGID.hex()]}, []),
    ("CONFIGID other", {}, {"sgx_configid": [CONFIGID.hex()]}, ["CONFIGID"]),
    ("CONFIGSVN at the minimum", {"CONFIGSVN": 3}, {"sgx_min_config_svn": 3}, []),
    ("CONFIGSVN below", {"CONFIGSVN": 2}, {"sgx_min_config_svn": 3}, ["CONFIGSVN"]),
    ("CONFIGSVN missing", {"CONFIGSVN": MISSING}, {"sgx_min_config_svn": 0}, ["CONFIGSVN"]),
]


CASES = [("tdx", *case) for case in TDX_CASES] + [("sgx", *case) for case in SGX_CASES]


@pytest.mark.parametrize(
    ("platform", "name", "changes", "policy", "expected"),
    CASES,
    ids=[f"{c[0]}: {c[1]}" for c in CASES],
)
def test_fields(
    platform: str, name: str, changes: dict[str, Any], policy: dict[str, Any], expected: list[str]
) -> None:
    claims = _claims(platform, changes)
    assert _names(claims, AttestationPolicy(**PINS[platform], **policy)) == expected


def test_authenticity_only_judges_none_of_them() -> None:
    policy = AttestationPolicy.authenticity_only()
    tdx = _claims("tdx", {"MRSERVICETD": SERVICE_TD})
    sgx = _claims("sgx", {"ATTRIBUTES": _flags(0xB1), "MISCSELECT": 0xFF})  # KSS, 32-bit
    assert claim_failures(tdx, policy, report_data=None) == []
    assert claim_failures(sgx, policy, report_data=None) == []
