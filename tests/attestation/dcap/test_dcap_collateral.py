"""Collateral parsing: exact signed bytes, accepted shapes, malformed documents,
and no crash on damaged input."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from typing import Any

import pytest
from dcap_vectors import GO_TDX, QVL_SGX, QVL_SGX_AT, QVL_TDX, QVL_TDX_V4_AT, qvl_collateral

from cleanroom.attestation.dcap import SgxVerifier, TdxVerifier, collateral_from_mapping
from cleanroom.attestation.dcap.collateral import signed_member
from cleanroom.attestation.dcap.identity import parse_enclave_identity, parse_tcb_info
from cleanroom.errors import AttestationError, EvidenceFormatError

TCB_INFO = qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json")["tcb_info"]
QE_IDENTITY = qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json")["qe_identity"]


def test_signed_member_returns_the_exact_bytes() -> None:
    response = (GO_TDX / "sample_tcbInfo_response.json").read_text()
    raw, signature = signed_member(response, "tcbInfo", "tcb_info_response")
    assert response.startswith('{"tcbInfo":' + raw.decode())
    assert len(signature) == 64
    spaced = '{ "signature" : "' + signature.hex() + '" ,\n  "tcbInfo" :  ' + raw.decode() + " }"
    assert signed_member(spaced, "tcbInfo", "x") == (raw, signature)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        pytest.param('[{"tcbInfo": {}}]', "not a JSON object", id="array"),
        pytest.param('{"tcbInfo": {}, "tcbInfo": {}, "signature": "00"}', "duplicate", id="dup"),
        pytest.param('{"tcbInfo": {}}', "no 'signature'", id="no-signature"),
        pytest.param('{"signature": "' + "00" * 64 + '"}', "no 'tcbInfo'", id="no-member"),
        pytest.param(
            '{"tcbInfo": "text", "signature": "' + "00" * 64 + '"}',
            "no 'tcbInfo'",
            id="member-not-object",
        ),
        pytest.param(
            '{"tcbInfo": {}, "signature": "' + "00" * 64 + '"} trailing',
            "after",
            id="trailing-text",
        ),
        pytest.param('{"tcbInfo": {} "signature": "00"}', "expected", id="missing-comma"),
        pytest.param('{"tcbInfo": {}, "signature": "zz"}', "not hex", id="signature-not-hex"),
        pytest.param('{"tcbInfo": {}, "signature": "0011"}', "64", id="signature-short"),
        pytest.param('{"tcbInfo": {', "not valid JSON", id="truncated"),
    ],
)
def test_signed_member_refusals(text: str, pattern: str) -> None:
    with pytest.raises(EvidenceFormatError) as info:
        signed_member(text, "tcbInfo", "tcb_info_response")
    assert re.search(pattern, "\n".join([info.value.message, *info.value.failures]))


def test_pem_and_url_encoded_shapes_are_accepted() -> None:
    from urllib.parse import quote

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    collateral = qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json")
    collateral["tcb_info_issuer_chain"] = quote(collateral["tcb_info_issuer_chain"])
    crl = x509.load_der_x509_crl(bytes.fromhex(collateral["root_ca_crl"]))
    collateral["root_ca_crl"] = crl.public_bytes(serialization.Encoding.PEM).decode()
    collateral["pck_crl"] = bytes.fromhex(collateral["pck_crl"])
    claims = TdxVerifier().verify(
        (QVL_TDX / "tdx_quote_v4.bin").read_bytes(), (), collateral, at=QVL_TDX_V4_AT
    )
    assert claims.tcb_status == "UpToDate"


def _edit(text: str, change: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(text)
    change(doc)
    return json.dumps(doc).encode()


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc[key] = value

    return change


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        del doc[key]

    return change


def _level0(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["tcbLevels"][0][key] = value

    return change


TCB_INFO_DEFECTS = [
    ("version 2", _set("version", 2), "version: got 2"),
    ("unknown tcbType", _set("tcbType", 1), "tcbType: got 1"),
    ("unknown id", _set("id", "SEV"), "tcbInfo.id"),
    ("fmspc too short", _set("fmspc", "B0C06F"), "fmspc: 3 bytes"),
    ("fmspc not hex", _set("fmspc", "B0C06F00000Z"), "fmspc: not hex"),
    ("no nextUpdate", _drop("nextUpdate"), "nextUpdate: missing"),
    ("bad issueDate", _set("issueDate", "yesterday"), "issueDate: not an ISO"),
    ("date without zone", _set("issueDate", "2025-06-19T10:16:03"), "no time zone"),
    ("no tcbLevels", _set("tcbLevels", []), "tcbLevels: empty"),
    ("tcbLevels not a list", _set("tcbLevels", {}), "expected a list"),
    ("status not a string", _level0("tcbStatus", 1), "tcbStatus: expected a string"),
    ("advisories not strings", _level0("advisoryIDs", [1]), "advisoryIDs"),
    ("no tdxModule", _drop("tdxModule"), "tdxModule: missing"),
    ("boolean pceId", _set("pceId", True), "pceId: expected a string"),
]


@pytest.mark.parametrize(
    ("change", "pattern"), [pytest.param(c, p, id=n) for n, c, p in TCB_INFO_DEFECTS]
)
def test_tcb_info_defects(change: Callable[[dict[str, Any]], None], pattern: str) -> None:
    with pytest.raises(EvidenceFormatError) as info:
        parse_tcb_info(_edit(TCB_INFO, change))
    assert re.search(pattern, "\n".join(info.value.failures))


QE_IDENTITY_DEFECTS = [
    ("version 1", _set("version", 1), "version: got 1"),
    ("mrsigner short", _set("mrsigner", "DC9E"), "mrsigner: 2 bytes"),
    ("isvprodid negative", _set("isvprodid", -1), "isvprodid"),
    ("isvprodid float", _set("isvprodid", 2.0), "isvprodid"),
    ("attributesMask missing", _drop("attributesMask"), "attributesMask: missing"),
    ("tcbLevels empty", _set("tcbLevels", []), "empty"),
    ("not JSON", None, "not JSON"),
]


@pytest.mark.parametrize(
    ("change", "pattern"), [pytest.param(c, p, id=n) for n, c, p in QE_IDENTITY_DEFECTS]
)
def test_qe_identity_defects(change: Callable[[dict[str, Any]], None] | None, pattern: str) -> None:
    raw = b"{not json" if change is None else _edit(QE_IDENTITY, change)
    with pytest.raises(EvidenceFormatError) as info:
        parse_enclave_identity(raw)
    assert re.search(pattern, "\n".join(info.value.failures))


def test_collateral_must_be_a_mapping() -> None:
    with pytest.raises(EvidenceFormatError, match="wrong type"):
        collateral_from_mapping(["tcb_info"])  # type: ignore[arg-type]


def test_damaged_quotes_and_collateral_never_crash() -> None:
    """Random byte damage gives an AttestationError or (rarely) success, never
    another exception: a deterministic sample of what a fuzzer found clean."""
    rng = random.Random(20261121)
    cases = [
        (
            TdxVerifier(),
            QVL_TDX / "tdx_quote_v4.bin",
            QVL_TDX / "tdx_quote_v4_collateral.json",
            QVL_TDX_V4_AT,
        ),
        (
            SgxVerifier(),
            QVL_SGX / "sgx_quote_v3.bin",
            QVL_SGX / "sgx_quote_v3_collateral.json",
            QVL_SGX_AT,
        ),
    ]
    refused = 0
    for _ in range(150):
        verifier, quote_path, collateral_path, at = rng.choice(cases)
        quote = bytearray(quote_path.read_bytes())
        collateral = qvl_collateral(collateral_path)
        if rng.random() < 0.5:
            for _ in range(rng.choice((1, 2, 4))):
                quote[rng.randrange(len(quote))] = rng.randrange(256)
        else:
            name = rng.choice(sorted(collateral))
            damaged = bytearray(collateral[name].encode())
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            collateral[name] = bytes(damaged)
        try:
            verifier.verify(bytes(quote), (), collateral, at=at)
        except AttestationError:
            refused += 1
    assert refused > 100
