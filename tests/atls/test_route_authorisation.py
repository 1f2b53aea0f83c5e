"""Per-route authorisation of attested callers, and the attested-TLS document's own guards.

A calling clean room is admitted route by route: the routes whose policy
and allow-list its proof passes, and no others. A peer admitted on a
connection to one route must still be refused on another route it failed,
with a 403 problem document that closes the connection.

``verify_document`` accepts only documents made for attested TLS (the
configuration's ``purpose``), and never a ``certificate`` document as
fresh evidence, whatever the caller asks for.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from atls_fakes import (
    STAGE_POLICY_DIGEST,
    closed_by_peer,
    make_identity,
    policy_for,
    post_raw,
    raw_tls,
)

from cleanroom.atls import AtlsSettings, AttestedTlsIdentity, PeerRoute, Upstream
from cleanroom.atls.certificate import certificate_document
from cleanroom.atls.document import CONFIG_PURPOSE, verify_document
from cleanroom.atls.peer import PeerProof
from cleanroom.attestation import AttestationPolicy, verify_evidence
from cleanroom.attestation.measurement import package_measurement
from cleanroom.crypto.binding import TLS_SPKI_KEY
from cleanroom.errors import ConfigurationError, PolicyViolation
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings

INSTANCE = "0123456789abcdef01234567"
OTHER_MEASUREMENT = b"\x42" * 48
OTHER_POLICY_DIGEST = "sha256:" + "cd" * 32

PREDICT = "/v1/instances/*/predict"  # the package's measurement, the stage's policy digest
AUDIT = "/v1/instances/*/audit"  # another attestation policy: another measurement only
USERS = "/v1/instances/*/users"  # the same attestation policy, another allow-list


def _path(prefix: str) -> str:
    return prefix.replace("*", INSTANCE)


@pytest.fixture(scope="module")
def gated(tee_dir: Path) -> Iterator[ServerThread]:
    """A clean room with three peer routes, each admitting a different upstream."""
    routes = (
        PeerRoute(
            PREDICT,
            policy_for(tee_dir),
            (Upstream(package_measurement().hex(), STAGE_POLICY_DIGEST),),
        ),
        PeerRoute(
            AUDIT,
            policy_for(tee_dir, measurements=[OTHER_MEASUREMENT.hex()]),
            (Upstream(OTHER_MEASUREMENT.hex(), STAGE_POLICY_DIGEST),),
        ),
        PeerRoute(
            USERS,
            policy_for(tee_dir),
            (Upstream(package_measurement().hex(), OTHER_POLICY_DIGEST),),
        ),
    )
    settings = ServerSettings(data_dir=tee_dir)
    with ServerThread(settings, tls=AtlsSettings(routes=routes)) as server:
        yield server


def _prove(
    sock: ssl.SSLSocket, caller: AttestedTlsIdentity, server: ServerThread
) -> tuple[int, Any]:
    """Handshake on *sock*, then present *caller*'s proof for this connection's challenge."""
    assert server.atls is not None
    callee_spki = server.atls.identity.spki_der
    _, _, hello = post_raw(sock, "/v1/atls/handshake", {"nonce": "5a" * 32})
    challenge = bytes.fromhex(hello["challenge"])
    document = caller.document(challenge, role="client", peer_spki_der=callee_spki)
    proof = PeerProof(
        caller.certificate_der, document, caller.sign_proof(challenge, callee_spki, document)
    )
    status, _, answer = post_raw(sock, "/v1/atls/peer", proof.to_json())
    return status, answer


# caller -> the one route it is admitted to
CALLERS: list[tuple[str, Callable[[Path], AttestedTlsIdentity], str]] = [
    ("stage", lambda d: make_identity(d, policy_digest=STAGE_POLICY_DIGEST), PREDICT),
    (
        "another measurement",
        lambda d: make_identity(
            d, measurement=OTHER_MEASUREMENT, policy_digest=STAGE_POLICY_DIGEST
        ),
        AUDIT,
    ),
    (
        "another policy digest",
        lambda d: make_identity(d, policy_digest=OTHER_POLICY_DIGEST),
        USERS,
    ),
]
ROUTE_CASES = [
    pytest.param(make, admitted, refused, id=f"{name}: admitted to {admitted}, not {refused}")
    for name, make, admitted in CALLERS
    for refused in (PREDICT, AUDIT, USERS)
    if refused != admitted
]


@pytest.mark.parametrize(("make_caller", "admitted", "refused"), ROUTE_CASES)
def test_a_peer_admitted_to_one_route_is_refused_on_another(
    make_caller: Callable[[Path], AttestedTlsIdentity],
    admitted: str,
    refused: str,
    gated: ServerThread,
    tee_dir: Path,
) -> None:
    with raw_tls(gated.url) as sock:
        status, answer = _prove(sock, make_caller(tee_dir), gated)
        assert (status, answer["routes"]) == (200, [admitted])
        # Past the gate, the service answers: the raw connection sends no credentials.
        status, _, answer = post_raw(sock, _path(admitted), {})
        assert (status, answer["code"]) == (401, "authentication-failed"), answer
        status, headers, answer = post_raw(sock, _path(refused), {})
        assert (status, answer["status"], answer["code"]) == (403, 403, "access-denied")
        assert "attested upstream" in answer["detail"]
        assert headers.get("content-type") == "application/problem+json"
        assert headers.get("connection") == "close"
        assert closed_by_peer(sock)


# (purpose in the caller's attested configuration) -> admitted
PURPOSES = [
    pytest.param(CONFIG_PURPOSE, True, id="attested TLS"),
    pytest.param(None, False, id="no purpose"),
    pytest.param("cleanroom/v1 instance attestation", False, id="another purpose"),
    pytest.param("CLEANROOM/V1 ATTESTED-TLS", False, id="another case"),
    pytest.param(CONFIG_PURPOSE + " ", False, id="a trailing space"),
]


@pytest.mark.parametrize(("purpose", "accepted"), PURPOSES)
@pytest.mark.parametrize("role", ["server", "client"])
def test_verify_document_checks_the_purpose(
    purpose: str | None, accepted: bool, role: str, tee_dir: Path, policy: AttestationPolicy
) -> None:
    attester = make_identity(tee_dir, policy_digest=STAGE_POLICY_DIGEST, purpose=purpose)
    verifier_spki = make_identity(tee_dir).spki_der if role == "client" else None
    nonce = b"\x11" * 32
    document = attester.document(nonce, role=role, peer_spki_der=verifier_spki)

    def verify() -> None:
        verify_document(
            document,
            policy,
            nonce=nonce,
            role=role,
            tls_spki_der=attester.spki_der,
            peer_spki_der=verifier_spki,
        )

    if accepted:
        verify()
        return
    with pytest.raises(PolicyViolation) as refused:
        verify()
    # Everything else about the document is right: the purpose alone refuses it.
    assert [f.split(":")[0] for f in refused.value.failures] == ["purpose"]


def test_a_caller_attesting_another_purpose_is_refused_on_every_route(
    gated: ServerThread, tee_dir: Path
) -> None:
    caller = make_identity(
        tee_dir, policy_digest=STAGE_POLICY_DIGEST, purpose="cleanroom/v1 instance attestation"
    )
    with raw_tls(gated.url) as sock:
        status, answer = _prove(sock, caller, gated)
        assert (status, answer["code"]) == (403, "attestation-policy-violation"), answer
        for prefix in (PREDICT, AUDIT, USERS):
            assert any(f.startswith(f"{prefix}: purpose: ") for f in answer["failures"]), prefix
        assert closed_by_peer(sock)


@pytest.mark.parametrize("role", ["certificate", "attestation", ""])
def test_verify_document_refuses_a_role_that_is_not_fresh_evidence(
    role: str, tee_dir: Path, policy: AttestationPolicy
) -> None:
    identity = make_identity(tee_dir)
    document = certificate_document(identity.certificate)
    # The certificate's document is genuine evidence, bound to this TLS key, for
    # its own nonce: as "certificate" evidence, only the role guard refuses it.
    assert document.role == "certificate"
    assert document.config["purpose"] == CONFIG_PURPOSE
    assert document.config["keys"][TLS_SPKI_KEY] == identity.spki_sha256.hex()
    verify_evidence(
        document.evidence, policy, report_data=document.expected_report_data(document.nonce)
    )
    with pytest.raises(ConfigurationError, match="never accepted as fresh evidence"):
        verify_document(
            document, policy, nonce=document.nonce, role=role, tls_spki_der=identity.spki_der
        )


BROAD = "/v1/instances"  # another allow-list: the other policy digest


@pytest.mark.parametrize("broad_first", [True, False], ids=["broad first", "narrow first"])
def test_overlapping_routes_must_all_admit_a_peer_whatever_their_order(
    broad_first: bool, tee_dir: Path
) -> None:
    """A broad route's allow-list never widens a narrower route's, nor the other way round."""
    narrow = PeerRoute(
        PREDICT, policy_for(tee_dir), (Upstream(package_measurement().hex(), STAGE_POLICY_DIGEST),)
    )
    broad = PeerRoute(
        BROAD, policy_for(tee_dir), (Upstream(package_measurement().hex(), OTHER_POLICY_DIGEST),)
    )
    routes = (broad, narrow) if broad_first else (narrow, broad)
    settings = ServerSettings(data_dir=tee_dir)
    with ServerThread(settings, tls=AtlsSettings(routes=routes)) as server:
        for digest, admitted in ((OTHER_POLICY_DIGEST, BROAD), (STAGE_POLICY_DIGEST, PREDICT)):
            with raw_tls(server.url) as sock:
                status, answer = _prove(sock, make_identity(tee_dir, policy_digest=digest), server)
                assert (status, answer["routes"]) == (200, [admitted])
                # Guarded by both routes, the predict path needs both.
                status, headers, answer = post_raw(sock, _path(PREDICT), {})
                assert (status, answer["code"]) == (403, "access-denied"), (digest, answer)
                assert headers.get("connection") == "close"
        with raw_tls(server.url) as sock:
            _prove(sock, make_identity(tee_dir, policy_digest=OTHER_POLICY_DIGEST), server)
            # A path only the broad route guards is open to whom it admits.
            status, _, answer = post_raw(sock, _path(USERS), {})
            assert (status, answer["code"]) == (401, "authentication-failed"), answer


def test_routes_for_a_path_are_every_route_that_guards_it(policy: AttestationPolicy) -> None:
    narrow = PeerRoute(PREDICT, policy, ())
    broad = PeerRoute(BROAD, policy, ())
    settings = AtlsSettings(routes=(broad, narrow))
    assert settings.routes_for(_path(PREDICT)) == (broad, narrow)
    assert settings.routes_for(_path(USERS)) == (broad,)
    assert settings.routes_for("/v1/health") == ()
    assert settings.admits(frozenset({BROAD, PREDICT}), _path(PREDICT))
    assert not settings.admits(frozenset({PREDICT}), _path(PREDICT))
    assert not settings.admits(frozenset({BROAD}), _path(PREDICT))
    assert not settings.admits(frozenset({BROAD, PREDICT}), "/v1/health")
