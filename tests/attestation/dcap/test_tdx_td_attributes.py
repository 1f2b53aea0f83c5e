"""TDATTRIBUTES beyond DEBUG: a TD the host launched MIGRATABLE or with PERFMON, or
with reserved bits, is refused by default, though its measurements all match."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from dcap_fakes import NOW, World, build
from dcap_vectors import AZURE_TDX, GO_TDX, QVL_TDX

from cleanroom.attestation import AttestationPolicy
from cleanroom.attestation.dcap import TdxVerifier
from cleanroom.attestation.dcap.quote import parse_quote
from cleanroom.attestation.dcap.structs import TdReport
from cleanroom.attestation.platform import Claims
from cleanroom.attestation.validate import claim_failures, td_attribute_failures


def _claims(td_attributes: int) -> Claims:
    built = build(World(td_attributes=td_attributes.to_bytes(8, "little")))
    return TdxVerifier().verify(
        built.quote, (), built.collateral, at=NOW, additional_roots=[built.root_der]
    )


def _strict(claims: Claims, **fields: object) -> AttestationPolicy:
    """Every measurement pinned to what *claims* carry: only attributes can fail.
    (The fake world chains to a test root, so its claims count as simulated.)"""
    return AttestationPolicy(
        allow_simulated=True,
        mrtd=[claims.measurements["MRTD"].hex()],
        rtmrs={f"RTMR{i}": [claims.measurements[f"RTMR{i}"].hex()] for i in range(4)},
        mrconfigid=[claims.host_data.hex()],
        **fields,  # type: ignore[arg-type]
    )


# Attribute value -> failures under a policy that pins every measurement.
CASES: list[tuple[str, int, dict[str, object], list[str]]] = [
    ("default attributes", 1 << 28, {}, []),
    ("MIGRATABLE", 1 << 29, {}, ["TDATTRIBUTES.MIGRATABLE"]),
    ("PERFMON", 1 << 63, {}, ["TDATTRIBUTES.PERFMON"]),
    ("TUD bit 4", 1 << 4, {}, ["TDATTRIBUTES bit 4"]),
    (
        "SEPT_VE_DISABLE required",
        0,
        {"tdx_required_td_attributes": 1 << 28},
        ["TDATTRIBUTES.SEPT_VE_DISABLE"],
    ),
    ("MIGRATABLE opted in", 1 << 29, {"tdx_allowed_td_attributes": 1 << 29}, []),
]


@pytest.mark.parametrize(("name", "value", "policy", "fields"), CASES, ids=[c[0] for c in CASES])
def test_td_attributes_of_a_verified_quote(
    name: str, value: int, policy: dict[str, object], fields: list[str]
) -> None:
    claims = _claims(value)
    failures = claim_failures(claims, _strict(claims, **policy), report_data=claims.report_data)
    assert [f.split(":")[0] for f in failures] == fields


# The real TDX quotes and their TDATTRIBUTES: none, SEPT_VE_DISABLE, or PKS.
VECTORS = [
    (AZURE_TDX / "tdx_td-quote.bin", 0),
    (QVL_TDX / "tdx_quote_v4.bin", 1 << 28),
    (QVL_TDX / "tdx_quote_v5_outdated.bin", 1 << 28),
    (GO_TDX / "cos-113-tdx-quote.dat", 1 << 28),
    (GO_TDX / "quote_v5_sample.dat", 1 << 28),
    (GO_TDX / "tdx_prod_quote_SPR_E4.dat", 1 << 30),
]


@pytest.mark.parametrize(("path", "expected"), VECTORS, ids=[p.name for p, _ in VECTORS])
def test_real_quotes_pass_the_default_td_attributes(path: Path, expected: int) -> None:
    # One of them is stored with non-zero bytes after the quote.
    body = parse_quote(path.read_bytes(), allow_trailing_bytes=True).body
    assert isinstance(body, TdReport)
    assert int.from_bytes(body.TDATTRIBUTES, "little") == expected
    claims = replace(_claims(0), fields={"TDATTRIBUTES": body.TDATTRIBUTES})
    assert td_attribute_failures(claims, AttestationPolicy(mrtd=["00" * 48])) == []
