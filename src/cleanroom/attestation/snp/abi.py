"""SEV-SNP ATTESTATION_REPORT: bytes to a typed report, and back.

Layout from AMD's SEV Secure Nested Paging Firmware ABI Specification
(publication 56860), Table 23 "ATTESTATION_REPORT Structure" (and its
TCB_VERSION structure, Table 3). All integers are little-endian. This module
checks structure only (size, version, algorithm, must-be-zero fields); it
does no cryptography and knows nothing about policy.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cleanroom.errors import EvidenceFormatError

__all__ = [
    "REPORT_SIZE",
    "SIGNED_LENGTH",
    "SIGNATURE_ALGO_ECDSA_P384_SHA384",
    "SIGNING_KEY_NONE",
    "SIGNING_KEY_VCEK",
    "SIGNING_KEY_VLEK",
    "AttestationReport",
    "TcbVersion",
    "decode_tcb",
    "encode_tcb",
    "parse_report",
    "product_from_cpuid",
]

REPORT_SIZE = 0x4A0
SIGNED_LENGTH = 0x2A0  # the signature covers bytes 0x000-0x29F
SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1
SUPPORTED_VERSIONS = frozenset({2, 3, 4, 5})

# KEY_INFO bits 4:2 (SIGNING_KEY): which key signed the report.
SIGNING_KEY_VCEK = 0
SIGNING_KEY_VLEK = 1
SIGNING_KEY_NONE = 7

# POLICY bits (ABI spec, Table 9 "Guest Policy Structure").
POLICY_SMT = 1 << 16
POLICY_RESERVED_MUST_BE_ONE = 1 << 17
POLICY_MIGRATE_MA = 1 << 18
POLICY_DEBUG = 1 << 19
POLICY_SINGLE_SOCKET = 1 << 20

_KEY_INFO_AUTHOR_KEY_EN = 1 << 0
_KEY_INFO_MASK_CHIP_KEY = 1 << 1
_KEY_INFO_MBZ = ~0x1F & 0xFFFFFFFF

# Products whose TCB_VERSION puts FMC in byte 0 (family 1Ah and later).
_FMC_LAYOUT_PRODUCTS = frozenset({"Turin"})


@dataclass(frozen=True)
class TcbVersion:
    """A decoded TCB_VERSION; ``FMC`` is None on products that have none."""

    BOOT_LOADER: int
    TEE: int
    SNP: int
    MICROCODE: int
    FMC: int | None = None

    def as_dict(self) -> dict[str, int]:
        out = {
            "BOOT_LOADER": self.BOOT_LOADER,
            "TEE": self.TEE,
            "SNP": self.SNP,
            "MICROCODE": self.MICROCODE,
        }
        if self.FMC is not None:
            out["FMC"] = self.FMC
        return out


def decode_tcb(raw: int, product: str) -> TcbVersion:
    """Decode a TCB_VERSION u64 for *product* ("Milan", "Genoa", "Turin", ...).

    Milan/Genoa: byte 0 BOOT_LOADER, 1 TEE, 2-5 reserved, 6 SNP, 7 MICROCODE.
    Turin: byte 0 FMC, 1 BOOT_LOADER, 2 TEE, 3 SNP, 4-6 reserved, 7 MICROCODE.
    """
    b = raw.to_bytes(8, "little")
    if product in _FMC_LAYOUT_PRODUCTS:
        return TcbVersion(BOOT_LOADER=b[1], TEE=b[2], SNP=b[3], MICROCODE=b[7], FMC=b[0])
    return TcbVersion(BOOT_LOADER=b[0], TEE=b[1], SNP=b[6], MICROCODE=b[7])


def encode_tcb(tcb: TcbVersion, product: str) -> int:
    """The TCB_VERSION u64 of *tcb* in *product*'s layout (inverse of :func:`decode_tcb`)."""
    b = bytearray(8)
    if product in _FMC_LAYOUT_PRODUCTS:
        b[0], b[1], b[2], b[3], b[7] = (
            tcb.FMC or 0,
            tcb.BOOT_LOADER,
            tcb.TEE,
            tcb.SNP,
            tcb.MICROCODE,
        )
    else:
        b[0], b[1], b[6], b[7] = tcb.BOOT_LOADER, tcb.TEE, tcb.SNP, tcb.MICROCODE
    return int.from_bytes(b, "little")


def product_from_cpuid(family: int, model: int) -> str | None:
    """The product line from the report's CPUID_FAM_ID / CPUID_MOD_ID (v3+).

    Family 19h: models 00h-0Fh are Milan, 10h-1Fh and A0h-AFh Genoa;
    family 1Ah: models 00h-11h are Turin. None when unknown.
    """
    if family == 0x19:
        if model <= 0x0F:
            return "Milan"
        if 0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF:
            return "Genoa"
    if family == 0x1A and model <= 0x11:
        return "Turin"
    return None


@dataclass(frozen=True)
class AttestationReport:
    """One ATTESTATION_REPORT, field names as in the ABI specification."""

    raw: bytes = field(repr=False)
    VERSION: int
    GUEST_SVN: int
    POLICY: int
    FAMILY_ID: bytes
    IMAGE_ID: bytes
    VMPL: int
    SIGNATURE_ALGO: int
    CURRENT_TCB: int
    PLATFORM_INFO: int
    KEY_INFO: int
    REPORT_DATA: bytes
    MEASUREMENT: bytes
    HOST_DATA: bytes
    ID_KEY_DIGEST: bytes
    AUTHOR_KEY_DIGEST: bytes
    REPORT_ID: bytes
    REPORT_ID_MA: bytes
    REPORTED_TCB: int
    CPUID_FAM_ID: int | None
    CPUID_MOD_ID: int | None
    CPUID_STEP: int | None
    CHIP_ID: bytes
    COMMITTED_TCB: int
    CURRENT_BUILD: int
    CURRENT_MINOR: int
    CURRENT_MAJOR: int
    COMMITTED_BUILD: int
    COMMITTED_MINOR: int
    COMMITTED_MAJOR: int
    LAUNCH_TCB: int
    LAUNCH_MIT_VECTOR: int | None
    CURRENT_MIT_VECTOR: int | None
    SIGNATURE_R: int
    SIGNATURE_S: int

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_LENGTH]

    @property
    def signing_key(self) -> int:
        """KEY_INFO.SIGNING_KEY (bits 4:2): 0 VCEK, 1 VLEK, 7 none."""
        return (self.KEY_INFO >> 2) & 0x7

    @property
    def mask_chip_key(self) -> bool:
        return bool(self.KEY_INFO & _KEY_INFO_MASK_CHIP_KEY)

    @property
    def author_key_en(self) -> bool:
        return bool(self.KEY_INFO & _KEY_INFO_AUTHOR_KEY_EN)

    @property
    def debug(self) -> bool:
        return bool(self.POLICY & POLICY_DEBUG)

    @property
    def product(self) -> str | None:
        """The product line named by CPUID (v3+), None for v2 or unknown models."""
        if self.CPUID_FAM_ID is None or self.CPUID_MOD_ID is None:
            return None
        return product_from_cpuid(self.CPUID_FAM_ID, self.CPUID_MOD_ID)


def _u8(b: bytes, off: int) -> int:
    return b[off]


def _u32(b: bytes, off: int) -> int:
    return int(struct.unpack_from("<I", b, off)[0])


def _u64(b: bytes, off: int) -> int:
    return int(struct.unpack_from("<Q", b, off)[0])


def _mbz(raw: bytes, start: int, end: int, name: str, failures: list[str]) -> None:
    if any(raw[start:end]):
        failures.append(
            f"{name}: got non-zero bytes at 0x{start:03X}-0x{end - 1:03X}, expected zero"
        )


def parse_report(raw: bytes) -> AttestationReport:
    """Parse and structurally check one ATTESTATION_REPORT.

    Raises :class:`EvidenceFormatError` listing every structural defect:
    wrong size, unsupported VERSION or SIGNATURE_ALGO, POLICY bit 17 clear,
    and non-zero must-be-zero fields (including fields the report's version
    does not define).
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise EvidenceFormatError("SEV-SNP report must be bytes")
    raw = bytes(raw)
    if len(raw) != REPORT_SIZE:
        raise EvidenceFormatError(
            f"SEV-SNP report has {len(raw)} bytes, expected {REPORT_SIZE}",
            failures=[f"size: got {len(raw)}, expected {REPORT_SIZE}"],
        )
    failures: list[str] = []
    version = _u32(raw, 0x000)
    if version not in SUPPORTED_VERSIONS:
        raise EvidenceFormatError(
            f"unsupported SEV-SNP report VERSION {version}",
            failures=[f"VERSION: got {version}, expected one of {sorted(SUPPORTED_VERSIONS)}"],
        )
    policy = _u64(raw, 0x008)
    if not policy & POLICY_RESERVED_MUST_BE_ONE:
        failures.append(f"POLICY: got 0x{policy:x}, expected bit 17 (reserved, must be one) set")
    signature_algo = _u32(raw, 0x034)
    if signature_algo != SIGNATURE_ALGO_ECDSA_P384_SHA384:
        failures.append(
            f"SIGNATURE_ALGO: got {signature_algo}, expected {SIGNATURE_ALGO_ECDSA_P384_SHA384}"
            " (ECDSA P-384 with SHA-384)"
        )
    key_info = _u32(raw, 0x048)
    if key_info & _KEY_INFO_MBZ:
        failures.append(f"KEY_INFO: got 0x{key_info:x}, expected bits 31:5 zero")
    _mbz(raw, 0x04C, 0x050, "reserved", failures)
    has_cpuid = version >= 3
    if has_cpuid:
        _mbz(raw, 0x18B, 0x1A0, "reserved", failures)
    else:
        _mbz(raw, 0x188, 0x1A0, "reserved", failures)
    _mbz(raw, 0x1EB, 0x1EC, "reserved", failures)
    _mbz(raw, 0x1EF, 0x1F0, "reserved", failures)
    has_mit = version >= 5
    if not has_mit:
        _mbz(raw, 0x1F8, 0x208, "reserved", failures)
    _mbz(raw, 0x208, 0x2A0, "reserved", failures)
    # SIGNATURE: R and S are 72-byte little-endian fields of which only the
    # low 48 bytes are significant for P-384; the rest of the 512-byte area
    # is reserved (ABI spec, Table 141 "ECDSA P-384 with SHA-384 Signature").
    _mbz(raw, 0x2A0 + 48, 0x2A0 + 72, "SIGNATURE.R high bytes", failures)
    _mbz(raw, 0x2E8 + 48, 0x2E8 + 72, "SIGNATURE.S high bytes", failures)
    _mbz(raw, 0x330, REPORT_SIZE, "SIGNATURE reserved", failures)
    if failures:
        raise EvidenceFormatError("malformed SEV-SNP report", failures=failures)
    return AttestationReport(
        raw=raw,
        VERSION=version,
        GUEST_SVN=_u32(raw, 0x004),
        POLICY=policy,
        FAMILY_ID=raw[0x010:0x020],
        IMAGE_ID=raw[0x020:0x030],
        VMPL=_u32(raw, 0x030),
        SIGNATURE_ALGO=signature_algo,
        CURRENT_TCB=_u64(raw, 0x038),
        PLATFORM_INFO=_u64(raw, 0x040),
        KEY_INFO=key_info,
        REPORT_DATA=raw[0x050:0x090],
        MEASUREMENT=raw[0x090:0x0C0],
        HOST_DATA=raw[0x0C0:0x0E0],
        ID_KEY_DIGEST=raw[0x0E0:0x110],
        AUTHOR_KEY_DIGEST=raw[0x110:0x140],
        REPORT_ID=raw[0x140:0x160],
        REPORT_ID_MA=raw[0x160:0x180],
        REPORTED_TCB=_u64(raw, 0x180),
        CPUID_FAM_ID=_u8(raw, 0x188) if has_cpuid else None,
        CPUID_MOD_ID=_u8(raw, 0x189) if has_cpuid else None,
        CPUID_STEP=_u8(raw, 0x18A) if has_cpuid else None,
        CHIP_ID=raw[0x1A0:0x1E0],
        COMMITTED_TCB=_u64(raw, 0x1E0),
        CURRENT_BUILD=_u8(raw, 0x1E8),
        CURRENT_MINOR=_u8(raw, 0x1E9),
        CURRENT_MAJOR=_u8(raw, 0x1EA),
        COMMITTED_BUILD=_u8(raw, 0x1EC),
        COMMITTED_MINOR=_u8(raw, 0x1ED),
        COMMITTED_MAJOR=_u8(raw, 0x1EE),
        LAUNCH_TCB=_u64(raw, 0x1F0),
        LAUNCH_MIT_VECTOR=_u64(raw, 0x1F8) if has_mit else None,
        CURRENT_MIT_VECTOR=_u64(raw, 0x200) if has_mit else None,
        SIGNATURE_R=int.from_bytes(raw[0x2A0:0x2E8], "little"),
        SIGNATURE_S=int.from_bytes(raw[0x2E8:0x330], "little"),
    )
