"""XFAM, MRSERVICETD, MROWNER, MROWNERCONFIG (TDX) and ATTRIBUTES, MISCSELECT,
CONFIGID, CONFIGSVN (SGX) judged on verified fake quotes, and every stored real
TDX and SGX quote passing the default policy on them."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from dcap_fakes import NOW, World, build
from dcap_vectors import AZURE_TDX, GO_TDX, QVL_SGX, QVL_TDX

from cleanroom.attestation import AttestationPolicy
from cleanroom.attestation.dcap import SgxVerifier, TdxVerifier
from cleanroom.attestation.dcap.quote import parse_quote
from cleanroom.attestation.dcap.structs import EnclaveReport, TdReport
from cleanroom.attestation.platform import Claims
from cleanroom.attestation.validate import claim_failures

TDX15 = World(version=5, tdx15=True)
SGX = World(tee="SGX", version=3)
# Offsets in the quote body (TDX module ABI TD quote body; sgx_report_body_t).
XFAM_AT, MROWNER_AT, MROWNERCONFIG_AT, MRSERVICETD_AT = 0x80, 0xE8, 0x118, 0x258
MISCSELECT_AT, ATTRIBUTES_AT, CONFIGID_AT, CONFIGSVN_AT = 0x10, 0x30, 0xC0, 0x104


def _verify(world: World) -> Claims:
    built = build(world)
    verifier = TdxVerifier() if world.tee == "TDX" else SgxVerifier()
    return verifier.verify(
        built.quote, (), built.collateral, at=NOW, additional_roots=[built.root_der]
    )


def _pinned(claims: Claims, **fields: Any) -> AttestationPolicy:
    """Every measurement pinned to what *claims* carry (simulated: a test root)."""
    if claims.platform == "tdx":
        pins: dict[str, Any] = {"mrtd": [claims.measurements["MRTD"].hex()]}
    else:
        pins = {"mrenclave": [claims.measurements["MRENCLAVE"].hex()]}
    return AttestationPolicy(allow_simulated=True, **pins, **fields)


# World, policy fields -> failure names.
CASES: list[tuple[str, World, dict[str, Any], list[str]]] = [
    ("TDX 1.5 defaults", TDX15, {}, []),
    (
        "service TD bound",
        TDX15.but(body_patches=((MRSERVICETD_AT, b"\x0c" * 48),)),
        {},
        ["MRSERVICETD"],
    ),
    (
        "service TD listed",
        TDX15.but(body_patches=((MRSERVICETD_AT, b"\x0c" * 48),)),
        {"tdx_mrservicetd": ["0c" * 48]},
        [],
    ),
    (
        "TDX 1.0 body, MRSERVICETD listed",
        World(),
        {"tdx_mrservicetd": ["00" * 48]},
        ["MRSERVICETD"],
    ),
    ("XFAM listed", World(), {"tdx_xfam": ["0x602e7"]}, []),
    (
        "XFAM with LBR",
        World(body_patches=((XFAM_AT, (0x602E7 | 1 << 15).to_bytes(8, "little")),)),
        {"tdx_xfam": ["0x602e7"]},
        ["XFAM"],
    ),
    (
        "MROWNER and MROWNERCONFIG other",
        World(body_patches=((MROWNER_AT, b"\x0a" * 48), (MROWNERCONFIG_AT, b"\x0b" * 48))),
        {"tdx_mrowner": ["00" * 48], "tdx_mrownerconfig": ["00" * 48]},
        ["MROWNER", "MROWNERCONFIG"],
    ),
    ("SGX defaults", SGX, {}, []),
    (
        "PROVISIONKEY",
        SGX.but(sgx_attributes=bytes.fromhex("1500000000000000e700000000000000")),
        {},
        ["ATTRIBUTES.PROVISIONKEY"],
    ),
    (
        "32-bit enclave",
        SGX.but(sgx_attributes=bytes.fromhex("0100000000000000e700000000000000")),
        {},
        ["ATTRIBUTES.MODE64BIT"],
    ),
    (
        "EXINFO refused",
        SGX.but(body_patches=((MISCSELECT_AT, struct.pack("<I", 1)),)),
        {"sgx_allowed_miscselect": 0},
        ["MISCSELECT.EXINFO"],
    ),
    (
        "KSS with another CONFIGID and an old CONFIGSVN",
        SGX.but(
            sgx_attributes=bytes.fromhex("8500000000000000e700000000000000"),
            body_patches=((CONFIGID_AT, b"\x0d" * 64), (CONFIGSVN_AT, struct.pack("<H", 1))),
        ),
        {
            "sgx_allowed_attributes": "0x85",
            "sgx_configid": ["00" * 64],
            "sgx_min_config_svn": 2,
        },
        ["CONFIGID", "CONFIGSVN"],
    ),
]


@pytest.mark.parametrize(("name", "world", "policy", "fields"), CASES, ids=[c[0] for c in CASES])
def test_verified_quote(name: str, world: World, policy: dict[str, Any], fields: list[str]) -> None:
    claims = _verify(world)
    failures = claim_failures(claims, _pinned(claims, **policy), report_data=claims.report_data)
    assert [f.split(":")[0] for f in failures] == fields


def _real_fields(path: Path) -> dict[str, Any]:
    """The judged fields of a stored quote (one has bytes after the quote)."""
    body = parse_quote(path.read_bytes(), allow_trailing_bytes=True).body
    if isinstance(body, TdReport):
        fields: dict[str, Any] = {
            "TDATTRIBUTES": body.TDATTRIBUTES,
            "XFAM": body.XFAM,
            "MROWNER": body.MROWNER,
            "MROWNERCONFIG": body.MROWNERCONFIG,
        }
        if body.MRSERVICETD is not None:
            fields["MRSERVICETD"] = body.MRSERVICETD
        return fields
    assert isinstance(body, EnclaveReport)
    return {
        "ATTRIBUTES": body.ATTRIBUTES,
        "MISCSELECT": body.MISCSELECT,
        "CONFIGID": body.CONFIGID,
        "CONFIGSVN": body.CONFIGSVN,
    }


REAL = [
    AZURE_TDX / "tdx_td-quote.bin",
    QVL_TDX / "tdx_quote_v4.bin",
    QVL_TDX / "tdx_quote_v5_outdated.bin",
    GO_TDX / "cos-113-tdx-quote.dat",
    GO_TDX / "quote_v5_sample.dat",
    GO_TDX / "tdx_prod_quote_SPR_E4.dat",
    QVL_SGX / "sgx_quote_v3.bin",
]


@pytest.mark.parametrize("path", REAL, ids=[p.name for p in REAL])
def test_real_quotes_pass_the_default_policy(path: Path) -> None:
    fields = _real_fields(path)
    fake = _verify(World() if "XFAM" in fields else SGX)
    claims = replace(fake, fields={**fake.fields, **fields})
    failures = claim_failures(claims, _pinned(claims), report_data=claims.report_data)
    assert failures == []
    if "XFAM" in fields:  # and a policy listing the quote's own XFAM
        own = [f"{int.from_bytes(fields['XFAM'], 'little'):#x}"]
        assert claim_failures(claims, _pinned(claims, tdx_xfam=own), report_data=None) == []
