"""The evidence-carrying X.509 certificate of an attested-TLS key.

A self-signed certificate (RFC 5280) for the TEE's TLS key, with the
attestation document in the ``id-pe-cmw`` extension (:mod:`.cmw`). Trust
never comes from the signature chain: a verifier checks fresh evidence that
names this certificate's SubjectPublicKeyInfo. The embedded document lets
standard tools (``openssl x509 -text``) and offline auditors see what the
key claims.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cleanroom.atls.cmw import CMW_OID, decode_cmw, encode_cmw
from cleanroom.atls.document import AttestationDocument
from cleanroom.errors import EvidenceFormatError

__all__ = [
    "build_certificate",
    "certificate_document",
    "load_certificate",
    "spki_der",
]

VALIDITY = dt.timedelta(days=365)
MAX_CERTIFICATE = 512 * 1024


def spki_der(certificate: x509.Certificate) -> bytes:
    """The certificate's DER SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7)."""
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def build_certificate(
    key: ec.EllipticCurvePrivateKey,
    document: AttestationDocument,
    *,
    common_name: str = "cleanroom attested TLS",
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    now: dt.datetime | None = None,
) -> x509.Certificate:
    when = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(when - dt.timedelta(minutes=5))
        .not_valid_after(when + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.UnrecognizedExtension(CMW_OID, encode_cmw(document.to_bytes())), critical=False
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(key, hashes.SHA256())


def load_certificate(der: bytes) -> x509.Certificate:
    if len(der) > MAX_CERTIFICATE:
        raise EvidenceFormatError("the peer certificate is too large")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise EvidenceFormatError("the peer certificate is not DER X.509") from exc


def certificate_document(certificate: x509.Certificate) -> AttestationDocument:
    """The attestation document in the certificate's CMW extension (not checked here)."""
    try:
        extension = certificate.extensions.get_extension_for_oid(CMW_OID)
    except x509.ExtensionNotFound as exc:
        raise EvidenceFormatError(
            "the certificate carries no evidence extension (id-pe-cmw)"
        ) from exc
    except ValueError as exc:
        raise EvidenceFormatError("the certificate's extensions do not parse") from exc
    value = extension.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise EvidenceFormatError("the id-pe-cmw extension has an unexpected form")
    return AttestationDocument.from_bytes(decode_cmw(value.value))
