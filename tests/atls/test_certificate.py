"""The evidence-carrying certificate: the id-pe-cmw extension, and interop with openssl."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import asn1crypto.core
import pytest
from atls_fakes import make_identity
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from cleanroom.atls import CMW_OID, MEDIA_TYPE, certificate_document, decode_cmw, encode_cmw
from cleanroom.atls.certificate import spki_der
from cleanroom.crypto.binding import TLS_SPKI_KEY, tls_key_digest
from cleanroom.errors import CryptoError, EvidenceFormatError
from cleanroom.server.runner import ServerThread

OPENSSL = shutil.which("openssl")


def test_cmw_round_trip_is_a_der_utf8string_record() -> None:
    der = encode_cmw(b"\x00\x01evidence\xff")
    parsed = asn1crypto.core.UTF8String.load(der, strict=True)
    media_type, value, indicator = json.loads(parsed.native)
    assert media_type == MEDIA_TYPE
    assert indicator == 4
    assert "=" not in value
    assert decode_cmw(der) == b"\x00\x01evidence\xff"


def _record(*items: object) -> bytes:
    return bytes(asn1crypto.core.UTF8String(json.dumps(list(items))).dump())


CMW_CASES: list[tuple[str, bytes]] = [
    ("octet string (cbor alternative)", bytes(asn1crypto.core.OctetString(b"[]").dump())),
    ("not json", bytes(asn1crypto.core.UTF8String("not json").dump())),
    ("an object, not a record", bytes(asn1crypto.core.UTF8String("{}").dump())),
    ("another media type", _record("application/eat+jwt", "AA", 4)),
    ("not marked as evidence", _record(MEDIA_TYPE, "AA", 8)),
    ("padded base64url", _record(MEDIA_TYPE, "AA==", 4)),
    ("value not a string", _record(MEDIA_TYPE, 7, 4)),
    ("trailing bytes after the DER", encode_cmw(b"x") + b"\x00"),
    ("oversized", b"\x0c\x84" + (300_000).to_bytes(4, "big") + b"a" * 300_000),
]


@pytest.mark.parametrize(("name", "der"), CMW_CASES, ids=[c[0] for c in CMW_CASES])
def test_malformed_cmw_is_refused(name: str, der: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        decode_cmw(der)


def test_certificate_carries_a_document_naming_its_own_key(tmp_path: Path) -> None:
    identity = make_identity(tmp_path)
    certificate = identity.certificate
    extension = certificate.extensions.get_extension_for_oid(CMW_OID)
    assert not extension.critical
    document = certificate_document(certificate)
    assert document.role == "certificate"
    assert document.config["keys"][TLS_SPKI_KEY] == tls_key_digest(spki_der(certificate)).hex()
    assert spki_der(certificate) == identity.spki_der


def test_certificate_without_the_extension_is_refused(tmp_path: Path) -> None:
    identity = make_identity(tmp_path)
    builder = (
        x509.CertificateBuilder()
        .subject_name(identity.certificate.subject)
        .issuer_name(identity.certificate.issuer)
        .public_key(identity.certificate.public_key())
        .serial_number(1)
        .not_valid_before(identity.certificate.not_valid_before_utc)
        .not_valid_after(identity.certificate.not_valid_after_utc)
    )
    bare = builder.sign(identity._key, hashes.SHA256())
    with pytest.raises(EvidenceFormatError, match="id-pe-cmw"):
        certificate_document(bare)


def test_tls_key_digest_refuses_pem_text(tmp_path: Path) -> None:
    pem = make_identity(tmp_path).certificate.public_bytes(Encoding.PEM)
    with pytest.raises(CryptoError):
        tls_key_digest(pem)


# openssl interop ------------------------------------------------------------------

needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")


def _openssl(*args: str, stdin: bytes = b"") -> str:
    assert OPENSSL is not None
    done = subprocess.run(
        [OPENSSL, *args], input=stdin, capture_output=True, timeout=30, check=False
    )
    return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def served_pem(server: ServerThread) -> str:
    """The certificate as `openssl s_client` receives it from the running clean room."""
    host = server.url.removeprefix("https://")
    out = _openssl("s_client", "-connect", host, "-showcerts")
    assert "BEGIN CERTIFICATE" in out, out[-2000:]
    start = out.index("-----BEGIN CERTIFICATE-----")
    end = out.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return out[start:end] + "\n"


@needs_openssl
def test_openssl_s_client_connects_and_x509_shows_the_extension(
    served_pem: str, server: ServerThread
) -> None:
    text = _openssl("x509", "-noout", "-text", stdin=served_pem.encode())
    assert "1.3.6.1.5.5.7.1.35" in text
    assert MEDIA_TYPE in text
    assert server.atls is not None
    served = x509.load_pem_x509_certificate(served_pem.encode())
    assert served.public_bytes(Encoding.DER) == server.atls.identity.certificate_der


@needs_openssl
def test_openssl_asn1parse_reads_the_extension_value(served_pem: str, tmp_path: Path) -> None:
    parsed = _openssl("asn1parse", "-inform", "PEM", stdin=served_pem.encode())
    lines = parsed.splitlines()
    (index,) = [i for i, line in enumerate(lines) if ":1.3.6.1.5.5.7.1.35" in line]
    # The extnValue OCTET STRING follows the OID; parse its content as DER on its own.
    octets = lines[index + 1]
    assert "OCTET STRING" in octets
    offset = octets.split(":")[0].strip()
    (tmp_path / "cert.pem").write_text(served_pem)
    inner = _openssl(
        "asn1parse", "-inform", "PEM", "-in", str(tmp_path / "cert.pem"), "-strparse", offset
    )
    assert "UTF8STRING" in inner
    assert MEDIA_TYPE in inner
    record = inner[inner.index("[") :].strip()
    media_type, value, indicator = json.loads(record)
    assert (media_type, indicator) == (MEDIA_TYPE, 4)
    document = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    assert document["config"]["atls"] == {"role": "certificate"}


@needs_openssl
def test_curl_style_insecure_client_reaches_the_public_health_route(server: ServerThread) -> None:
    host = server.url.removeprefix("https://")
    request = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = _openssl("s_client", "-connect", host, "-quiet", stdin=request)
    assert '"status":"ok"' in out


def test_tls_key_digest_is_domain_separated(tmp_path: Path) -> None:
    import hashlib

    spki = make_identity(tmp_path).spki_der
    assert tls_key_digest(spki) == hashlib.sha256(b"cleanroom/v1 tls-spki\x00" + spki).digest()
    assert tls_key_digest(spki) != hashlib.sha256(spki).digest()
