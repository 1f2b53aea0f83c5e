"""A fake DCAP world (test CA, PCK, TCB Signing, CRLs, collateral) broken one
field at a time, and the TCB status ladder of Intel's QVL."""

from __future__ import annotations

import re
import struct
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from dcap_fakes import CPUSVN, NOW, Built, World, build, cert, key, level

from cleanroom.attestation.dcap import SgxVerifier, TdxVerifier
from cleanroom.attestation.platform import Claims
from cleanroom.errors import (
    AttestationError,
    ConfigurationError,
    EvidenceFormatError,
    EvidenceSignatureError,
    PolicyViolation,
)

TDX = World()
SGX = World(tee="SGX", version=3)
LOW7 = (3, 3, 2, 2, 4, 1, 0, 4) + (0,) * 8  # SGX component 8 below the newest level


def verify(world: World) -> Claims:
    built = build(world)
    verifier = TdxVerifier() if world.tee == "TDX" else SgxVerifier()
    return verifier.verify(
        built.quote, (), built.collateral, at=NOW, additional_roots=[built.root_der]
    )


def svn(*first: int) -> bytes:
    return bytes(first) + bytes(16 - len(first))


STATUS_CASES: list[tuple[str, World, str, tuple[str, ...]]] = [
    ("tdx v4 newest level", TDX, "UpToDate", ()),
    ("tdx v5 TD 1.0 body", TDX.but(version=5), "UpToDate", ()),
    ("tdx v5 TD 1.5 body", TDX.but(version=5, tdx15=True), "UpToDate", ()),
    ("sgx v3 newest level", SGX, "UpToDate", ()),
    ("sgx body in a v4 quote", SGX.but(version=4), "UpToDate", ()),
    ("sgx body in a v5 quote", SGX.but(version=5), "UpToDate", ()),
    (
        "cpusvn below newest: configuration needed",
        TDX.but(cpusvn=LOW7),
        "ConfigurationNeeded",
        ("INTEL-SA-00111",),
    ),
    ("sgx configuration needed", SGX.but(cpusvn=LOW7), "ConfigurationNeeded", ("INTEL-SA-00111",)),
    ("pcesvn below: out of date", TDX.but(pcesvn=10), "OutOfDate", ("INTEL-SA-00222",)),
    ("module major 1 skips components 0-1", TDX.but(tee_tcb_svn=svn(4, 1, 2)), "UpToDate", ()),
    (
        "module isvsvn 3: module out of date",
        TDX.but(tee_tcb_svn=svn(3, 1, 3)),
        "OutOfDate",
        ("INTEL-SA-00888",),
    ),
    (
        "module out of date + configuration needed",
        TDX.but(tee_tcb_svn=svn(3, 1, 3), cpusvn=LOW7),
        "OutOfDateConfigurationNeeded",
        ("INTEL-SA-00111", "INTEL-SA-00888"),
    ),
    ("module major 0 compares all components", TDX.but(tee_tcb_svn=svn(5, 0, 2)), "UpToDate", ()),
    ("QE isvsvn 3: QE out of date", TDX.but(qe_isvsvn=3), "OutOfDate", ("INTEL-SA-00999",)),
    (
        "QE out of date + configuration needed",
        TDX.but(qe_isvsvn=3, cpusvn=LOW7),
        "OutOfDateConfigurationNeeded",
        ("INTEL-SA-00111", "INTEL-SA-00999"),
    ),
    ("sgx QE out of date", SGX.but(qe_isvsvn=2), "OutOfDate", ("INTEL-SA-00999",)),
    (
        "revoked platform level",
        TDX.but(
            tcb_levels=(level(CPUSVN, 11, (5, 0, 2) + (0,) * 13, "Revoked", "INTEL-SA-00666"),)
        ),
        "Revoked",
        ("INTEL-SA-00666",),
    ),
    (
        "revoked QE level",
        TDX.but(
            qe_levels=(
                {"tcb": {"isvsvn": 1}, "tcbDate": "2020-01-01T00:00:00Z", "tcbStatus": "Revoked"},
            )
        ),
        "Revoked",
        (),
    ),
    (
        "revoked module level",
        TDX.but(
            module_levels=(
                {"tcb": {"isvsvn": 1}, "tcbDate": "2020-01-01T00:00:00Z", "tcbStatus": "Revoked"},
            )
        ),
        "Revoked",
        (),
    ),
    (
        "SW hardening + QE out of date",
        SGX.but(
            tcb_levels=(level(CPUSVN, 11, (), "SWHardeningNeeded", "INTEL-SA-00615"),), qe_isvsvn=3
        ),
        "OutOfDate",
        ("INTEL-SA-00615", "INTEL-SA-00999"),
    ),
    (
        "configuration and SW hardening",
        SGX.but(
            tcb_levels=(
                level(
                    CPUSVN,
                    11,
                    (),
                    "ConfigurationAndSWHardeningNeeded",
                    "INTEL-SA-00289",
                    "INTEL-SA-00615",
                ),
            )
        ),
        "ConfigurationAndSWHardeningNeeded",
        ("INTEL-SA-00289", "INTEL-SA-00615"),
    ),
    (
        "TD 1.5: module updated in place, relaunch advised",
        TDX.but(version=5, tdx15=True, tee_tcb_svn=svn(3, 1, 3), tee_tcb_svn2=svn(5, 1, 3)),
        "TDRelaunchAdvised",
        ("INTEL-SA-00888",),
    ),
    (
        "TD 1.5: relaunch advised, configuration needed",
        TDX.but(
            version=5, tdx15=True, tee_tcb_svn=svn(3, 1, 3), tee_tcb_svn2=svn(5, 1, 3), cpusvn=LOW7
        ),
        "TDRelaunchAdvisedConfigurationNeeded",
        ("INTEL-SA-00111", "INTEL-SA-00888"),
    ),
    (
        "TD 1.5: no newer module, stays out of date",
        TDX.but(version=5, tdx15=True, tee_tcb_svn=svn(3, 1, 3), tee_tcb_svn2=svn(3, 1, 3)),
        "OutOfDate",
        ("INTEL-SA-00888",),
    ),
]


@pytest.mark.parametrize(
    ("world", "status", "advisories"),
    [pytest.param(w, s, a, id=name) for name, w, s, a in STATUS_CASES],
)
def test_tcb_status(world: World, status: str, advisories: tuple[str, ...]) -> None:
    claims = verify(world)
    assert claims.tcb_status == status
    assert claims.advisory_ids == advisories
    assert claims.simulated is True
    assert claims.root == "Test SGX Root CA"
    assert claims.platform == world.tee.lower()


def _levels(*statuses_and_tdx: tuple[str, tuple[int, ...]]) -> tuple[dict[str, Any], ...]:
    return tuple(level(CPUSVN, 11, tdx, status) for status, tdx in statuses_and_tdx)


REFUSALS: list[tuple[str, World, type[AttestationError], str]] = [
    # Revocation (CRLs built here with the test CAs).
    (
        "revoked PCK",
        TDX.but(pck_revoked=(0x1234,)),
        EvidenceSignatureError,
        "PCK certificate is revoked",
    ),
    (
        "revoked PCK (SGX)",
        SGX.but(pck_revoked=(0x99, 0x1234)),
        EvidenceSignatureError,
        "PCK certificate is revoked",
    ),
    (
        "revoked PCK CA",
        TDX.but(pck_ca_revoked=True),
        EvidenceSignatureError,
        "PCK CA certificate is revoked",
    ),
    (
        "revoked TCB Signing certificate",
        TDX.but(signing_revoked=True),
        EvidenceSignatureError,
        "signing certificate is revoked",
    ),
    # Validity at the injected time.
    (
        "PCK expired",
        TDX.but(pck_not_after=NOW - timedelta(seconds=1)),
        EvidenceSignatureError,
        "PCK certificate is not valid",
    ),
    (
        "TCB Signing certificate expired",
        TDX.but(signing_not_after=NOW - timedelta(days=1)),
        EvidenceSignatureError,
        "signing certificate is not valid",
    ),
    (
        "tcbInfo expired",
        TDX.but(next_update=NOW - timedelta(seconds=1)),
        EvidenceSignatureError,
        "tcbInfo is not current",
    ),
    (
        "QE identity expired",
        TDX.but(qe_next_update=NOW - timedelta(seconds=1)),
        EvidenceSignatureError,
        "enclaveIdentity is not current",
    ),
    (
        "PCK CRL expired",
        TDX.but(pck_crl_next_update=NOW - timedelta(seconds=1)),
        EvidenceSignatureError,
        "PCK CRL",
    ),
    (
        "root CA CRL expired",
        TDX.but(root_crl_next_update=NOW - timedelta(seconds=1)),
        EvidenceSignatureError,
        "root CA CRL",
    ),
    (
        "collateral issued in the future",
        TDX.but(issue=NOW + timedelta(hours=1)),
        EvidenceSignatureError,
        "CRL",
    ),
    # Collateral for another platform or enclave.
    (
        "FMSPC mismatch",
        TDX.but(tcb_fmspc=bytes.fromhex("11111f000000")),
        EvidenceSignatureError,
        "tcbInfo.fmspc: got 11111f000000",
    ),
    ("PCEID mismatch", TDX.but(tcb_pceid=b"\x11\x11"), EvidenceSignatureError, "tcbInfo.pceId"),
    (
        "SGX tcbInfo id for TDX",
        TDX.but(tcb_info_id="SGX"),
        EvidenceSignatureError,
        "tcbInfo.id: got 'SGX'",
    ),
    (
        "TD_QE identity for SGX",
        SGX.but(qe_identity_id="TD_QE"),
        EvidenceSignatureError,
        "enclaveIdentity.id",
    ),
    # The quoting enclave.
    (
        "QE MRSIGNER mismatch",
        TDX.but(qe_mrsigner=b"\x01" * 32),
        EvidenceSignatureError,
        "QE MRSIGNER: got 0101",
    ),
    (
        "QE ISVPRODID mismatch",
        TDX.but(qe_isvprodid=1),
        EvidenceSignatureError,
        "QE ISVPRODID: got 1, expected 2",
    ),
    (
        "QE in debug mode",
        TDX.but(qe_attributes=bytes.fromhex("1300000000000000e700000000000000")),
        EvidenceSignatureError,
        "QE ATTRIBUTES & attributesMask: got 13",
    ),
    (
        "QE does not bind the attestation key",
        TDX.but(bind_qe=False),
        EvidenceSignatureError,
        "bind",
    ),
    ("QE ISVSVN below every level", TDX.but(qe_isvsvn=1), PolicyViolation, "ISVSVN 1"),
    # TDX module identity.
    (
        "MRSIGNERSEAM mismatch",
        TDX.but(mrsignerseam=b"\x01" * 48),
        EvidenceSignatureError,
        "MRSIGNERSEAM",
    ),
    (
        "unknown module major version",
        TDX.but(tee_tcb_svn=svn(6, 2, 3)),
        EvidenceSignatureError,
        "TDX_02",
    ),
    (
        "module ISVSVN below every level",
        TDX.but(tee_tcb_svn=svn(1, 1, 3)),
        PolicyViolation,
        "ISVSVN 1",
    ),
    # TCB level matching.
    ("PCESVN below every level", TDX.but(pcesvn=4), PolicyViolation, "no TCB level"),
    (
        "TDX component below every level",
        TDX.but(tee_tcb_svn=svn(6, 1, 1)),
        PolicyViolation,
        "TEE_TCB_SVN",
    ),
    (
        "module major 0: component 0 compared",
        TDX.but(tee_tcb_svn=svn(4, 0, 2)),
        PolicyViolation,
        "no TCB level",
    ),
    (
        "unknown status in tcbInfo",
        TDX.but(tcb_levels=_levels(("Bogus", (5, 0, 2) + (0,) * 13))),
        EvidenceSignatureError,
        "unknown TCB status",
    ),
    (
        "15 TDX components",
        TDX.but(tcb_levels=_levels(("UpToDate", (5, 0, 2) + (0,) * 12))),
        EvidenceFormatError,
        "15 components, expected 16",
    ),
    (
        "17 SGX components",
        TDX.but(
            tcb_levels=(
                {
                    "tcb": {
                        "sgxtcbcomponents": [{"svn": 0}] * 17,
                        "pcesvn": 0,
                        "tdxtcbcomponents": [{"svn": 0}] * 16,
                    },
                    "tcbDate": "2024-01-01T00:00:00Z",
                    "tcbStatus": "UpToDate",
                },
            )
        ),
        EvidenceFormatError,
        "17 components",
    ),
    # Chain shape.
    (
        "PCK issued by an unexpected CA",
        TDX.but(pck_ca_cn="Some Other CA"),
        EvidenceSignatureError,
        "PCK CA subject CN",
    ),
    (
        "collateral missing a field",
        TDX.but(extra={"qe_identity_issuer_chain": None}),
        EvidenceFormatError,
        "qe_identity_issuer_chain: missing",
    ),
]


@pytest.mark.parametrize(
    ("world", "error", "pattern"),
    [pytest.param(w, e, p, id=name) for name, w, e, p in REFUSALS],
)
def test_refusal(world: World, error: type[AttestationError], pattern: str) -> None:
    with pytest.raises(error) as info:
        verify(world)
    assert info.value.failures, "every refusal names the failed check"
    text = "\n".join([info.value.message, *info.value.failures])
    assert re.search(pattern, text), text


def test_other_revoked_serials_do_not_matter() -> None:
    assert verify(TDX.but(pck_revoked=(0x1233, 0x1235))).tcb_status == "UpToDate"


def _root_der(built: Built) -> bytes:
    return built.root_der


def test_fake_root_is_refused_unless_added() -> None:
    built = build(TDX)
    with pytest.raises(EvidenceSignatureError, match="does not end at a trusted root") as info:
        TdxVerifier().verify(built.quote, (), built.collateral, at=NOW)
    assert "expected the pinned 'Intel SGX Root CA'" in info.value.failures[0]


def test_another_added_root_is_refused() -> None:
    built = build(TDX)
    other_key = key("other-root")
    other = cert(
        "Other Root",
        other_key,
        "Other Root",
        other_key,
        ca=True,
        serial=9,
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=1),
    )
    with pytest.raises(EvidenceSignatureError, match="does not end at a trusted root"):
        TdxVerifier().verify(
            built.quote,
            (),
            built.collateral,
            at=NOW,
            additional_roots=[other.public_bytes(serialization.Encoding.DER)],
        )


def test_collateral_chains_must_end_at_the_quote_root() -> None:
    built = build(TDX)
    other_key = key("other-root")
    other = cert(
        "Intel SGX Root CA",
        other_key,
        "Intel SGX Root CA",
        other_key,
        ca=True,
        serial=9,
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=1),
    )
    collateral = dict(built.collateral)
    chain = collateral["tcb_info_issuer_chain"]
    first_end = chain.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")
    collateral["tcb_info_issuer_chain"] = (
        chain[:first_end] + other.public_bytes(serialization.Encoding.PEM).decode()
    )
    with pytest.raises(EvidenceSignatureError, match="TCB Info issuer chain"):
        TdxVerifier().verify(built.quote, (), collateral, at=NOW, additional_roots=[built.root_der])


def test_naive_time_is_refused() -> None:
    built = build(TDX)
    with pytest.raises(ConfigurationError):
        TdxVerifier().verify(
            built.quote,
            (),
            built.collateral,
            at=NOW.replace(tzinfo=None),
            additional_roots=[built.root_der],
        )


def test_debug_bits_are_reported_not_hidden() -> None:
    tdx = verify(TDX.but(td_attributes=b"\x01" + bytes(7)))
    assert tdx.debug is True
    sgx = verify(SGX.but(sgx_attributes=bytes.fromhex("0700000000000000e700000000000000")))
    assert sgx.debug is True
    assert verify(SGX).debug is False


def test_tdx_claims() -> None:
    claims = verify(TDX.but(version=5, tdx15=True, tee_tcb_svn2=svn(6, 1, 3)))
    assert claims.measurements["MRTD"] == b"\x11" * 48
    assert [claims.measurements[f"RTMR{i}"] for i in range(4)] == [
        bytes([0x30 + i]) * 48 for i in range(4)
    ]
    assert claims.measurements["MRSEAM"] == b"\x5a" * 48
    assert claims.host_data == b"\x22" * 48
    assert claims.report_data == bytes(range(64))
    assert claims.fields["TEE_TCB_SVN2"] == svn(6, 1, 3)
    assert claims.fields["BODY_TYPE"] == 3
    assert claims.fields["XFAM"] == bytes.fromhex("e702060000000000")
    assert claims.tcb["TDXTCBCOMP02"] == 1


def test_sgx_claims() -> None:
    claims = verify(SGX)
    assert claims.measurements == {"MRENCLAVE": b"\xee" * 32, "MRSIGNER": b"\x55" * 32}
    assert claims.fields["ISVPRODID"] == 7
    assert claims.fields["ISVSVN"] == 3
    assert claims.report_data == bytes(range(64))
    assert claims.host_data == bytes(64)  # CONFIGID


V5_BODY_TYPE = 48
V5_BODY_SIZE = 50


def _v5(world: World, offset: int, fmt: str, *values: int) -> bytes:
    quote = bytearray(build(world.but(version=5)).quote)
    struct.pack_into(fmt, quote, offset, *values)
    return bytes(quote)


@pytest.mark.parametrize(
    ("quote", "pattern"),
    [
        pytest.param(_v5(TDX, V5_BODY_TYPE, "<H", 4), "body type: got 4", id="unknown-body-type"),
        pytest.param(
            _v5(TDX, V5_BODY_TYPE, "<H", 1), "expected 384 for type 1", id="sgx-body-in-tdx-quote"
        ),
        pytest.param(
            _v5(TDX, V5_BODY_TYPE, "<HI", 1, 384), "body type 1 with TEE_TYPE", id="sgx-type-in-tdx"
        ),
        pytest.param(_v5(TDX, V5_BODY_SIZE, "<I", 648), "body size", id="size-not-type"),
        pytest.param(_v5(TDX, V5_BODY_SIZE, "<I", 0xFFFFFFFF), "body size", id="huge-size"),
        pytest.param(
            _v5(SGX, V5_BODY_TYPE, "<H", 2), "expected 584 for type 2", id="td-body-in-sgx-quote"
        ),
    ],
)
def test_v5_body_descriptor_refusals(quote: bytes, pattern: str) -> None:
    verifier = TdxVerifier() if quote[4] == 0x81 else SgxVerifier()
    with pytest.raises(EvidenceFormatError) as info:
        verifier.parse(quote)
    assert re.search(pattern, "\n".join(info.value.failures))


def test_every_truncation_is_a_format_error() -> None:
    quote = build(TDX.but(version=5)).quote
    for length in range(len(quote)):
        with pytest.raises(EvidenceFormatError):
            TdxVerifier().parse(quote[:length])


def test_the_wrong_platform_verifier_refuses() -> None:
    with pytest.raises(EvidenceFormatError, match="not a sgx quote"):
        SgxVerifier().parse(build(TDX).quote)
    with pytest.raises(EvidenceFormatError, match="not a tdx quote"):
        TdxVerifier().parse(build(SGX).quote)


def test_pcs_response_shape_is_accepted() -> None:
    built = build(TDX)
    collateral = dict(built.collateral)
    tcb_info = collateral.pop("tcb_info")
    tcb_sig = collateral.pop("tcb_info_signature")
    qe = collateral.pop("qe_identity")
    qe_sig = collateral.pop("qe_identity_signature")
    collateral["tcb_info_response"] = f'{{"tcbInfo": {tcb_info},\n "signature":"{tcb_sig}"}}'
    collateral["qe_identity_response"] = (
        f'{{"enclaveIdentity":{qe},"signature":"{qe_sig}"}}'.encode()
    )
    collateral["pck_crl"] = bytes.fromhex(collateral["pck_crl"])  # DER bytes
    claims = TdxVerifier().verify(
        built.quote, (), collateral, at=NOW, additional_roots=[built.root_der]
    )
    assert claims.tcb_status == "UpToDate"


def test_replace_keeps_world_frozen() -> None:
    assert replace(TDX, pcesvn=3).pcesvn == 3
    assert TDX.pcesvn == 11
