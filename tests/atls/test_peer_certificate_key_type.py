"""A calling clean room whose certificate holds no EC key is refused with
EvidenceFormatError before its signature is checked, never with a builtin error.

The proof of possession is an ECDSA signature by the certificate's key; a
certificate with an RSA or EdDSA key (whatever it signed) is a malformed proof,
not a server error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from atls_fakes import STAGE_POLICY_DIGEST, make_identity
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cleanroom.atls import PeerRoute, Upstream
from cleanroom.atls.peer import PeerProof, verify_peer
from cleanroom.attestation import AttestationPolicy
from cleanroom.attestation.measurement import package_measurement
from cleanroom.errors import EvidenceFormatError

CHALLENGE = b"\x07" * 32


def _certificate(key: Any, algorithm: hashes.SHA256 | None) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "caller")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, algorithm)
    )
    return certificate.public_bytes(Encoding.DER)


def _rsa() -> tuple[bytes, Callable[[bytes], bytes]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _certificate(key, hashes.SHA256()), lambda m: key.sign(
        m, padding.PKCS1v15(), hashes.SHA256()
    )


def _ed25519() -> tuple[bytes, Callable[[bytes], bytes]]:
    key = ed25519.Ed25519PrivateKey.generate()
    return _certificate(key, None), key.sign


def _ed448() -> tuple[bytes, Callable[[bytes], bytes]]:
    key = ed448.Ed448PrivateKey.generate()
    return _certificate(key, None), key.sign


KEYS = [
    pytest.param(_rsa, id="RSA"),
    pytest.param(_ed25519, id="Ed25519"),
    pytest.param(_ed448, id="Ed448"),
]


@pytest.mark.parametrize("make_key", KEYS)
def test_a_proof_whose_certificate_key_is_not_ec_is_refused(
    make_key: Callable[[], tuple[bytes, Callable[[bytes], bytes]]],
    tee_dir: Path,
    policy: AttestationPolicy,
) -> None:
    callee_spki = make_identity(tee_dir).spki_der
    caller = make_identity(tee_dir, policy_digest=STAGE_POLICY_DIGEST)
    document = caller.document(CHALLENGE, role="client", peer_spki_der=callee_spki)
    certificate_der, sign = make_key()
    proof = PeerProof(certificate_der, document, sign(b"anything"))
    route = PeerRoute(
        "/v1/instances/*/predict",
        policy,
        (Upstream(package_measurement().hex(), STAGE_POLICY_DIGEST),),
    )
    with pytest.raises(EvidenceFormatError, match="not an EC key"):
        verify_peer(proof, challenge=CHALLENGE, own_spki_der=callee_spki, routes=(route,))


def test_the_same_proof_with_the_callers_ec_certificate_is_admitted(
    tee_dir: Path, policy: AttestationPolicy
) -> None:
    callee_spki = make_identity(tee_dir).spki_der
    caller = make_identity(tee_dir, policy_digest=STAGE_POLICY_DIGEST)
    assert isinstance(caller.certificate.public_key(), ec.EllipticCurvePublicKey)
    document = caller.document(CHALLENGE, role="client", peer_spki_der=callee_spki)
    proof = PeerProof(
        caller.certificate_der, document, caller.sign_proof(CHALLENGE, callee_spki, document)
    )
    route = PeerRoute(
        "/v1/instances/*/predict",
        policy,
        (Upstream(package_measurement().hex(), STAGE_POLICY_DIGEST),),
    )
    admitted = verify_peer(proof, challenge=CHALLENGE, own_spki_der=callee_spki, routes=(route,))
    assert admitted.routes == frozenset({"/v1/instances/*/predict"})
