"""Re-signed SEV-SNP material built from a simulated TEE's own keys.

The simulated TEE keeps its ARK, ASK and VCEK private keys in its data
directory, so a test can issue certificates, CRLs and reports that differ from
the genuine simulated ones in exactly one respect and are otherwise valid: the
verifier must then refuse them for that one reason.

:func:`pin_as_milan` goes one step further: it pins the simulated ARK as
AMD's Milan ARK (for the duration of one test) and renames the ASK
``SEV-Milan``, so the simulated chain is judged as *hardware* evidence
(``simulated=False``), the path where the CRL requirement applies.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import struct
from collections.abc import Callable, Iterable, Mapping

import asn1crypto.core
import asn1crypto.crl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from cleanroom.attestation import AttestationPolicy, Evidence
from cleanroom.attestation.fetch import HttpResponse
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.attestation.snp import verify as snp_verify
from cleanroom.attestation.snp.certs import AmdCertificate, parse_certificate

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
AMD = "1.3.6.1.4.1.3704.1."
HW_ID = AMD + "4"
SNP_SPL = AMD + "3.3"
CSP_ID = AMD + "5"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
KEY_INFO = 0x048
CHIP_ID = 0x1A0
SIGNING_KEY_VLEK = 1 << 2

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _private(tee: SimulatedSnpTee, name: str) -> PrivateKey:
    key = serialization.load_pem_private_key((tee.data_dir / name).read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key


def ark_key(tee: SimulatedSnpTee) -> rsa.RSAPrivateKey:
    key = _private(tee, "simulated-ark.key")
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def ask_key(tee: SimulatedSnpTee) -> rsa.RSAPrivateKey:
    key = _private(tee, "simulated-ask.key")
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def vcek_key(tee: SimulatedSnpTee) -> ec.EllipticCurvePrivateKey:
    key = _private(tee, "simulated-vcek.key")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def chain(tee: SimulatedSnpTee) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
    """The simulated VCEK, ASK and ARK."""
    vcek, ask, ark = (
        x509.load_der_x509_certificate(der) for der in tee.evidence(bytes(64)).certificates
    )
    return vcek, ask, ark


def simulated_policy(tee: SimulatedSnpTee, measurement: bytes = bytes(48)) -> AttestationPolicy:
    """A policy admitting *measurement* on *tee*'s simulated root."""
    return AttestationPolicy(
        [measurement.hex()], allow_simulated=True, simulated_root=tee.root_pem_path
    )


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def serial(der_bytes: bytes) -> int:
    return x509.load_der_x509_certificate(der_bytes).serial_number


def with_cn(name: x509.Name, cn: str) -> x509.Name:
    """*name* with its common name replaced by *cn*."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn) if attr.oid == NameOID.COMMON_NAME else attr
            for attr in name
        ]
    )


def reissue(
    cert: x509.Certificate,
    signer: rsa.RSAPrivateKey,
    *,
    subject: x509.Name | None = None,
    issuer: x509.Name | None = None,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None = None,
    drop: Iterable[str] = (),
    extensions: Mapping[str, bytes] | None = None,
) -> x509.Certificate:
    """*cert* issued again by *signer* (RSASSA-PSS SHA-384, as AMD signs),
    with a fresh serial and the given changes: another subject, issuer or
    key; the AMD extensions whose OIDs are in *drop* left out; the values in
    *extensions* (OID -> raw value) set, replacing or adding."""
    dropped = set(drop)
    replaced = dict(extensions or {})
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or cert.subject)
        .issuer_name(issuer or cert.issuer)
        .public_key(public_key or cert.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
    )
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        if oid in dropped:
            continue
        if oid in replaced:
            value = replaced.pop(oid)
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ext.oid, value), critical=False
            )
        else:
            builder = builder.add_extension(ext.value, critical=ext.critical)
    for oid, value in replaced.items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False
        )
    return builder.sign(signer, hashes.SHA384(), rsa_padding=PSS)


def sign_report(report: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """*report* signed with *key* over bytes 0x000-0x29F (R, S little-endian)."""
    r, s = decode_dss_signature(key.sign(report[:0x2A0], ec.ECDSA(hashes.SHA384())))
    out = bytearray(report)
    out[0x2A0:0x2E8] = r.to_bytes(72, "little")
    out[0x2E8:0x330] = s.to_bytes(72, "little")
    return bytes(out)


def put(report: bytes, offset: int, data: bytes) -> bytes:
    out = bytearray(report)
    out[offset : offset + len(data)] = data
    return bytes(out)


def set_u32(report: bytes, offset: int, value: int) -> bytes:
    out = bytearray(report)
    struct.pack_into("<I", out, offset, value)
    return bytes(out)


def crl(
    issuer: x509.Name,
    signer: rsa.RSAPrivateKey,
    *,
    revoked: Iterable[int] = (),
    this_update: dt.datetime = NOW - dt.timedelta(days=1),
    next_update: dt.datetime | None = NOW + dt.timedelta(days=1),
) -> bytes:
    """A DER CRL of *issuer* signed by *signer* with RSASSA-PSS SHA-384.

    ``next_update=None`` leaves nextUpdate out (which ``cryptography`` will
    not build): the list is built with one, then re-encoded without it and
    signed again.
    """
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(this_update)
        .next_update(next_update or this_update + dt.timedelta(days=1))
    )
    for number in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(number)
            .revocation_date(this_update)
            .build()
        )
    out = builder.sign(signer, hashes.SHA384(), rsa_padding=PSS).public_bytes(
        serialization.Encoding.DER
    )
    if next_update is not None:
        return out
    parsed = asn1crypto.crl.CertificateList.load(out)
    tbs = parsed["tbs_cert_list"]
    kept = ("version", "signature", "issuer", "this_update", "revoked_certificates")
    stripped = asn1crypto.crl.TbsCertList(
        {name: tbs[name] for name in kept if not isinstance(tbs[name], asn1crypto.core.Void)}
    )
    signature = signer.sign(stripped.dump(), PSS, hashes.SHA384())
    resigned = asn1crypto.crl.CertificateList(
        {
            "tbs_cert_list": stripped,
            "signature_algorithm": parsed["signature_algorithm"],
            "signature": signature,
        }
    )
    data: bytes = resigned.dump()
    return data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def with_crls(evidence: Evidence, *crls: bytes) -> Evidence:
    return dataclasses.replace(evidence, collateral={"amd_crls": [b64(c) for c in crls]})


def pin_as_milan(monkeypatch: pytest.MonkeyPatch, tee: SimulatedSnpTee) -> x509.Name:
    """Pin *tee*'s ARK as AMD's Milan ARK for this test; return its name.

    Evidence from :func:`hardware_evidence` then chains to a pinned root and
    is judged as hardware evidence.
    """
    ark = parse_certificate(der(chain(tee)[2]))
    real: Callable[[str], AmdCertificate] = snp_verify.pinned_ark

    def pinned(product: str) -> AmdCertificate:
        return ark if product == "Milan" else real(product)

    monkeypatch.setattr(snp_verify, "pinned_ark", pinned)
    return chain(tee)[2].subject


def hardware_evidence(
    tee: SimulatedSnpTee, report_data: bytes, *, measurement: bytes = bytes(48)
) -> Evidence:
    """*tee*'s evidence with its ASK renamed ``SEV-Milan`` (and its VCEK
    issued by that name), not marked simulated: with :func:`pin_as_milan` it
    passes as a genuine Milan chain."""
    vcek, ask, _ = chain(tee)
    milan_ask = reissue(ask, ark_key(tee), subject=with_cn(ask.subject, "SEV-Milan"))
    milan_vcek = reissue(vcek, ask_key(tee), issuer=milan_ask.subject)
    evidence = tee.evidence(report_data, measurement=measurement)
    return dataclasses.replace(
        evidence, certificates=(der(milan_vcek), der(milan_ask)), simulated=False
    )


class FakeKds:
    """AMD's KDS as a dictionary of URL -> body (404 for anything else); records requests."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = pages
        self.requests: list[str] = []

    def __call__(self, url: str) -> HttpResponse:
        self.requests.append(url)
        body = self.pages.get(url)
        return HttpResponse(404, b"", {}) if body is None else HttpResponse(200, body, {})
