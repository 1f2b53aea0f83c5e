"""AMD SEV certificates (ARK, ASK/ASVK, VCEK/VLEK) and their AMD extensions.

AMD issues VCEKs and VLEKs with serial number 0, which RFC 5280 forbids and
which some X.509 libraries refuse (``cryptography`` warns that a future
release will). These certificates are therefore parsed with ``asn1crypto``,
which reads them as they are; only public keys go to ``cryptography``.

Extensions are those of AMD's "Versioned Chip Endorsement Key (VCEK)
Certificate and KDS Interface Specification" (publication 57230), section
"VCEK Certificate Extensions" (OID arc 1.3.6.1.4.1.3704.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import asn1crypto.core
import asn1crypto.x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from cleanroom.errors import EvidenceFormatError, EvidenceSignatureError

__all__ = [
    "AmdCertificate",
    "AmdExtensions",
    "check_signed_by",
    "parse_certificate",
]

_AMD_ARC = "1.3.6.1.4.1.3704.1."
_STRUCT_VERSION = _AMD_ARC + "1"
_PRODUCT_NAME = _AMD_ARC + "2"
_HW_ID = _AMD_ARC + "4"
_CSP_ID = _AMD_ARC + "5"
# TCB security patch levels: 3.1 blSPL, 3.2 teeSPL, 3.3 snpSPL, 3.4-3.7
# reserved, 3.8 ucodeSPL, 3.9 fmcSPL (Turin and later).
SPL_OIDS: Mapping[str, str] = {
    _AMD_ARC + "3.1": "BOOT_LOADER",
    _AMD_ARC + "3.2": "TEE",
    _AMD_ARC + "3.3": "SNP",
    _AMD_ARC + "3.8": "MICROCODE",
    _AMD_ARC + "3.9": "FMC",
}
# All CA signatures in the AMD chain are RSASSA-PSS with SHA-384, MGF1-SHA-384
# and a 48-byte salt (VCEK spec, section "Certificate Chain").
_PSS_SALT_LENGTH = 48


@dataclass(frozen=True)
class AmdExtensions:
    """The AMD extensions of a VCEK or VLEK; ``spl`` maps TCB component names
    (``BOOT_LOADER``, ``TEE``, ``SNP``, ``MICROCODE``, ``FMC``) to values."""

    struct_version: int | None
    product_name: str | None
    spl: Mapping[str, int]
    hw_id: bytes | None
    csp_id: str | None

    @property
    def product(self) -> str | None:
        """The product line: ``productName`` up to its stepping ("Milan-B0" -> "Milan")."""
        if not self.product_name:
            return None
        return self.product_name.split("-", 1)[0]


@dataclass(frozen=True)
class AmdCertificate:
    der: bytes = field(repr=False)
    subject_cn: str
    issuer_cn: str
    subject: bytes = field(repr=False)
    issuer: bytes = field(repr=False)
    serial_number: int
    not_before: datetime
    not_after: datetime
    tbs: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    signature_algorithm: str
    pss_hash: str | None
    pss_mgf_hash: str | None
    pss_salt_length: int | None
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey = field(repr=False)
    extensions: AmdExtensions

    @property
    def is_self_issued(self) -> bool:
        return self.subject == self.issuer

    def valid_at(self, at: datetime) -> bool:
        return self.not_before <= at <= self.not_after


def _cn(name: asn1crypto.x509.Name) -> str:
    value = name.native.get("common_name", "")
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value)


def _integer(value: bytes, what: str) -> int:
    try:
        parsed = asn1crypto.core.Integer.load(value)
        return int(parsed.native)
    except (ValueError, TypeError) as exc:
        raise EvidenceFormatError(f"AMD extension {what} is not a DER INTEGER") from exc


def _string(value: bytes, what: str) -> str:
    try:
        parsed = asn1crypto.core.Asn1Value.load(value)
        native = parsed.native
    except (ValueError, TypeError) as exc:
        raise EvidenceFormatError(f"AMD extension {what} is not a DER string") from exc
    if not isinstance(native, str):
        raise EvidenceFormatError(f"AMD extension {what} is not a DER string")
    return native


def _hw_id(value: bytes) -> bytes:
    """hwID is the raw chip id (64 bytes; 8 on Turin), which KDS stores as the
    extension value itself; some certificates wrap it in a DER OCTET STRING."""
    if len(value) in (66, 10) and value[0] == 0x04 and value[1] == len(value) - 2:
        return value[2:]
    if len(value) not in (64, 8):
        raise EvidenceFormatError(f"AMD hwID extension has {len(value)} bytes, expected 64 or 8")
    return value


def _extensions(tbs: asn1crypto.x509.TbsCertificate) -> AmdExtensions:
    struct_version: int | None = None
    product_name: str | None = None
    spl: dict[str, int] = {}
    hw_id: bytes | None = None
    csp_id: str | None = None
    for ext in tbs["extensions"]:
        oid = ext["extn_id"].dotted
        if not oid.startswith(_AMD_ARC):
            continue
        value = bytes(ext["extn_value"].contents)
        if oid == _STRUCT_VERSION:
            struct_version = _integer(value, "structVersion")
        elif oid == _PRODUCT_NAME:
            product_name = _string(value, "productName")
        elif oid in SPL_OIDS:
            spl[SPL_OIDS[oid]] = _integer(value, SPL_OIDS[oid])
        elif oid == _HW_ID:
            hw_id = _hw_id(value)
        elif oid == _CSP_ID:
            csp_id = _string(value, "cspID")
    return AmdExtensions(struct_version, product_name, spl, hw_id, csp_id)


@lru_cache(maxsize=256)
def parse_certificate(der: bytes) -> AmdCertificate:
    """Parse one DER certificate of the AMD chain; cached by its bytes.

    Raises :class:`EvidenceFormatError` when it does not parse.
    """
    try:
        cert = asn1crypto.x509.Certificate.load(bytes(der), strict=True)
        tbs = cert["tbs_certificate"]
        algorithm = cert["signature_algorithm"]
        algorithm_name = str(algorithm["algorithm"].native)
        pss_hash = pss_mgf_hash = None
        pss_salt: int | None = None
        if algorithm_name == "rsassa_pss":
            params = algorithm["parameters"].native
            pss_hash = str(params["hash_algorithm"]["algorithm"])
            pss_mgf_hash = str(params["mask_gen_algorithm"]["parameters"]["algorithm"])
            pss_salt = int(params["salt_length"])
        validity = tbs["validity"]
        public_key = serialization.load_der_public_key(tbs["subject_public_key_info"].dump())
        extensions = _extensions(tbs)
        parsed = AmdCertificate(
            der=bytes(der),
            subject_cn=_cn(tbs["subject"]),
            issuer_cn=_cn(tbs["issuer"]),
            subject=tbs["subject"].dump(),
            issuer=tbs["issuer"].dump(),
            serial_number=int(tbs["serial_number"].native),
            not_before=validity["not_before"].native,
            not_after=validity["not_after"].native,
            tbs=tbs.dump(),
            signature=bytes(cert["signature_value"].native),
            signature_algorithm=algorithm_name,
            pss_hash=pss_hash,
            pss_mgf_hash=pss_mgf_hash,
            pss_salt_length=pss_salt,
            public_key=public_key,  # type: ignore[arg-type]
            extensions=extensions,
        )
    except EvidenceFormatError:
        raise
    except Exception as exc:
        # asn1crypto parses lazily and has no exception base class: a wrong tag deep
        # in the DER (say in the PSS parameters) surfaces as AttributeError and the like.
        raise EvidenceFormatError(
            "a certificate does not parse", failures=["certificate: not a valid X.509 certificate"]
        ) from exc
    if not isinstance(parsed.public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise EvidenceFormatError(
            "a certificate has an unsupported key type",
            failures=[f"{parsed.subject_cn}: key type is neither RSA nor EC"],
        )
    return parsed


def check_signed_by(cert: AmdCertificate, issuer: AmdCertificate) -> None:
    """Raise :class:`EvidenceSignatureError` unless *issuer* signed *cert* with
    RSASSA-PSS/SHA-384 (MGF1-SHA-384, salt 48), the only AMD chain algorithm."""
    what = f"{cert.subject_cn} signed by {issuer.subject_cn}"
    if cert.issuer != issuer.subject:
        raise EvidenceSignatureError(
            f"{cert.subject_cn} was not issued by {issuer.subject_cn}",
            failures=[f"{what}: issuer is {cert.issuer_cn!r}"],
        )
    if (cert.signature_algorithm, cert.pss_hash, cert.pss_mgf_hash, cert.pss_salt_length) != (
        "rsassa_pss",
        "sha384",
        "sha384",
        _PSS_SALT_LENGTH,
    ):
        raise EvidenceSignatureError(
            f"{cert.subject_cn} is not signed with RSASSA-PSS SHA-384",
            failures=[f"{what}: signature algorithm {cert.signature_algorithm} is not AMD's"],
        )
    key = issuer.public_key
    if not isinstance(key, rsa.RSAPublicKey):
        raise EvidenceSignatureError(
            f"{issuer.subject_cn} has no RSA key", failures=[f"{what}: issuer key is not RSA"]
        )
    try:
        key.verify(
            cert.signature,
            cert.tbs,
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=_PSS_SALT_LENGTH),
            hashes.SHA384(),
        )
    except InvalidSignature as exc:
        raise EvidenceSignatureError(
            f"the signature of {cert.subject_cn} by {issuer.subject_cn} does not verify",
            failures=[f"{what}: signature does not verify"],
        ) from exc
