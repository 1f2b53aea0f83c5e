"""One byte or one collateral field changed in a real, valid vector: one refusal each.

The base case is the dcap-qvl TDX v4 quote with its PCS collateral, which
verifies as UpToDate at ``QVL_TDX_V4_AT`` (see ``test_dcap_vectors``).
Offsets in that quote (TDX quote v4, Intel TDX DCAP QVL spec A.3): header
0x000, TD body 0x030, signature data length 0x278, quote signature 0x27C,
attestation key 0x2BC, certification data type 6 at 0x2FC, QE report 0x302,
QE report signature 0x482, QE auth data length 0x4C2, QE auth data 0x4C4,
PCK chain type 5 at 0x4E4, size 0x4E6, PEM 0x4EA.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Any

import pytest
from dcap_vectors import QVL_SGX, QVL_TDX, QVL_TDX_V4_AT, qvl_collateral

from cleanroom.attestation.dcap import TdxVerifier
from cleanroom.errors import AttestationError, EvidenceFormatError, EvidenceSignatureError

QUOTE = (QVL_TDX / "tdx_quote_v4.bin").read_bytes()
QUOTE_END = 0x27C + struct.unpack_from("<I", QUOTE, 0x278)[0]
PEM_START = 0x4EA


def _set(offset: int, value: int) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        out[offset] = value
        return bytes(out)

    return mutate


def _flip(offset: int, mask: int = 0x01) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        out[offset] ^= mask
        return bytes(out)

    return mutate


def _pem_char(cert_index: int, back: int) -> Callable[[bytes], bytes]:
    """Change one base64 character *back* characters before the END line of a
    certificate in the PCK chain (inside its signature)."""

    def mutate(data: bytes) -> bytes:
        end = PEM_START
        for _ in range(cert_index + 1):
            end = data.index(b"-----END CERTIFICATE-----", end + 1)
        position = end - back
        while data[position : position + 1] in (b"\n", b"="):
            position -= 1
        out = bytearray(data)
        out[position] = ord("A") if out[position] != ord("A") else ord("B")
        return bytes(out)

    return mutate


def _extra_byte_in_qe_certification_data(data: bytes) -> bytes:
    """One byte appended inside the type-6 certification data (after the PCK chain),
    with the type-6 size and the signature data length grown to match: the outer
    sizes agree, only the inner layout has an unread byte. Nothing signs it."""
    pck_end = PEM_START + struct.unpack_from("<I", data, 0x4E6)[0]
    out = bytearray(data[:pck_end] + b"\x01" + data[pck_end:])
    struct.pack_into("<I", out, 0x2FE, struct.unpack_from("<I", out, 0x2FE)[0] + 1)
    struct.pack_into("<I", out, 0x278, struct.unpack_from("<I", out, 0x278)[0] + 1)
    return bytes(out)


QUOTE_MUTATIONS: list[tuple[str, Callable[[bytes], bytes], type[AttestationError], str]] = [
    ("VERSION 4 -> 3 (SGX-only version)", _set(0x00, 3), EvidenceFormatError, "TEE_TYPE"),
    ("VERSION 4 -> 6 (unknown)", _set(0x00, 6), EvidenceFormatError, "VERSION"),
    ("ATT_KEY_TYPE 2 -> 3", _set(0x02, 3), EvidenceFormatError, "ATT_KEY_TYPE"),
    ("TEE_TYPE 0x81 -> 0x82", _set(0x04, 0x82), EvidenceFormatError, "TEE_TYPE"),
    ("TEE_TYPE TDX -> SGX", _set(0x04, 0x00), EvidenceFormatError, "."),
    ("QE_VENDOR_ID changed", _flip(0x0C), EvidenceFormatError, "QE_VENDOR_ID"),
    ("header USER_DATA changed", _set(0x1E, 0x32), EvidenceSignatureError, "quote signature"),
    ("QE_SVN changed", _flip(0x08), EvidenceSignatureError, "quote signature"),
    ("TEE_TCB_SVN changed", _flip(0x30), EvidenceSignatureError, "quote signature"),
    ("MRSEAM changed", _set(0x3C, 0x32), EvidenceSignatureError, "quote signature"),
    ("TDATTRIBUTES.DEBUG set", _flip(0x30 + 0x78), EvidenceSignatureError, "quote signature"),
    ("MRTD changed", _flip(0x30 + 0x88), EvidenceSignatureError, "quote signature"),
    ("RTMR3 changed", _flip(0x30 + 0x1D8), EvidenceSignatureError, "quote signature"),
    ("REPORTDATA changed", _flip(0x30 + 0x247), EvidenceSignatureError, "quote signature"),
    ("quote signature r changed", _flip(0x27C), EvidenceSignatureError, "quote signature"),
    ("quote signature s changed", _flip(0x27C + 63), EvidenceSignatureError, "quote signature"),
    ("attestation key changed", _flip(0x2BC + 5), EvidenceSignatureError, "bind"),
    ("QE report CPUSVN changed", _flip(0x302), EvidenceSignatureError, "QE report signature"),
    ("QE report MRSIGNER changed", _flip(0x302 + 0x80), EvidenceSignatureError, "QE report"),
    ("QE REPORTDATA changed", _flip(0x302 + 0x140), EvidenceSignatureError, "QE report"),
    ("QE report signature changed", _flip(0x482 + 7), EvidenceSignatureError, "QE report"),
    ("QE auth data changed", _flip(0x4C4), EvidenceSignatureError, "bind"),
    ("signature data length changed", _set(0x278, 0x10), EvidenceFormatError, "."),
    ("certification data type 6 -> 5", _set(0x2FC, 5), EvidenceFormatError, "type"),
    ("certification data size changed", _flip(0x2FE), EvidenceFormatError, "."),
    ("QE auth data length changed", _flip(0x4C2), EvidenceFormatError, "."),
    ("PCK chain type 5 -> 1", _set(0x4E4, 1), EvidenceFormatError, "type"),
    ("PCK chain PEM header broken", _set(PEM_START + 5, 0x32), EvidenceFormatError, "got 2 cert"),
    ("PCK certificate signature changed", _pem_char(0, 20), EvidenceSignatureError, "PCK"),
    ("PCK CA certificate signature changed", _pem_char(1, 20), EvidenceSignatureError, "PCK CA"),
    ("root certificate changed", _pem_char(2, 20), EvidenceSignatureError, "trusted root"),
    ("quote truncated by one byte", lambda q: q[: QUOTE_END - 1], EvidenceFormatError, "truncated"),
    ("quote header only", lambda q: q[:48], EvidenceFormatError, "truncated"),
    ("empty input", lambda q: b"", EvidenceFormatError, "truncated"),
    ("non-zero byte appended", lambda q: q[:QUOTE_END] + b"\x01", EvidenceFormatError, "after"),
    (
        "one byte more inside the QE certification data",
        _extra_byte_in_qe_certification_data,
        EvidenceFormatError,
        "QE report certification data: 1 unexpected bytes",
    ),
    ("oversized input", lambda q: q + b"\x01" * 70_000, EvidenceFormatError, "too large"),
    # One bit in the PCK certificate's text that makes two of its extensions the same.
    (
        "PCK certificate with a duplicated extension",
        _flip(0x12A2, 0x01),
        EvidenceFormatError,
        "PEM",
    ),
]


def assert_refusal(error: AttestationError, pattern: str) -> None:
    """The refusal names its failed checks, and *pattern* is in the message or them."""
    assert error.failures, "every refusal names the failed check"
    text = "\n".join([error.message, *error.failures])
    assert re.search(pattern, text), text


def _verify(quote: bytes, collateral: dict[str, Any]) -> None:
    TdxVerifier().verify(quote, (), collateral, at=QVL_TDX_V4_AT)


def test_base_case_verifies() -> None:
    _verify(QUOTE, qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json"))


@pytest.mark.parametrize(
    ("mutation", "error", "match"),
    [pytest.param(m, e, s, id=name) for name, m, e, s in QUOTE_MUTATIONS],
)
def test_quote_mutation_is_refused(
    mutation: Callable[[bytes], bytes], error: type[AttestationError], match: str
) -> None:
    mutated = mutation(QUOTE)
    assert mutated != QUOTE
    with pytest.raises(error) as info:
        _verify(mutated, qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json"))
    assert_refusal(info.value, match)


def test_zero_padding_is_accepted_and_unsigned() -> None:
    assert QUOTE[QUOTE_END:] == bytes(len(QUOTE) - QUOTE_END)
    _verify(QUOTE[:QUOTE_END], qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json"))


def _hex_flip(key: str, back: int) -> Callable[[dict[str, Any]], None]:
    """Flip one bit of a hex-encoded field, *back* bytes from its end."""

    def mutate(c: dict[str, Any]) -> None:
        raw = bytearray(bytes.fromhex(c[key]))
        raw[len(raw) - back] ^= 0x01
        c[key] = raw.hex()

    return mutate


def _replace(key: str, old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(c: dict[str, Any]) -> None:
        assert old in c[key]
        c[key] = c[key].replace(old, new, 1)

    return mutate


def _copy(key: str, source: str) -> Callable[[dict[str, Any]], None]:
    def mutate(c: dict[str, Any]) -> None:
        c[key] = c[source]

    return mutate


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(c: dict[str, Any]) -> None:
        del c[key]

    return mutate


def _from_sgx(key: str) -> Callable[[dict[str, Any]], None]:
    sgx = qvl_collateral(QVL_SGX / "sgx_quote_v3_collateral.json")

    def mutate(c: dict[str, Any]) -> None:
        c[key] = sgx[key]
        if key in ("tcb_info", "qe_identity"):
            c[key + "_signature"] = sgx[key + "_signature"]

    return mutate


COLLATERAL_MUTATIONS: list[
    tuple[str, Callable[[dict[str, Any]], None], type[AttestationError], str]
] = [
    (
        "tcbInfo text changed",
        _replace("tcb_info", '"pcesvn":5', '"pcesvn":4'),
        EvidenceSignatureError,
        "tcbInfo signature",
    ),
    (
        "tcbInfo whitespace added",
        _replace("tcb_info", ",", ", "),
        EvidenceSignatureError,
        "tcbInfo signature",
    ),
    (
        "tcbInfo signature changed",
        _hex_flip("tcb_info_signature", 1),
        EvidenceSignatureError,
        "tcbInfo signature",
    ),
    (
        "QE identity text changed",
        _replace("qe_identity", '"isvprodid":2', '"isvprodid":3'),
        EvidenceSignatureError,
        "enclaveIdentity signature",
    ),
    (
        "QE identity signature changed",
        _hex_flip("qe_identity_signature", 40),
        EvidenceSignatureError,
        "enclaveIdentity signature",
    ),
    ("PCK CRL signature changed", _hex_flip("pck_crl", 3), EvidenceSignatureError, "PCK CRL"),
    (
        "root CA CRL signature changed",
        _hex_flip("root_ca_crl", 3),
        EvidenceSignatureError,
        "root CA CRL",
    ),
    (
        "tcbInfo signed by the wrong chain",
        _copy("tcb_info_issuer_chain", "pck_crl_issuer_chain"),
        EvidenceSignatureError,
        "signer CN: got 'Intel SGX PCK Platform CA'",
    ),
    (
        "PCK CRL issuer chain of another CA",
        _copy("pck_crl_issuer_chain", "tcb_info_issuer_chain"),
        EvidenceSignatureError,
        "PCK CRL",
    ),
    ("SGX tcbInfo for a TDX quote", _from_sgx("tcb_info"), EvidenceSignatureError, "tcbInfo"),
    (
        "SGX QE identity for a TDX quote",
        _from_sgx("qe_identity"),
        EvidenceSignatureError,
        "QE identity|enclaveIdentity",
    ),
    ("Processor CA CRL for a Platform CA PCK", _from_sgx("pck_crl"), EvidenceSignatureError, "CRL"),
    ("tcbInfo missing", _delete("tcb_info"), EvidenceFormatError, "incomplete"),
    ("root CA CRL missing", _delete("root_ca_crl"), EvidenceFormatError, "incomplete"),
    ("PCK CRL not hex", _replace("pck_crl", "30", "zz"), EvidenceFormatError, "CRL"),
    (
        "tcbInfo signature too short",
        _replace("tcb_info_signature", "02", ""),
        EvidenceFormatError,
        "size",
    ),
]


@pytest.mark.parametrize(
    ("mutation", "error", "match"),
    [pytest.param(m, e, s, id=name) for name, m, e, s in COLLATERAL_MUTATIONS],
)
def test_collateral_mutation_is_refused(
    mutation: Callable[[dict[str, Any]], None], error: type[AttestationError], match: str
) -> None:
    collateral = qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json")
    mutation(collateral)
    with pytest.raises(error) as info:
        _verify(QUOTE, collateral)
    assert_refusal(info.value, match)


def test_parsed_json_instead_of_exact_text_is_refused() -> None:
    import json

    collateral = qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json")
    collateral["tcb_info"] = json.loads(collateral["tcb_info"])
    with pytest.raises(EvidenceFormatError, match="wrong type"):
        _verify(QUOTE, collateral)


def test_a_different_pinned_root_refuses_the_real_quote() -> None:
    from dcap_fakes import ROOT_CN, cert, key

    fake_key = key("root")
    fake_root = cert(
        ROOT_CN,
        fake_key,
        ROOT_CN,
        fake_key,
        ca=True,
        serial=1,
        not_before=QVL_TDX_V4_AT.replace(year=2020),
        not_after=QVL_TDX_V4_AT.replace(year=2040),
    )
    with pytest.raises(EvidenceSignatureError, match="trusted root") as info:
        TdxVerifier(pinned_root=fake_root).verify(
            QUOTE, (), qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json"), at=QVL_TDX_V4_AT
        )
    assert "Intel SGX Root CA" in info.value.failures[0]


# go-tdx-guest's TestNegativeVerification: quote[index] = value on the SPR-E4
# quote, checked without collateral at the repository's time.
GO_TDX_NEGATIVES: list[tuple[str, int, int, type[AttestationError], str]] = [
    ("Version byte Changed", 0x00, 0x03, EvidenceFormatError, "TEE_TYPE"),
    ("Signed data size byte Changed", 0x278, 0x10, EvidenceFormatError, "."),
    # Breaks the root's PEM END line: the chain has two certificates left.
    ("Certificate chain byte Changed", 0x1343, 0x32, EvidenceFormatError, "got 2 cert"),
    ("Root Certificate byte Changed", 0x1329, 0x32, EvidenceSignatureError, "trusted root"),
    ("Intermediate Certificate byte Changed", 0xF5F, 0x32, EvidenceSignatureError, "PCK CA"),
    ("PCK Certificate byte Changed", 0xB77, 0x32, EvidenceSignatureError, "PCK certificate"),
    ("Header Byte Changed", 0x1E, 0x32, EvidenceSignatureError, "quote signature"),
    ("TD Quote Body Changed", 0x3C, 0x32, EvidenceSignatureError, "quote signature"),
]


@pytest.mark.parametrize(
    ("index", "value", "error", "match"),
    [pytest.param(i, v, e, m, id=name) for name, i, v, e, m in GO_TDX_NEGATIVES],
)
def test_go_tdx_guest_negative_mutations(
    index: int, value: int, error: type[AttestationError], match: str
) -> None:
    from dcap_vectors import GO_TDX, GO_TDX_AT

    from cleanroom.attestation.dcap import intel_sgx_root_ca, verify_quote_signatures

    def check(data: bytes) -> None:
        parsed = TdxVerifier(allow_trailing_bytes=True).parse(data)
        verify_quote_signatures(parsed, at=GO_TDX_AT, pinned_root=intel_sgx_root_ca())

    quote = bytearray((GO_TDX / "tdx_prod_quote_SPR_E4.dat").read_bytes())
    check(bytes(quote))
    assert quote[index] != value
    quote[index] = value
    with pytest.raises(error) as info:
        check(bytes(quote))
    assert_refusal(info.value, match)
