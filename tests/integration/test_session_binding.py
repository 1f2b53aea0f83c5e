"""A sealed request counts only for the party whose key sealed it, under that party's session.

The operator is untrusted: it sees every sealed request, can hold one back,
and may hold any party's bearer token. A party's request is authenticated by
the key that sealed it (HPKE Auth mode), and that key must be registered on
the instance by the party whose session posts the request
(``CleanRoomService._sender_resolver``). A request Bob sealed, posted under
Eve's or the owner's session, is therefore refused with 403 ``access-denied``
before it is run, policy-checked or logged: it cannot spend another party's
query budget, nor be logged as another party's, nor (for a model sealed by a
data owner) replace the owner's model. The same envelope posted under Bob's
own session is then accepted, so the refusal was the session binding alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from tests.models import identity_model, single_input_model

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.client.instance import CONFIG_HEADER, KEY_ID_HEADER, Instance
from cleanroom.crypto import envelope
from cleanroom.crypto.stream import seal_stream, stream_info
from cleanroom.errors import AccessDenied
from cleanroom.server.runner import ServerThread
from cleanroom.wire.tensors import encode_tensors

Party = Callable[[str], Client]
OWNER = "alice@lender.example"
BOB = "bob@bank.example"
EVE = "eve@bank.example"
X = np.ones((1, 3), np.float32)


def _joined(party: Party, policy: AttestationPolicy, email: str, instance_id: str) -> Instance:
    inst = party(email).get_instance(instance_id)
    inst.validate_attestation(policy)
    inst.set_secret(Secret())
    return inst


def _instance(party: Party, policy: AttestationPolicy) -> tuple[Instance, Instance, Instance]:
    """Alice's instance with a model, and Bob and Eve joined, each with a registered key."""
    alice = party(OWNER).create_instance("Scoring", ModelFormat.ONNX, [BOB, EVE])
    alice.validate_attestation(policy)
    alice.set_secret(Secret())
    alice.upload_model(single_input_model())
    return alice, _joined(party, policy, BOB, alice.id), _joined(party, policy, EVE, alice.id)


def _headers(session: Client, sealed_by: Instance) -> dict[str, str]:
    """*session*'s bearer token, with the binding headers of the party that sealed."""
    attested = sealed_by._require_attested()
    return {
        **session._auth_headers(),
        "content-type": "application/octet-stream",
        KEY_ID_HEADER: attested.hpke_key.key_id.hex(),
        CONFIG_HEADER: attested.config_digest,
    }


def _sealed_predict(sender: Instance) -> bytes:
    attested = sender._require_attested()
    return envelope.seal_request(
        recipient=attested.hpke_key,
        sender=sender._require_secret().key_pair,
        instance_id=sender.id,
        config_digest=bytes.fromhex(attested.config_digest),
        action="predict",
        body=encode_tensors({"x": X}),
    ).envelope


def _sealed_model(sender: Instance, model: bytes) -> bytes:
    attested = sender._require_attested()
    return b"".join(
        seal_stream(
            [model],
            total_size=len(model),
            recipient=attested.hpke_key,
            sender=sender._require_secret().key_pair,
            info=stream_info(sender.id, "model", bytes.fromhex(attested.config_digest)),
        )
    )


def _decisions(owner: Instance, action: str) -> list[tuple[str, str]]:
    """(party, decision) of every logged *action* on the instance, as its owner sees them."""
    entries: list[dict[str, Any]] = owner.usage_log()["entries"]
    return [(e["party"], e["decision"]) for e in entries if e["action"] == action]


def _assert_refused_as_not_yours(response: httpx.Response) -> None:
    assert response.status_code == AccessDenied.status == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == AccessDenied.code
    assert "not registered for you" in problem["detail"]


@pytest.mark.parametrize("poster", [EVE, OWNER], ids=["another data owner", "the owner"])
def test_a_request_sealed_by_one_party_is_refused_under_another_partys_session(
    party: Party, policy: AttestationPolicy, server: ServerThread, poster: str
) -> None:
    alice, bob, _eve = _instance(party, policy)
    sealed = _sealed_predict(bob)  # held back by the operator, never sent by Bob
    session = party(poster)
    path = f"/v1/instances/{alice.id}/predict"

    response = httpx.post(f"{server.url}{path}", content=sealed, headers=_headers(session, bob))
    _assert_refused_as_not_yours(response)
    # Through the SDK's own request layer: the typed error, and not a policy denial.
    with pytest.raises(AccessDenied, match="not registered for you") as info:
        session.request("POST", path, content=sealed, headers=_headers(session, bob))
    assert type(info.value) is AccessDenied
    assert _decisions(alice, "predict") == []  # neither run for, nor logged as, anyone

    # The envelope itself was sound and unspent: under Bob's session it is Bob's request.
    bob_session = party(BOB)
    accepted = httpx.post(f"{server.url}{path}", content=sealed, headers=_headers(bob_session, bob))
    assert accepted.status_code == 200, accepted.text
    assert _decisions(alice, "predict") == [(BOB, "allow")]


def test_a_model_sealed_by_a_data_owner_is_refused_under_the_owners_session(
    party: Party, policy: AttestationPolicy, server: ServerThread
) -> None:
    alice, bob, _eve = _instance(party, policy)
    owner_session = party(OWNER)
    installed = owner_session._instance_doc(alice.id)["model"]["digest"]
    assert installed is not None
    sealed = _sealed_model(bob, identity_model())  # Bob's model, Bob's key

    response = httpx.put(
        f"{server.url}/v1/instances/{alice.id}/model",
        content=sealed,
        headers=_headers(owner_session, bob),
    )
    _assert_refused_as_not_yours(response)
    assert owner_session._instance_doc(alice.id)["model"]["digest"] == installed
    assert _decisions(alice, "upload_model") == [(OWNER, "allow")]  # Alice's own upload only
    assert alice.predict(X)["y"].shape == (1, 2)  # the owner's model still serves
