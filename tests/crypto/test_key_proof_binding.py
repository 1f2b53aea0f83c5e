"""A proof of key possession opens only as what it claims, and only within its size bound.

``open_key_proof`` accepts a proof only if it is a request sealed by the
claimed key (HPKE auth mode) to the clean room, for this instance and
configuration, whose action is ``register_key`` and whose body is the email of
the party registering. Anything else sealed by the same key (another action,
another party's email) is :class:`AccessDenied`; a proof sealed by another
key, or for another instance or configuration, does not open
(:class:`DecryptionFailed`); one larger than ``MAX_PROOF_BYTES`` is refused
before any opening (:class:`InvalidRequest`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from cleanroom.crypto import envelope
from cleanroom.crypto.key_proof import (
    MAX_PROOF_BYTES,
    REGISTER_KEY,
    key_registration,
    open_key_proof,
    seal_key_proof,
)
from cleanroom.crypto.keys import KeyPair
from cleanroom.errors import AccessDenied, DecryptionFailed, Error, InvalidRequest

CLEAN_ROOM = KeyPair()
HOLDER = KeyPair()
OTHER = KeyPair()
INSTANCE = "0123456789abcdef01234567"
CONFIG = bytes(range(48))
EMAIL = "bob@bank.example"


def _sealed(
    *,
    sender: KeyPair = HOLDER,
    action: str = REGISTER_KEY,
    body: bytes = EMAIL.encode(),
    instance_id: str = INSTANCE,
    config_digest: bytes = CONFIG,
) -> bytes:
    sealed = envelope.seal_request(
        recipient=CLEAN_ROOM.public,
        sender=sender,
        instance_id=instance_id,
        config_digest=config_digest,
        action=action,
        body=body,
    )
    return b"".join(sealed.parts)


def _open(proof: bytes, *, email: str = EMAIL) -> envelope.OpenedRequest:
    return open_key_proof(
        proof,
        recipient=CLEAN_ROOM,
        claimed=HOLDER.public,
        instance_id=INSTANCE,
        config_digest=CONFIG,
        email=email,
    )


def test_the_holders_proof_opens() -> None:
    opened = _open(
        seal_key_proof(
            recipient=CLEAN_ROOM.public,
            sender=HOLDER,
            instance_id=INSTANCE,
            config_digest=CONFIG,
            email=EMAIL,
        )
    )
    assert opened.action == REGISTER_KEY
    assert bytes(opened.body) == EMAIL.encode()


def test_the_registration_body_names_the_key_and_carries_its_proof() -> None:
    body = key_registration(
        recipient=CLEAN_ROOM.public,
        sender=HOLDER,
        instance_id=INSTANCE,
        config_digest=CONFIG,
        email=EMAIL,
    )
    assert set(body) == {"public_key", "proof"}
    assert base64.b64decode(body["public_key"]) == HOLDER.public.raw
    assert bytes(_open(base64.b64decode(body["proof"])).body) == EMAIL.encode()


def test_a_proof_for_the_longest_email_fits_the_bound() -> None:
    longest = "a" * 64 + "@" + "b" * 185 + ".com"
    assert len(longest) == 254
    proof = _sealed(body=longest.encode())
    assert len(proof) <= MAX_PROOF_BYTES
    assert bytes(_open(proof, email=longest).body) == longest.encode()


def test_a_proof_of_exactly_the_bound_opens() -> None:
    overhead = len(_sealed(body=b""))
    email = "a" * (MAX_PROOF_BYTES - overhead)
    proof = _sealed(body=email.encode())
    assert len(proof) == MAX_PROOF_BYTES
    assert bytes(_open(proof, email=email).body) == email.encode()


PROOFS: list[tuple[str, Callable[[], bytes], type[Error], str | None]] = [
    ("another action", lambda: _sealed(action="predict"), AccessDenied, "not made by you"),
    (
        "another party's email",
        lambda: _sealed(body=b"eve@bank.example"),
        AccessDenied,
        "not made by you",
    ),
    ("an empty body", lambda: _sealed(body=b""), AccessDenied, "not made by you"),
    (
        "the email with a suffix",
        lambda: _sealed(body=EMAIL.encode() + b"\x00"),
        AccessDenied,
        "not made by you",
    ),
    ("sealed by another key", lambda: _sealed(sender=OTHER), DecryptionFailed, None),
    ("for another instance", lambda: _sealed(instance_id="f" * 24), DecryptionFailed, None),
    (
        "under another configuration",
        lambda: _sealed(config_digest=bytes(48)),
        DecryptionFailed,
        None,
    ),
    (
        "one byte over the bound",
        lambda: _sealed(body=b"x" * MAX_PROOF_BYTES)[: MAX_PROOF_BYTES + 1],
        InvalidRequest,
        "larger than 1024 bytes",
    ),
    (
        "a genuine proof padded over the bound",
        lambda: _sealed() + bytes(MAX_PROOF_BYTES),
        InvalidRequest,
        "larger than 1024 bytes",
    ),
]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [pytest.param(make, error, message, id=case) for case, make, error, message in PROOFS],
)
def test_a_proof_not_made_for_this_registration_is_refused(
    make: Callable[[], bytes], error: type[Error], message: str | None
) -> None:
    with pytest.raises(error, match=message) as refused:
        _open(make())
    assert type(refused.value) is error
