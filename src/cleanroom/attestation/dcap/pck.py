"""The PCK certificate chain carried in a quote, and the PCK's SGX extensions.

The SGX extensions (OID 1.2.840.113741.1.13.1) are defined in Intel's
"SGX PCK Certificate and Certificate Revocation List Profile Specification",
section 1.3.5: PPID (.1), TCB (.2: .2.1-.2.16 the CPUSVN components, .2.17
PCESVN, .2.18 CPUSVN), PCE-ID (.3), FMSPC (.4), SGX Type (.5). The platform
instance id and configuration (.6, .7) exist only for multi-package platforms
and are not needed for verification.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

from asn1crypto import core
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning

from cleanroom.errors import EvidenceFormatError

__all__ = [
    "SGX_EXTENSIONS_OID",
    "PckExtensions",
    "load_pem_chain",
    "parse_pck_extensions",
]

SGX_EXTENSIONS_OID = "1.2.840.113741.1.13.1"
_PPID = SGX_EXTENSIONS_OID + ".1"
_TCB = SGX_EXTENSIONS_OID + ".2"
_PCEID = SGX_EXTENSIONS_OID + ".3"
_FMSPC = SGX_EXTENSIONS_OID + ".4"
_SGX_TYPE = SGX_EXTENSIONS_OID + ".5"
_PCESVN = _TCB + ".17"
_CPUSVN = _TCB + ".18"

# What asn1crypto raises on malformed DER (it has no exception base class).
_ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)

# A chain larger than this is not a PCK chain (a real one is under 4 KB).
_MAX_CHAIN_PEM = 16 * 1024


class _Entry(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[str, type[core.Asn1Value]]]] = [
        ("id", core.ObjectIdentifier),
        ("value", core.Any),
    ]


class _Entries(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _Entry


class _SgxType(core.Enumerated):  # type: ignore[misc]
    # 0 = Standard, 1 = Scalable, 2 = Scalable with Integrity (PCK profile 1.3.5).
    _map: ClassVar[dict[int, int]] = {0: 0, 1: 1, 2: 2}


@dataclass(frozen=True, slots=True)
class PckExtensions:
    """The SGX extension values of a PCK certificate, by spec name."""

    PPID: bytes
    CPUSVN_COMPONENTS: tuple[int, ...]
    PCESVN: int
    CPUSVN: bytes
    PCEID: bytes
    FMSPC: bytes
    SGX_TYPE: int


def load_pem_chain(pem: bytes, what: str) -> list[x509.Certificate]:
    """The certificates in a PEM bundle, in order; refuses anything unparsable."""
    text = bytes(pem).rstrip(b"\x00")
    if len(text) > _MAX_CHAIN_PEM:
        raise EvidenceFormatError(
            f"{what} is too large",
            failures=[f"{what}: {len(text)} bytes, at most {_MAX_CHAIN_PEM}"],
        )
    try:
        with warnings.catch_warnings():
            # Intel certificates are RFC 5280-conformant; what cryptography only
            # warns about (e.g. a non-positive serial) is refused here.
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            certs = x509.load_pem_x509_certificates(text)
            for cert in certs:
                _parse_eagerly(cert)
    except (
        ValueError,
        UnsupportedAlgorithm,
        x509.InvalidVersion,
        x509.DuplicateExtension,
        CryptographyDeprecationWarning,
    ) as exc:
        raise EvidenceFormatError(
            f"{what} does not parse as PEM certificates", failures=[f"{what}: {exc}"]
        ) from None
    return certs


def _parse_eagerly(cert: x509.Certificate) -> None:
    """Touch every field verification reads: ``cryptography`` parses lazily, and
    a malformed field must be refused here as a format error, not later."""
    _ = (cert.subject, cert.issuer, cert.serial_number, cert.extensions)
    _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.signature_hash_algorithm)
    cert.public_key()


def _entries(value: bytes, what: str) -> dict[str, core.Any]:
    try:
        parsed = _Entries.load(value)
        out: dict[str, core.Any] = {}
        for entry in parsed:
            oid = entry["id"].dotted
            if oid in out:
                raise ValueError(f"duplicate {oid}")
            out[oid] = entry["value"]
    except _ASN1_ERRORS as exc:
        raise EvidenceFormatError(
            "PCK certificate SGX extension is malformed", failures=[f"{what}: {exc}"]
        ) from None
    return out


def _get(entries: dict[str, core.Any], oid: str, spec: type[core.Asn1Value]) -> object:
    if oid not in entries:
        raise EvidenceFormatError(
            "PCK certificate SGX extension is incomplete",
            failures=[f"SGX extension {oid}: missing"],
        )
    try:
        return entries[oid].parse(spec).native
    except _ASN1_ERRORS as exc:
        raise EvidenceFormatError(
            "PCK certificate SGX extension is malformed",
            failures=[f"SGX extension {oid}: {exc}"],
        ) from None


def _octets(entries: dict[str, core.Any], oid: str, size: int) -> bytes:
    value = _get(entries, oid, core.OctetString)
    if not isinstance(value, bytes) or len(value) != size:
        raise EvidenceFormatError(
            "PCK certificate SGX extension is malformed",
            failures=[f"SGX extension {oid}: expected {size} bytes"],
        )
    return value


def _svn(entries: dict[str, core.Any], oid: str, limit: int) -> int:
    value = _get(entries, oid, core.Integer)
    if not isinstance(value, int) or not 0 <= value <= limit:
        raise EvidenceFormatError(
            "PCK certificate SGX extension is malformed",
            failures=[f"SGX extension {oid}: {value!r} is not in 0..{limit}"],
        )
    return value


def parse_pck_extensions(cert: x509.Certificate) -> PckExtensions:
    """The SGX extension values of *cert*; ``EvidenceFormatError`` if absent or malformed."""
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSIONS_OID))
    except x509.ExtensionNotFound:
        raise EvidenceFormatError(
            "PCK certificate has no SGX extensions",
            failures=[f"extension {SGX_EXTENSIONS_OID}: missing from the PCK certificate"],
        ) from None
    if not isinstance(ext.value, x509.UnrecognizedExtension):
        raise EvidenceFormatError(
            "PCK certificate SGX extension is malformed",
            failures=[f"extension {SGX_EXTENSIONS_OID}: unexpected type"],
        )
    top = _entries(ext.value.value, "SGX extensions")
    tcb_value = top.get(_TCB)
    if tcb_value is None:
        raise EvidenceFormatError(
            "PCK certificate SGX extension is incomplete",
            failures=[f"SGX extension {_TCB} (TCB): missing"],
        )
    tcb = _entries(tcb_value.dump(), "SGX TCB extension")
    components = tuple(_svn(tcb, f"{_TCB}.{i}", 255) for i in range(1, 17))
    sgx_type = _get(top, _SGX_TYPE, _SgxType)
    return PckExtensions(
        PPID=_octets(top, _PPID, 16),
        CPUSVN_COMPONENTS=components,
        PCESVN=_svn(tcb, _PCESVN, 0xFFFF),
        CPUSVN=_octets(tcb, _CPUSVN, 16),
        PCEID=_octets(top, _PCEID, 2),
        FMSPC=_octets(top, _FMSPC, 6),
        SGX_TYPE=sgx_type if isinstance(sgx_type, int) else -1,
    )
