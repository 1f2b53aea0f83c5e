"""Mutual attestation: a calling clean room proves itself; the callee's routes admit it or not."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from atls_fakes import (
    PASSWORD,
    STAGE_POLICY_DIGEST,
    FakeServer,
    closed_by_peer,
    make_identity,
    post_raw,
    raw_tls,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cleanroom import Client
from cleanroom.atls import AttestationDocument, AttestedTlsIdentity
from cleanroom.atls.identity import proof_message
from cleanroom.atls.peer import PeerProof
from cleanroom.atls.settings import PeerRoute, Upstream
from cleanroom.attestation import AttestationPolicy
from cleanroom.attestation.measurement import package_measurement
from cleanroom.errors import (
    AccessDenied,
    AttestationError,
    ConfigurationError,
    EvidenceSignatureError,
    NotFound,
    PolicyViolation,
)
from cleanroom.server.runner import ServerThread

PREDICT = "/v1/instances/0123456789abcdef01234567/predict"


def _sign_in(client: Client, email: str) -> None:
    client.sign_up(email, PASSWORD)
    client.sign_in(email, PASSWORD)


def test_an_allowed_stage_passes_the_route_gate(
    server: ServerThread, policy: AttestationPolicy, tee_dir: Path
) -> None:
    stage = make_identity(tee_dir, policy_digest=STAGE_POLICY_DIGEST)
    with Client(server.url, attestation=policy, identity=stage) as client:
        _sign_in(client, "stage-ok@a.example")
        # Past the gate, the service itself answers: there is no such instance.
        with pytest.raises(NotFound):
            client.request("POST", PREDICT, content=b"sealed")
        (seen,) = client.server_attestations
    assert seen.mutual


def test_an_unattested_caller_is_refused_and_its_connection_closed(
    server: ServerThread, policy: AttestationPolicy
) -> None:
    with Client(server.url, attestation=policy) as client:
        _sign_in(client, "data-owner@bank.example")
        with pytest.raises(AccessDenied, match="attested upstream"):
            client.request("POST", PREDICT, content=b"sealed")
        client.health()
        # The refusal closed the connection: the next request needed a new, attested one.
        assert len(client.server_attestations) == 2


class _Mutated(AttestedTlsIdentity):
    """A caller whose proof is broken in one way."""

    def __init__(self, base: AttestedTlsIdentity, mutate: str) -> None:
        self.__dict__.update(base.__dict__)
        self.mutate = mutate
        self.other_key = ec.generate_private_key(ec.SECP256R1())

    def document(
        self, nonce: bytes, *, role: str, peer_spki_der: bytes | None = None
    ) -> AttestationDocument:
        if role == "client" and self.mutate == "old challenge":
            nonce = bytes(32)
        if role == "client" and self.mutate == "another callee":
            peer_spki_der = make_other_spki()
        if role == "client" and self.mutate == "server role":
            return super().document(nonce, role="server")
        return super().document(nonce, role=role, peer_spki_der=peer_spki_der)

    def sign_proof(
        self, challenge: bytes, peer_spki_der: bytes, document: AttestationDocument
    ) -> bytes:
        if self.mutate == "another key":
            message = proof_message(challenge, peer_spki_der, document)
            return self.other_key.sign(message, ec.ECDSA(hashes.SHA256()))
        return super().sign_proof(challenge, peer_spki_der, document)


def make_other_spki() -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


Maker = Callable[[Path, Path], AttestedTlsIdentity]

CALLER_CASES: list[tuple[str, Maker, type[AttestationError], str]] = [
    (
        "policy digest not on the allow-list",
        lambda d, o: make_identity(d, policy_digest="sha256:" + "cd" * 32),
        PolicyViolation,
        "allow-list",
    ),
    (
        "no policy digest declared",
        lambda d, o: make_identity(d),
        PolicyViolation,
        "allow-list",
    ),
    (
        "wrong measurement",
        lambda d, o: make_identity(d, measurement=b"\x42" * 48, policy_digest=STAGE_POLICY_DIGEST),
        PolicyViolation,
        "MEASUREMENT",
    ),
    (
        "debug-enabled caller",
        lambda d, o: make_identity(d, debug=True, policy_digest=STAGE_POLICY_DIGEST),
        PolicyViolation,
        "DEBUG",
    ),
    (
        "caller from another root",
        lambda d, o: make_identity(o, policy_digest=STAGE_POLICY_DIGEST),
        PolicyViolation,
        "signature does not verify",
    ),
    (
        "proof signed by another key",
        lambda d, o: _Mutated(make_identity(d, policy_digest=STAGE_POLICY_DIGEST), "another key"),
        EvidenceSignatureError,
        "certificate's key",
    ),
    (
        "evidence answering an old challenge",
        lambda d, o: _Mutated(make_identity(d, policy_digest=STAGE_POLICY_DIGEST), "old challenge"),
        PolicyViolation,
        "nonce",
    ),
    (
        "evidence made for another callee",
        lambda d, o: _Mutated(
            make_identity(d, policy_digest=STAGE_POLICY_DIGEST), "another callee"
        ),
        PolicyViolation,
        "peer_tls_spki_sha256",
    ),
    (
        "a server-role document as a caller's proof",
        lambda d, o: _Mutated(make_identity(d, policy_digest=STAGE_POLICY_DIGEST), "server role"),
        PolicyViolation,
        "atls.role",
    ),
]


@pytest.mark.parametrize(
    ("name", "make_caller", "error", "failure"), CALLER_CASES, ids=[c[0] for c in CALLER_CASES]
)
def test_the_callee_refuses_a_caller_before_any_data(
    name: str,
    make_caller: Maker,
    error: type[AttestationError],
    failure: str,
    server: ServerThread,
    policy: AttestationPolicy,
    tee_dir: Path,
    other_tee_dir: Path,
) -> None:
    caller = make_caller(tee_dir, other_tee_dir)
    with Client(server.url, attestation=policy, identity=caller) as client:
        with pytest.raises(error) as refused:
            client.sign_in("nobody@a.example", PASSWORD)
        assert client.server_attestations == []
    assert failure in " ".join([refused.value.message, *refused.value.failures]), name


def test_the_caller_refuses_a_callee_and_never_presents_its_proof(
    tee_dir: Path, policy: AttestationPolicy
) -> None:
    impostor = make_identity(tee_dir, measurement=b"\x42" * 48)

    async def handshake(request: Request) -> Response:
        nonce = bytes.fromhex((await request.json())["nonce"])
        document = impostor.document(nonce, role="server")
        return JSONResponse({"document": document.to_json(), "challenge": os.urandom(32).hex()})

    stage = make_identity(tee_dir, policy_digest=STAGE_POLICY_DIGEST)
    with (
        FakeServer(impostor, handshake) as fake,
        Client(fake.url, attestation=policy, identity=stage) as client,
        pytest.raises(PolicyViolation, match="breaks the attestation policy"),
    ):
        client.sign_in("stage@a.example", PASSWORD)
    assert fake.seen == [("/v1/atls/handshake", False)]


# the protocol on the wire -----------------------------------------------------------


def _proof(caller: AttestedTlsIdentity, challenge: bytes, callee_spki: bytes) -> dict[str, Any]:
    document = caller.document(challenge, role="client", peer_spki_der=callee_spki)
    signature = caller.sign_proof(challenge, callee_spki, document)
    return PeerProof(caller.certificate_der, document, signature).to_json()


def test_a_proof_without_a_challenge_on_this_connection_is_refused_and_closed(
    server: ServerThread, tee_dir: Path
) -> None:
    assert server.atls is not None
    caller = make_identity(tee_dir, policy_digest=STAGE_POLICY_DIGEST)
    with raw_tls(server.url) as sock:
        status, headers, answer = post_raw(
            sock, "/v1/atls/peer", _proof(caller, b"\x07" * 32, server.atls.identity.spki_der)
        )
        assert status == 403
        assert headers.get("connection") == "close"
        assert "challenge" in " ".join(answer["failures"])
        assert closed_by_peer(sock)


def test_a_challenge_from_another_connection_does_not_carry_over(
    server: ServerThread, tee_dir: Path
) -> None:
    assert server.atls is not None
    callee_spki = server.atls.identity.spki_der
    caller = make_identity(tee_dir, policy_digest=STAGE_POLICY_DIGEST)
    with raw_tls(server.url) as first:
        _, _, hello = post_raw(first, "/v1/atls/handshake", {"nonce": "11" * 32})
        stolen = bytes.fromhex(hello["challenge"])
        with raw_tls(server.url) as second:
            post_raw(second, "/v1/atls/handshake", {"nonce": "22" * 32})
            status, headers, answer = post_raw(
                second, "/v1/atls/peer", _proof(caller, stolen, callee_spki)
            )
            assert status == 403
            assert headers.get("connection") == "close"
            # The proof signs the challenge it answers: another connection's does not verify.
            assert "signature" in " ".join(answer["failures"])
            assert closed_by_peer(second)
        # The rightful connection can still use its own challenge, once.
        status, _, answer = post_raw(first, "/v1/atls/peer", _proof(caller, stolen, callee_spki))
        assert status == 200
        assert answer["routes"] == ["/v1/instances/*/predict"]
        status, _, _ = post_raw(first, "/v1/atls/peer", _proof(caller, stolen, callee_spki))
        assert status == 403


def test_the_routes_are_not_found_on_plain_http(tmp_path: Path) -> None:
    from cleanroom.server.settings import ServerSettings

    with (
        ServerThread(ServerSettings(data_dir=tmp_path)) as plain,
        Client(plain.url) as client,
        pytest.raises(NotFound, match="attested TLS is not enabled"),
    ):
        client.request("POST", "/v1/atls/handshake", json={"nonce": "00" * 32}, auth=False)


ROUTE_CASES = [
    ("/v1/instances/*/predict", "/v1/instances/abc/predict", True),
    ("/v1/instances/*/predict", "/v1/instances/abc/predict/", True),
    ("/v1/instances/*/predict", "/v1/instances//abc/predict", True),
    ("/v1/instances/*/predict", "/v1/instances/abc/model", False),
    ("/v1/instances/*/predict", "/v1/instances", False),
    ("/v1/instances", "/v1/instances/abc", True),
]


@pytest.mark.parametrize(("prefix", "path", "guarded"), ROUTE_CASES)
def test_route_matching(prefix: str, path: str, guarded: bool, policy: AttestationPolicy) -> None:
    assert PeerRoute(prefix, policy).matches(path) is guarded


def test_upstream_settings_fail_closed(policy: AttestationPolicy) -> None:
    with pytest.raises(ConfigurationError):
        Upstream("00" * 47, STAGE_POLICY_DIGEST)
    with pytest.raises(ConfigurationError):
        Upstream(package_measurement().hex(), "")
    with pytest.raises(ConfigurationError):
        PeerRoute("v1/instances", policy)


BODY_CASES = [
    # Exactly one byte over: the server has read it all when it refuses (no reset).
    ("oversized proof", b"[" + b" " * (1024 * 1024 - 1) + b"]", 403, "at most"),
    ("not json", b"\xff not json", 400, "not JSON"),
    ("wrong shape", b'{"certificate": "AA=="}', 403, "certificate, document and signature"),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "detail"), BODY_CASES, ids=[c[0] for c in BODY_CASES]
)
def test_a_malformed_proof_is_refused_and_the_connection_closed(
    name: str, body: bytes, status: int, detail: str, server: ServerThread
) -> None:
    with raw_tls(server.url) as sock:
        post_raw(sock, "/v1/atls/handshake", {"nonce": "33" * 32})
        got, headers, answer = post_raw(sock, "/v1/atls/peer", body)
        assert got == status, name
        assert headers.get("connection") == "close"
        assert detail in answer["detail"]
        assert closed_by_peer(sock)
