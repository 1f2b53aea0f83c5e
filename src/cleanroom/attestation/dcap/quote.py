"""Parse Intel DCAP ECDSA quotes (SGX v3, TDX/SGX v4 and v5) into typed values.

Framing (all integers little-endian):

* v3 (Intel "SGX ECDSA Quote Library API", A.4): header(48) | enclave
  report(384) | u32 signature data length | signature data, where the
  signature data is ``ISV signature(64) | attestation key(64) | QE report(384)
  | QE report signature(64) | u16 QE auth data length | QE auth data |
  u16 certification data type | u32 size | certification data``.
* v4 (Intel "TDX DCAP Quote Generation Library and Quote Verification
  Library", A.3): header(48) | body (TD 1.0 report for TDX, enclave report
  for SGX) | u32 length | ``signature(64) | attestation key(64) |
  certification data`` where the certification data is of type 6 ("QE Report
  Certification Data") and wraps the QE report, its signature, the QE auth
  data and the inner certification data (type 5, the PCK chain).
* v5 (same document, A.4): header(48) | u16 body type (1 SGX, 2 TD 1.0,
  3 TD 1.5) | u32 body size | body | u32 length | signature data as v4.

The signed region is everything before the signature data length field.

Only ``parse`` lives here: sizes, versions, types and nesting. No signature is
checked; see :mod:`cleanroom.attestation.dcap.verify`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cleanroom.attestation.dcap.structs import (
    ATT_KEY_TYPE_ECDSA_P256,
    ENCLAVE_REPORT_SIZE,
    HEADER_SIZE,
    INTEL_QE_VENDOR_ID,
    TD10_REPORT_SIZE,
    TD15_REPORT_SIZE,
    TEE_TYPE_SGX,
    TEE_TYPE_TDX,
    EnclaveReport,
    QuoteHeader,
    TdReport,
    parse_enclave_report,
    parse_header,
    parse_td_report,
)
from cleanroom.errors import EvidenceFormatError

__all__ = [
    "BODY_TYPE_SGX",
    "BODY_TYPE_TD10",
    "BODY_TYPE_TD15",
    "CERT_TYPE_PCK_CHAIN",
    "CERT_TYPE_QE_REPORT",
    "MAX_QUOTE_SIZE",
    "Quote",
    "parse_quote",
]

BODY_TYPE_SGX = 1
BODY_TYPE_TD10 = 2
BODY_TYPE_TD15 = 3

CERT_TYPE_PCK_CHAIN = 5
CERT_TYPE_QE_REPORT = 6

# A real quote with its PEM chain is about 5 KB; anything far larger is refused
# before any work is done on it.
MAX_QUOTE_SIZE = 64 * 1024

_SIGNATURE_SIZE = 64
_PUBLIC_KEY_SIZE = 64
_BODY_SIZES = {
    BODY_TYPE_SGX: ENCLAVE_REPORT_SIZE,
    BODY_TYPE_TD10: TD10_REPORT_SIZE,
    BODY_TYPE_TD15: TD15_REPORT_SIZE,
}


@dataclass(frozen=True, slots=True)
class Quote:
    """A parsed DCAP quote. ``body`` is an :class:`EnclaveReport` for SGX and
    a :class:`TdReport` for TDX; ``signed_data`` is the region the quote
    signature covers."""

    header: QuoteHeader
    body_type: int
    body: EnclaveReport | TdReport
    signed_data: bytes
    signature: bytes
    attest_key: bytes
    qe_report: EnclaveReport
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes
    size: int

    @property
    def is_tdx(self) -> bool:
        return self.header.TEE_TYPE == TEE_TYPE_TDX


class _Reader:
    """Bounds-checked little-endian reads over one region of the quote."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data = data
        self.pos = start
        self.end = end

    def take(self, size: int, what: str) -> bytes:
        if size > self.end - self.pos:
            raise EvidenceFormatError(
                "quote is truncated",
                failures=[
                    f"{what}: needs {size} bytes at offset {self.pos:#x}, "
                    f"only {self.end - self.pos} remain"
                ],
            )
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out

    def u16(self, what: str) -> int:
        value: int = struct.unpack("<H", self.take(2, what))[0]
        return value

    def u32(self, what: str) -> int:
        value: int = struct.unpack("<I", self.take(4, what))[0]
        return value

    def expect_end(self, what: str) -> None:
        if self.pos != self.end:
            raise EvidenceFormatError(
                "quote has inconsistent sizes",
                failures=[
                    f"{what}: {self.end - self.pos} unexpected bytes at offset {self.pos:#x}"
                ],
            )


def _check_header(header: QuoteHeader) -> None:
    failures: list[str] = []
    if header.VERSION not in (3, 4, 5):
        failures.append(f"VERSION: got {header.VERSION}, expected 3, 4 or 5")
    if header.ATT_KEY_TYPE != ATT_KEY_TYPE_ECDSA_P256:
        failures.append(
            f"ATT_KEY_TYPE: got {header.ATT_KEY_TYPE}, expected {ATT_KEY_TYPE_ECDSA_P256} "
            "(ECDSA-256-with-P-256)"
        )
    if header.TEE_TYPE not in (TEE_TYPE_SGX, TEE_TYPE_TDX):
        failures.append(f"TEE_TYPE: got {header.TEE_TYPE:#010x}, expected 0x00000000 or 0x00000081")
    elif header.VERSION == 3 and header.TEE_TYPE != TEE_TYPE_SGX:
        failures.append("TEE_TYPE: quote version 3 exists only for SGX (expected 0x00000000)")
    if header.QE_VENDOR_ID != INTEL_QE_VENDOR_ID:
        failures.append(
            f"QE_VENDOR_ID: got {header.QE_VENDOR_ID.hex()}, expected {INTEL_QE_VENDOR_ID.hex()} "
            "(Intel quoting enclave)"
        )
    if failures:
        raise EvidenceFormatError("unsupported quote header", failures=failures)


def _body_type(header: QuoteHeader, reader: _Reader) -> int:
    if header.VERSION == 5:
        body_type = reader.u16("body type")
        body_size = reader.u32("body size")
        expected = _BODY_SIZES.get(body_type)
        if expected is None:
            raise EvidenceFormatError(
                "unknown quote body type",
                failures=[f"body type: got {body_type}, expected 1, 2 or 3"],
            )
        if body_size != expected:
            raise EvidenceFormatError(
                "quote body size does not match its type",
                failures=[f"body size: got {body_size}, expected {expected} for type {body_type}"],
            )
    elif header.TEE_TYPE == TEE_TYPE_TDX:
        body_type = BODY_TYPE_TD10
    else:
        body_type = BODY_TYPE_SGX
    is_sgx_body = body_type == BODY_TYPE_SGX
    if is_sgx_body != (header.TEE_TYPE == TEE_TYPE_SGX):
        raise EvidenceFormatError(
            "quote body type does not match TEE_TYPE",
            failures=[f"body type {body_type} with TEE_TYPE {header.TEE_TYPE:#010x}"],
        )
    return body_type


def _qe_report_certification(reader: _Reader) -> tuple[EnclaveReport, bytes, bytes, bytes]:
    """QE report, its signature, QE auth data and the PCK chain (type 5)."""
    qe_report = parse_enclave_report(reader.take(ENCLAVE_REPORT_SIZE, "QE report"))
    qe_report_signature = reader.take(_SIGNATURE_SIZE, "QE report signature")
    auth_len = reader.u16("QE auth data size")
    qe_auth_data = reader.take(auth_len, "QE auth data")
    cert_type = reader.u16("certification data type")
    if cert_type != CERT_TYPE_PCK_CHAIN:
        raise EvidenceFormatError(
            "unsupported certification data type",
            failures=[
                f"certification data type: got {cert_type}, expected {CERT_TYPE_PCK_CHAIN} "
                "(PCK certificate chain)"
            ],
        )
    cert_size = reader.u32("certification data size")
    pck_chain = reader.take(cert_size, "PCK certificate chain")
    return qe_report, qe_report_signature, qe_auth_data, pck_chain


def parse_quote(data: bytes, *, allow_trailing_bytes: bool = False) -> Quote:
    """Parse *data* as one DCAP quote.

    Refuses (``EvidenceFormatError``) anything truncated, any version other
    than 3, 4 or 5, any attestation key type other than ECDSA P-256, a
    certification data type other than the PCK chain, and non-zero bytes
    after the quote. Trailing zero bytes are accepted: quote-generation paths
    return the quote in a fixed-size, zero-filled buffer. Trailing bytes are
    never signed and never read; ``allow_trailing_bytes`` also accepts
    non-zero ones, for quotes stored with extra data appended.
    """
    data = bytes(data)
    if len(data) > MAX_QUOTE_SIZE:
        raise EvidenceFormatError(
            "quote is too large",
            failures=[f"size: got {len(data)} bytes, at most {MAX_QUOTE_SIZE}"],
        )
    reader = _Reader(data, 0, len(data))
    header = parse_header(reader.take(HEADER_SIZE, "quote header"))
    _check_header(header)
    body_type = _body_type(header, reader)
    body_bytes = reader.take(_BODY_SIZES[body_type], "quote body")
    body: EnclaveReport | TdReport = (
        parse_enclave_report(body_bytes)
        if body_type == BODY_TYPE_SGX
        else parse_td_report(body_bytes)
    )
    signed_end = reader.pos
    sig_len = reader.u32("signature data length")
    sig_start = reader.pos
    reader.take(sig_len, "signature data")
    quote_end = reader.pos
    trailing = data[quote_end:]
    if any(trailing) and not allow_trailing_bytes:
        raise EvidenceFormatError(
            "non-zero bytes after the end of the quote",
            failures=[f"quote length is {quote_end}, input has {len(data)} bytes"],
        )

    sig = _Reader(data, sig_start, quote_end)
    signature = sig.take(_SIGNATURE_SIZE, "quote signature")
    attest_key = sig.take(_PUBLIC_KEY_SIZE, "attestation key")
    if header.VERSION == 3:
        qe_report, qe_sig, qe_auth, pck_chain = _qe_report_certification(sig)
    else:
        outer_type = sig.u16("certification data type")
        if outer_type != CERT_TYPE_QE_REPORT:
            raise EvidenceFormatError(
                "unsupported certification data type",
                failures=[
                    f"certification data type: got {outer_type}, expected "
                    f"{CERT_TYPE_QE_REPORT} (QE report certification data)"
                ],
            )
        outer_size = sig.u32("QE report certification data size")
        inner = _Reader(data, sig.pos, sig.pos + outer_size)
        sig.take(outer_size, "QE report certification data")
        qe_report, qe_sig, qe_auth, pck_chain = _qe_report_certification(inner)
        inner.expect_end("QE report certification data")
    sig.expect_end("signature data")

    return Quote(
        header=header,
        body_type=body_type,
        body=body,
        signed_data=data[:signed_end],
        signature=signature,
        attest_key=attest_key,
        qe_report=qe_report,
        qe_report_signature=qe_sig,
        qe_auth_data=qe_auth,
        pck_chain_pem=pck_chain,
        size=quote_end,
    )
