"""Fixed-size structures inside Intel DCAP quotes: the header and the report bodies.

Layouts follow Intel's "SGX ECDSA Quote Library API" (quote v3, section A.4)
and "TDX DCAP Quote Generation Library and Quote Verification Library"
(quote v4 and v5, appendix A). Every integer is little-endian. Field names are
the specifications' names, so a failure message can be searched in the
documents.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cleanroom.errors import EvidenceFormatError

__all__ = [
    "ATT_KEY_TYPE_ECDSA_P256",
    "ENCLAVE_REPORT_SIZE",
    "HEADER_SIZE",
    "INTEL_QE_VENDOR_ID",
    "TD10_REPORT_SIZE",
    "TD15_REPORT_SIZE",
    "TEE_TYPE_SGX",
    "TEE_TYPE_TDX",
    "EnclaveReport",
    "QuoteHeader",
    "TdReport",
    "parse_enclave_report",
    "parse_header",
    "parse_td_report",
]

HEADER_SIZE = 48
ENCLAVE_REPORT_SIZE = 384
TD10_REPORT_SIZE = 584
TD15_REPORT_SIZE = 648

ATT_KEY_TYPE_ECDSA_P256 = 2
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081

# QE_VENDOR_ID of Intel's quoting enclaves (the only QE Intel collateral covers).
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")


def _need(data: bytes, size: int, what: str) -> None:
    if len(data) != size:
        raise EvidenceFormatError(
            f"{what} must be {size} bytes",
            failures=[f"{what}: got {len(data)} bytes, expected {size}"],
        )


@dataclass(frozen=True, slots=True)
class QuoteHeader:
    """The 48-byte quote header (sgx_quote_header_t / TDX Quote Header)."""

    VERSION: int
    ATT_KEY_TYPE: int
    TEE_TYPE: int
    QE_SVN: int
    PCE_SVN: int
    QE_VENDOR_ID: bytes
    USER_DATA: bytes


def parse_header(data: bytes) -> QuoteHeader:
    """Parse the first 48 bytes of a quote; structure only, no policy."""
    _need(data, HEADER_SIZE, "quote header")
    version, key_type, tee_type, qe_svn, pce_svn = struct.unpack_from("<HHIHH", data, 0)
    return QuoteHeader(
        VERSION=version,
        ATT_KEY_TYPE=key_type,
        TEE_TYPE=tee_type,
        QE_SVN=qe_svn,
        PCE_SVN=pce_svn,
        QE_VENDOR_ID=bytes(data[12:28]),
        USER_DATA=bytes(data[28:48]),
    )


@dataclass(frozen=True, slots=True)
class EnclaveReport:
    """An SGX REPORTBODY (384 bytes): the QE report, or an SGX quote's body.

    Offsets from the Intel SGX Developer Reference, "sgx_report_body_t".
    ``ATTRIBUTES`` flags bit 1 is DEBUG.
    """

    CPUSVN: bytes
    MISCSELECT: int
    ISVEXTPRODID: bytes
    ATTRIBUTES: bytes
    MRENCLAVE: bytes
    MRSIGNER: bytes
    CONFIGID: bytes
    ISVPRODID: int
    ISVSVN: int
    CONFIGSVN: int
    ISVFAMILYID: bytes
    REPORTDATA: bytes
    raw: bytes

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.DEBUG (flags bit 1): a debugger may read the enclave."""
        return bool(self.ATTRIBUTES[0] & 0x02)


def parse_enclave_report(data: bytes) -> EnclaveReport:
    """Parse a 384-byte SGX report body."""
    _need(data, ENCLAVE_REPORT_SIZE, "enclave report body")
    (misc_select,) = struct.unpack_from("<I", data, 0x10)
    isv_prod_id, isv_svn, config_svn = struct.unpack_from("<HHH", data, 0x100)
    return EnclaveReport(
        CPUSVN=bytes(data[0x00:0x10]),
        MISCSELECT=misc_select,
        ISVEXTPRODID=bytes(data[0x20:0x30]),
        ATTRIBUTES=bytes(data[0x30:0x40]),
        MRENCLAVE=bytes(data[0x40:0x60]),
        MRSIGNER=bytes(data[0x80:0xA0]),
        CONFIGID=bytes(data[0xC0:0x100]),
        ISVPRODID=isv_prod_id,
        ISVSVN=isv_svn,
        CONFIGSVN=config_svn,
        ISVFAMILYID=bytes(data[0x130:0x140]),
        REPORTDATA=bytes(data[0x140:0x180]),
        raw=bytes(data),
    )


@dataclass(frozen=True, slots=True)
class TdReport:
    """A TD quote body: TDX 1.0 (584 bytes) or TDX 1.5 (648 bytes).

    ``TEE_TCB_SVN2`` and ``MRSERVICETD`` exist only in the TDX 1.5 body and
    are ``None`` for TDX 1.0. TDATTRIBUTES bit 0 is DEBUG (TDX module ABI
    spec, "ATTRIBUTES").
    """

    TEE_TCB_SVN: bytes
    MRSEAM: bytes
    MRSIGNERSEAM: bytes
    SEAMATTRIBUTES: bytes
    TDATTRIBUTES: bytes
    XFAM: bytes
    MRTD: bytes
    MRCONFIGID: bytes
    MROWNER: bytes
    MROWNERCONFIG: bytes
    RTMR0: bytes
    RTMR1: bytes
    RTMR2: bytes
    RTMR3: bytes
    REPORTDATA: bytes
    TEE_TCB_SVN2: bytes | None
    MRSERVICETD: bytes | None

    @property
    def debug(self) -> bool:
        """TDATTRIBUTES.DEBUG (bit 0): the host VMM may read and write TD state."""
        return bool(self.TDATTRIBUTES[0] & 0x01)


def parse_td_report(data: bytes) -> TdReport:
    """Parse a TD quote body of either size."""
    if len(data) not in (TD10_REPORT_SIZE, TD15_REPORT_SIZE):
        raise EvidenceFormatError(
            "TD quote body has an unknown size",
            failures=[
                f"TD quote body: got {len(data)} bytes, expected "
                f"{TD10_REPORT_SIZE} (TDX 1.0) or {TD15_REPORT_SIZE} (TDX 1.5)"
            ],
        )
    is_15 = len(data) == TD15_REPORT_SIZE
    return TdReport(
        TEE_TCB_SVN=bytes(data[0x000:0x010]),
        MRSEAM=bytes(data[0x010:0x040]),
        MRSIGNERSEAM=bytes(data[0x040:0x070]),
        SEAMATTRIBUTES=bytes(data[0x070:0x078]),
        TDATTRIBUTES=bytes(data[0x078:0x080]),
        XFAM=bytes(data[0x080:0x088]),
        MRTD=bytes(data[0x088:0x0B8]),
        MRCONFIGID=bytes(data[0x0B8:0x0E8]),
        MROWNER=bytes(data[0x0E8:0x118]),
        MROWNERCONFIG=bytes(data[0x118:0x148]),
        RTMR0=bytes(data[0x148:0x178]),
        RTMR1=bytes(data[0x178:0x1A8]),
        RTMR2=bytes(data[0x1A8:0x1D8]),
        RTMR3=bytes(data[0x1D8:0x208]),
        REPORTDATA=bytes(data[0x208:0x248]),
        TEE_TCB_SVN2=bytes(data[0x248:0x258]) if is_15 else None,
        MRSERVICETD=bytes(data[0x258:0x288]) if is_15 else None,
    )
