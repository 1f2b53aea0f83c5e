"""Registering a party's key with a service directly, proof of possession included."""

from __future__ import annotations

from cleanroom.crypto.key_proof import key_registration
from cleanroom.crypto.keys import KeyPair
from cleanroom.server.service import CleanRoomService


def register(service: CleanRoomService, email: str, instance_id: str, sender: KeyPair) -> None:
    record = service.store.instance(instance_id)
    body = key_registration(
        recipient=service.tee.hpke.public,
        sender=sender,
        instance_id=instance_id,
        config_digest=bytes.fromhex(service.current_config_digest(record)),
        email=email,
    )
    service.register_key(email, instance_id, body["public_key"], body["proof"])
