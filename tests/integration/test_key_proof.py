"""A party registers only a key it holds: ``PUT /v1/instances/{id}/keys`` needs a
proof of possession sealed by that key, for that party, instance and configuration.

Without it, anyone named on an instance could register another party's public
key (public keys are not secret) before its holder did: the holder was then
refused with 409, and a sealed request of the holder's captured by the operator
would open, be checked and be logged as the squatter's.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from tests.models import single_input_model

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.client.instance import Instance
from cleanroom.crypto import envelope
from cleanroom.crypto.key_proof import seal_key_proof
from cleanroom.errors import (
    AccessDenied,
    DecryptionFailed,
    Error,
    InvalidRequest,
    ReplayDetected,
)

Party = Callable[[str], Client]
ALICE, BOB, EVE = "alice@lender.example", "bob@bank.example", "eve@bank.example"
X = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)


@dataclass
class Room:
    bob: Instance
    eve: Instance
    bob_secret: Secret
    eve_secret: Secret

    def proof(
        self,
        *,
        sender: Secret | None = None,
        email: str = BOB,
        instance_id: str | None = None,
        config_digest: bytes | None = None,
    ) -> bytes:
        attested = self.bob._require_attested()
        return seal_key_proof(
            recipient=attested.hpke_key,
            sender=(sender or self.bob_secret).key_pair,
            instance_id=instance_id or self.bob.id,
            config_digest=config_digest or bytes.fromhex(attested.config_digest),
            email=email,
        )

    def register(self, who: Instance, public: Secret, proof: bytes | str | None) -> None:
        body = {"public_key": base64.b64encode(public.public_key.raw).decode()}
        if proof is not None:
            body["proof"] = proof if isinstance(proof, str) else base64.b64encode(proof).decode()
        who._client.request("PUT", f"/v1/instances/{who.id}/keys", json=body)


@pytest.fixture
def room(party: Party, policy: AttestationPolicy) -> Room:
    alice = party(ALICE).create_instance("Proofs", ModelFormat.ONNX, [BOB, EVE])
    alice.validate_attestation(policy)
    alice.set_secret(Secret())
    alice.upload_model(single_input_model())
    bob = party(BOB).get_instance(alice.id)
    bob.validate_attestation(policy)
    eve = party(EVE).get_instance(alice.id)
    eve.validate_attestation(policy)
    return Room(bob=bob, eve=eve, bob_secret=Secret(), eve_secret=Secret())


def _predict_request_as_proof(room: Room) -> bytes:
    attested = room.bob._require_attested()
    sealed = envelope.seal_request(
        recipient=attested.hpke_key,
        sender=room.bob_secret.key_pair,
        instance_id=room.bob.id,
        config_digest=bytes.fromhex(attested.config_digest),
        action="predict",
        body=BOB.encode(),
    )
    return b"".join(sealed.parts)


# (case, who sends, whose public key, the proof) -> the refusal
CASES: list[tuple[str, str, Callable[[Room], bytes | str | None], type[Error]]] = [
    (
        "eve claims bob's key with a proof from her own key",
        EVE,
        lambda r: r.proof(sender=r.eve_secret, email=EVE),
        DecryptionFailed,
    ),
    ("eve replays bob's genuine proof under her session", EVE, lambda r: r.proof(), AccessDenied),
    ("a proof naming another party", BOB, lambda r: r.proof(email=EVE), AccessDenied),
    (
        "a proof for another instance",
        BOB,
        lambda r: r.proof(instance_id="0" * 24),
        DecryptionFailed,
    ),
    (
        "a proof under another configuration",
        BOB,
        lambda r: r.proof(config_digest=b"\x01" * 48),
        DecryptionFailed,
    ),
    ("a predict request as the proof", BOB, _predict_request_as_proof, AccessDenied),
    ("a truncated proof", BOB, lambda r: r.proof()[:-1], DecryptionFailed),
    ("a proof with one bit flipped", BOB, lambda r: _flip(r.proof(), -3), DecryptionFailed),
    ("no proof", BOB, lambda r: None, InvalidRequest),
    ("a proof that is not base64", BOB, lambda r: "not base64!", InvalidRequest),
    ("an oversized proof", BOB, lambda r: b"\0" * 1500, InvalidRequest),
]


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 1
    return bytes(out)


@pytest.mark.parametrize(
    ("sender", "make_proof", "error"),
    [pytest.param(sender, make, error, id=case) for case, sender, make, error in CASES],
)
def test_a_key_is_registered_only_with_its_holders_proof(
    room: Room,
    sender: str,
    make_proof: Callable[[Room], bytes | str | None],
    error: type[Error],
) -> None:
    who = room.eve if sender == EVE else room.bob
    with pytest.raises(error) as refused:
        room.register(who, room.bob_secret, make_proof(room))
    assert type(refused.value) is error
    # Nothing was bound: bob registers his key and is served as before.
    room.bob.set_secret(room.bob_secret)
    assert room.bob.predict(X)["y"].shape == (1, 2)


def test_a_proof_is_used_once(room: Room) -> None:
    proof = room.proof()
    room.register(room.bob, room.bob_secret, proof)
    with pytest.raises(ReplayDetected):
        room.register(room.bob, room.bob_secret, proof)


def test_the_sdk_registers_with_a_fresh_proof_each_time(room: Room) -> None:
    room.bob.set_secret(room.bob_secret)
    room.bob.set_secret(room.bob_secret)  # a second registration is a new proof, not a replay
    assert room.bob.predict(X)["y"].shape == (1, 2)
