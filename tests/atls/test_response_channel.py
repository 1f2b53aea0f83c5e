"""Each response names the attested connection it came over, not the newest one.

A client may hold several connections; what a caller reports about the
channel (a pipeline stage's chain report, the instance's TLS key check) must
be the connection its request took.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from cleanroom import Client
from cleanroom.atls.transport import AttestedTransport, ServerAttestation, attestation_of
from cleanroom.attestation import AttestationPolicy
from cleanroom.client import instance as instance_module
from cleanroom.errors import AttestationError, PolicyViolation
from cleanroom.server.runner import ServerThread

PASSWORD = "correct horse battery staple"


def _attested(response: httpx.Response) -> ServerAttestation:
    found = attestation_of(response)
    assert found is not None
    return found


def test_a_response_names_its_own_connection_when_a_newer_one_exists(
    server: ServerThread, policy: AttestationPolicy
) -> None:
    transport = AttestedTransport(policy)
    with httpx.Client(transport=transport, base_url=server.url) as client:
        first = client.get("/v1/health")
        first_stream = first.extensions["network_stream"]
        # Keep the first connection busy, so the next request opens a second one.
        with client.stream("GET", "/v1/health") as held:
            assert held.extensions["network_stream"] is first_stream
            second = client.get("/v1/health")
            held.read()
        assert second.extensions["network_stream"] is not first_stream
        newest = transport.verified[-1]
        assert _attested(second) is newest
        assert _attested(first) is transport.verified[0]
        assert _attested(first).document.nonce != newest.document.nonce

        responses = [client.get("/v1/health") for _ in range(4)]
    by_stream = {
        id(first_stream): _attested(first),
        id(second.extensions["network_stream"]): newest,
    }
    for response in responses:
        assert _attested(response) is by_stream[id(response.extensions["network_stream"])]
    # The pool reused the older connection: the newest attestation is not its.
    assert any(_attested(r) is not newest for r in responses)


def test_a_response_over_a_connection_that_was_not_attested_is_refused(
    server: ServerThread, policy: AttestationPolicy
) -> None:
    transport = AttestedTransport(policy)
    with httpx.Client(transport=transport, base_url=server.url) as client:
        assert client.get("/v1/health").status_code == 200
        transport._attestor.by_stream.clear()  # the pool's connection is no longer known
        with pytest.raises(AttestationError, match="not attested"):
            client.get("/v1/health")


def test_the_sdk_keeps_the_last_response_channel_per_thread(
    server: ServerThread, policy: AttestationPolicy
) -> None:
    with Client(server.url, attestation=policy) as client:
        assert client.attested
        assert client.last_server_attestation is None
        client.health()
        mine = client.last_server_attestation
        assert mine is not None
        assert mine in client.server_attestations
        seen_elsewhere: list[ServerAttestation | None] = []

        def other_thread() -> None:
            seen_elsewhere.append(client.last_server_attestation)
            client.health()
            seen_elsewhere.append(client.last_server_attestation)

        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        assert seen_elsewhere[0] is None  # another thread's last request is its own
        assert seen_elsewhere[1] is not None
        assert client.last_server_attestation is mine


def test_a_plain_client_has_no_response_channel(server: ServerThread) -> None:
    response = httpx.get(f"{server.url}/v1/health", verify=False)
    assert attestation_of(response) is None


def test_an_attestation_document_over_no_attested_connection_is_refused(
    server: ServerThread, policy: AttestationPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Client(server.url, attestation=policy) as client:
        client.sign_up("erin@lender.example", PASSWORD)
        client.sign_in("erin@lender.example", PASSWORD)
        instance = client.create_instance("Unbound", "onnx")
        monkeypatch.setattr(instance_module, "attestation_of", lambda _response: None)
        with pytest.raises(PolicyViolation) as refused:
            instance.validate_attestation(policy)
        assert refused.value.failures == [
            "the attestation document did not come over an attested connection"
        ]
        assert instance.attested_config is None
