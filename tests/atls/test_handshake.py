"""Server attestation at connection set-up: success, and every refusal before any data.

Each refusal case runs a TLS server that plays the attacker and records
every request it receives: after a refusal it must have seen the attested
handshake and nothing else, in particular no credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from atls_fakes import PASSWORD, FakeServer, RawTlsServer, make_identity, policy_for
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cleanroom import Client
from cleanroom.atls import AttestationDocument, certificate_document
from cleanroom.atls.identity import AttestedTlsIdentity
from cleanroom.attestation import AttestationPolicy
from cleanroom.crypto.binding import TLS_SPKI_KEY
from cleanroom.errors import (
    AttestationError,
    ConfigurationError,
    EvidenceFormatError,
    EvidenceSignatureError,
    PolicyViolation,
)
from cleanroom.server.runner import ServerThread

EMAIL = "bob@bank.example"


def test_handshake_succeeds_and_credentials_flow_after_it(
    server: ServerThread, policy: AttestationPolicy
) -> None:
    with Client(server.url, attestation=policy) as client:
        client.sign_up(EMAIL, PASSWORD)
        client.sign_in(EMAIL, PASSWORD)
        assert client.health()["status"] == "ok"
        (seen,) = client.server_attestations  # one connection, attested once
    assert server.atls is not None
    assert seen.certificate_der == server.atls.identity.certificate_der
    assert seen.evidence.simulated
    assert not seen.mutual
    assert seen.document.config["keys"][TLS_SPKI_KEY] == server.atls.identity.spki_sha256.hex()


def test_every_new_connection_is_attested_with_a_fresh_nonce(
    server: ServerThread, policy: AttestationPolicy
) -> None:
    with Client(server.url, attestation=policy) as client:
        client.health()
    with Client(server.url, attestation=policy) as again:
        again.health()
    first, second = client.server_attestations[0], again.server_attestations[0]
    assert first.document.nonce != second.document.nonce
    assert first.evidence.report_data != second.evidence.report_data


def test_instance_configuration_names_the_tls_key(
    server: ServerThread, policy: AttestationPolicy
) -> None:
    """Instance attestation and the TLS channel end in the same TEE."""
    with Client(server.url, attestation=policy) as client:
        client.sign_up("carol@lender.example", PASSWORD)
        client.sign_in("carol@lender.example", PASSWORD)
        instance = client.create_instance("Scoring", "onnx")
        instance.validate_attestation(policy)
        assert instance.attested_config is not None
        assert server.atls is not None
        keys = instance.attested_config["keys"]
        assert keys[TLS_SPKI_KEY] == server.atls.identity.spki_sha256.hex()


def test_an_instance_behind_another_tls_key_is_refused(
    server: ServerThread, policy: AttestationPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Genuine evidence, but its configuration names a TLS key no connection verified."""
    with Client(server.url, attestation=policy) as client:
        client.sign_up("dave@lender.example", PASSWORD)
        client.sign_in("dave@lender.example", PASSWORD)
        instance = client.create_instance("Elsewhere", "onnx")
        other = ec.generate_private_key(ec.SECP256R1()).public_key()
        other_spki = other.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        monkeypatch.setattr(server.service.tee, "tls_spki_der", lambda: other_spki)
        with pytest.raises(PolicyViolation) as refused:
            instance.validate_attestation(policy)
        assert [f.split(":")[0] for f in refused.value.failures] == [f"keys.{TLS_SPKI_KEY}"]
        assert instance.attested_config is None


def test_plain_http_url_is_refused_with_an_attestation_policy(policy: AttestationPolicy) -> None:
    with (
        Client("http://127.0.0.1:9", attestation=policy) as client,
        pytest.raises(AttestationError, match="https"),
    ):
        client.health()


# refusals ---------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    tee_dir: Path
    other_tee_dir: Path
    genuine: AttestedTlsIdentity
    server_url: str


Answer = Callable[[World, AttestedTlsIdentity, bytes], dict[str, Any]]


def _honest(identity: AttestedTlsIdentity, nonce: bytes) -> dict[str, Any]:
    return {"document": identity.document(nonce, role="server").to_json(), "challenge": "00" * 32}


def _relay_from_real_server(world: World, nonce: bytes) -> dict[str, Any]:
    """Run the handshake with the real clean room on the attacker's own session."""
    with httpx.Client(verify=False) as relay:
        answer: dict[str, Any] = relay.post(
            world.server_url + "/v1/atls/handshake", json={"nonce": nonce.hex()}
        ).json()
    return answer


def _rewrite_config(answer: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    answer["document"]["config"]["keys"][key] = value
    return answer


def _old_nonce_document(world: World, me: AttestedTlsIdentity, nonce: bytes) -> dict[str, Any]:
    return _honest(me, bytes(32))


def _old_document_new_nonce(world: World, me: AttestedTlsIdentity, nonce: bytes) -> dict[str, Any]:
    answer = _honest(me, bytes(32))
    answer["document"]["nonce"] = nonce.hex()
    return answer


def _certificate_evidence(world: World, me: AttestedTlsIdentity, nonce: bytes) -> dict[str, Any]:
    return {"document": certificate_document(me.certificate).to_json(), "challenge": "00" * 32}


def _wrong_measurement(world: World, me: AttestedTlsIdentity, nonce: bytes) -> dict[str, Any]:
    return _honest(make_identity(world.tee_dir, measurement=b"\x42" * 48), nonce)


CASES: list[
    tuple[str, Callable[[World], AttestedTlsIdentity], Answer, type[AttestationError], str]
] = [
    (
        "wrong measurement",
        lambda w: make_identity(w.tee_dir, measurement=b"\x42" * 48),
        lambda w, me, n: _honest(me, n),
        PolicyViolation,
        "MEASUREMENT",
    ),
    (
        "wrong root",
        lambda w: make_identity(w.other_tee_dir),
        lambda w, me, n: _honest(me, n),
        EvidenceSignatureError,
        "signature does not verify",
    ),
    (
        "debug-enabled report",
        lambda w: make_identity(w.tee_dir, debug=True),
        lambda w, me, n: _honest(me, n),
        PolicyViolation,
        "DEBUG",
    ),
    (
        "stale evidence for an old nonce",
        lambda w: make_identity(w.tee_dir),
        _old_nonce_document,
        PolicyViolation,
        "nonce",
    ),
    (
        "replayed evidence relabelled with the new nonce",
        lambda w: make_identity(w.tee_dir),
        _old_document_new_nonce,
        PolicyViolation,
        "REPORT_DATA",
    ),
    (
        "replayed certificate evidence",
        lambda w: make_identity(w.tee_dir),
        _certificate_evidence,
        PolicyViolation,
        "atls.role",
    ),
    (
        "evidence relayed from another session",
        lambda w: make_identity(w.tee_dir),
        lambda w, me, n: _relay_from_real_server(w, n),
        PolicyViolation,
        TLS_SPKI_KEY,
    ),
    (
        "certificate key does not match REPORT_DATA",
        lambda w: make_identity(w.tee_dir),
        lambda w, me, n: _rewrite_config(
            _relay_from_real_server(w, n), TLS_SPKI_KEY, me.spki_sha256.hex()
        ),
        PolicyViolation,
        "REPORT_DATA",
    ),
    (
        "another server's evidence for this nonce",
        lambda w: make_identity(w.tee_dir),
        lambda w, me, n: _honest(w.genuine, n),
        PolicyViolation,
        TLS_SPKI_KEY,
    ),
    (
        "malformed document",
        lambda w: make_identity(w.tee_dir),
        lambda w, me, n: {"document": {"evidence": "nope"}},
        EvidenceFormatError,
        "",
    ),
]


@pytest.mark.parametrize(
    ("name", "make_server", "answer", "error", "failure"), CASES, ids=[c[0] for c in CASES]
)
def test_refusal_before_any_application_data(
    name: str,
    make_server: Callable[[World], AttestedTlsIdentity],
    answer: Answer,
    error: type[AttestationError],
    failure: str,
    tee_dir: Path,
    other_tee_dir: Path,
    server: ServerThread,
    policy: AttestationPolicy,
) -> None:
    world = World(tee_dir, other_tee_dir, make_identity(tee_dir), server.url)
    me = make_server(world)

    async def handshake(request: Request) -> Response:
        nonce = bytes.fromhex((await request.json())["nonce"])
        return JSONResponse(answer(world, me, nonce))

    with FakeServer(me, handshake) as fake, Client(fake.url, attestation=policy) as client:
        with pytest.raises(error) as refused:
            client.sign_in(EMAIL, PASSWORD)
        assert client.server_attestations == []
    assert fake.seen == [("/v1/atls/handshake", False)], name
    if failure:
        assert failure in " ".join([refused.value.message, *refused.value.failures]), name


def test_a_server_without_attested_tls_is_refused(tee_dir: Path, policy: AttestationPolicy) -> None:
    async def not_found(_: Request) -> Response:
        return JSONResponse({"code": "not-found", "detail": "no such route"}, status_code=404)

    me = make_identity(tee_dir)
    with (
        FakeServer(me, not_found) as fake,
        Client(fake.url, attestation=policy) as client,
        pytest.raises(AttestationError, match="no attested-TLS handshake"),
    ):
        client.sign_in(EMAIL, PASSWORD)
    assert fake.seen == [("/v1/atls/handshake", False)]


def test_a_policy_for_another_root_refuses_the_real_server(
    server: ServerThread, other_tee_dir: Path
) -> None:
    with (
        Client(server.url, attestation=policy_for(other_tee_dir)) as client,
        pytest.raises(EvidenceSignatureError),
    ):
        client.health()


def test_document_json_round_trip(tee_dir: Path) -> None:
    document = make_identity(tee_dir).document(b"\x01" * 32, role="server")
    assert AttestationDocument.from_bytes(document.to_bytes()) == document
    with pytest.raises(EvidenceFormatError):
        AttestationDocument.from_json({**document.to_json(), "extra": 1})


def test_identity_refuses_a_configuration_naming_another_key(tee_dir: Path) -> None:
    me = make_identity(tee_dir)
    config = {**me.config, "keys": {**me.config["keys"], TLS_SPKI_KEY: "00" * 32}}
    with pytest.raises(ConfigurationError):
        AttestedTlsIdentity(me._key, me._evidence, config)


def test_attested_tls_and_a_custom_transport_do_not_mix(
    policy: AttestationPolicy, tee_dir: Path
) -> None:
    """Fail closed: a custom transport would silently skip the attested handshake."""
    with pytest.raises(ConfigurationError):
        Client("https://127.0.0.1:9", attestation=policy, transport=httpx.HTTPTransport())
    with pytest.raises(ConfigurationError):
        Client("https://127.0.0.1:9", identity=make_identity(tee_dir))


RAW_REPLIES = [
    ("not http", b"garbage\r\n\r\n", EvidenceFormatError),
    ("closed before answering", b"", AttestationError),
    (
        "truncated answer",
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{",
        AttestationError,
    ),
]


@pytest.mark.parametrize(("name", "reply", "error"), RAW_REPLIES, ids=[c[0] for c in RAW_REPLIES])
def test_a_broken_handshake_answer_is_refused(
    name: str, reply: bytes, error: type[AttestationError], tee_dir: Path, policy: AttestationPolicy
) -> None:
    with (
        RawTlsServer(make_identity(tee_dir), reply) as raw,
        Client(raw.url, attestation=policy) as client,
        pytest.raises(error),
    ):
        client.sign_in(EMAIL, PASSWORD)
    (request,) = raw.requests
    assert request.startswith(b"POST /v1/atls/handshake "), name
    assert b"authorization" not in request.lower()
