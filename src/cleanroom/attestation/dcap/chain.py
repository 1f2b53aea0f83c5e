"""X.509 chains, CRLs and raw ECDSA P-256 signatures, as Intel DCAP uses them.

Every Intel DCAP certificate and CRL is signed with ECDSA P-256 / SHA-256
("SGX PCK Certificate and CRL Profile Specification", section 1.1). Quote and
collateral signatures are raw ``r || s`` (32 bytes each, big-endian), not DER;
public keys in quotes are raw ``x || y``.

Trust is anchored in a root certificate that is byte-equal to the pinned
Intel SGX Root CA, or to one of the caller's explicitly added roots (reported
as ``simulated``). A root that merely arrives with the evidence is never
trusted for itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from cleanroom.errors import EvidenceFormatError, EvidenceSignatureError

__all__ = [
    "TrustAnchor",
    "check_crl",
    "check_not_revoked",
    "common_name",
    "p256_public_key",
    "select_anchor",
    "verify_chain",
    "verify_raw_signature",
]


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """The root a chain ended at: ``simulated`` when it is not the pinned one."""

    certificate: x509.Certificate
    name: str
    simulated: bool


def common_name(name: x509.Name) -> str:
    """The first CN of *name*, or ``""``."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def select_anchor(
    root: x509.Certificate,
    pinned: x509.Certificate,
    additional: Sequence[x509.Certificate],
    what: str,
) -> TrustAnchor:
    """The trust anchor *root* is byte-equal to; ``EvidenceSignatureError`` if none."""
    der = _der(root)
    if der == _der(pinned):
        return TrustAnchor(pinned, common_name(pinned.subject), simulated=False)
    for extra in additional:
        if der == _der(extra):
            return TrustAnchor(extra, common_name(extra.subject), simulated=True)
    raise EvidenceSignatureError(
        f"{what} does not end at a trusted root",
        failures=[
            f"{what} root: got {root.subject.rfc4514_string()!r} "
            f"(SHA-256 {root.fingerprint(hashes.SHA256()).hex()}), expected the pinned "
            f"{common_name(pinned.subject)!r} (SHA-256 {pinned.fingerprint(hashes.SHA256()).hex()})"
        ],
    )


def _check_validity(cert: x509.Certificate, at: datetime, what: str) -> None:
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise EvidenceSignatureError(
            f"{what} is not valid at the verification time",
            failures=[
                f"{what} validity: time {at.isoformat()} is outside "
                f"{cert.not_valid_before_utc.isoformat()}..{cert.not_valid_after_utc.isoformat()}"
            ],
        )


def _check_is_ca(cert: x509.Certificate, what: str) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise EvidenceSignatureError(
            f"{what} is not a CA certificate",
            failures=[f"{what}: basicConstraints CA is not set, so it may not issue certificates"],
        )


def _check_issued_by(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        raise EvidenceSignatureError(
            f"{what} is not signed by its issuer",
            failures=[
                f"{what} signature by {common_name(issuer.subject)!r}: "
                f"{exc or 'ECDSA verification failed'}"
            ],
        ) from None


def verify_chain(
    chain: Sequence[x509.Certificate],
    anchor: TrustAnchor,
    at: datetime,
    names: Sequence[str],
) -> None:
    """Check *chain* (leaf first, root last, the root being *anchor*).

    Each certificate must be signed by the next with a CA issuer, the root
    must be self-signed, and every certificate must be valid at *at*.
    ``names`` label the certificates in failure messages.
    """
    if len(chain) != len(names):
        raise EvidenceSignatureError(
            "certificate chain has the wrong length",
            failures=[f"{names[0]} chain: got {len(chain)} certificates, expected {len(names)}"],
        )
    if _der(chain[-1]) != _der(anchor.certificate):
        raise EvidenceSignatureError(
            "certificate chain does not end at the trust anchor",
            failures=[f"{names[-1]}: not byte-equal to the trust anchor {anchor.name!r}"],
        )
    _check_issued_by(chain[-1], chain[-1], names[-1])
    for index, cert in enumerate(chain):
        _check_validity(cert, at, names[index])
        if index + 1 < len(chain):
            _check_is_ca(chain[index + 1], names[index + 1])
            _check_issued_by(cert, chain[index + 1], names[index])


def check_crl(
    crl: x509.CertificateRevocationList,
    issuer: x509.Certificate,
    at: datetime,
    what: str,
) -> None:
    """*crl* must be issued and signed by *issuer* and current at *at*."""
    failures: list[str] = []
    if crl.issuer != issuer.subject:
        failures.append(
            f"{what} issuer: got {crl.issuer.rfc4514_string()!r}, "
            f"expected {issuer.subject.rfc4514_string()!r}"
        )
    else:
        public_key = issuer.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(
            public_key
        ):
            failures.append(
                f"{what} signature: does not verify with {common_name(issuer.subject)!r}"
            )
    next_update = crl.next_update_utc
    if next_update is None:
        failures.append(f"{what} nextUpdate: missing")
    elif not crl.last_update_utc <= at <= next_update:
        failures.append(
            f"{what} validity: time {at.isoformat()} is outside "
            f"{crl.last_update_utc.isoformat()}..{next_update.isoformat()}"
        )
    if failures:
        raise EvidenceSignatureError(f"{what} is not acceptable", failures=failures)


def check_not_revoked(
    crl: x509.CertificateRevocationList, cert: x509.Certificate, what: str
) -> None:
    """*cert* must not be listed in *crl* (already checked with :func:`check_crl`)."""
    if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
        raise EvidenceSignatureError(
            f"{what} is revoked",
            failures=[f"{what} serial {cert.serial_number:#x}: listed in the CRL"],
        )


def p256_public_key(raw: bytes, what: str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from raw ``x || y`` (64 bytes)."""
    if len(raw) != 64:
        raise EvidenceFormatError(
            f"{what} has the wrong size", failures=[f"{what}: got {len(raw)} bytes, expected 64"]
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)
    except ValueError:
        raise EvidenceFormatError(
            f"{what} is not a P-256 point", failures=[f"{what}: not a point on P-256"]
        ) from None


def verify_raw_signature(
    public_key: ec.EllipticCurvePublicKey | object,
    signature: bytes,
    data: bytes,
    what: str,
) -> None:
    """Verify a raw ``r || s`` ECDSA P-256 / SHA-256 *signature* over *data*."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise EvidenceSignatureError(
            f"{what} key is not ECDSA P-256", failures=[f"{what}: signer key is not P-256"]
        )
    if len(signature) != 64:
        raise EvidenceFormatError(
            f"{what} has the wrong size",
            failures=[f"{what}: got {len(signature)} bytes, expected 64"],
        )
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise EvidenceSignatureError(
            f"{what} does not verify", failures=[f"{what}: ECDSA P-256 verification failed"]
        ) from None
