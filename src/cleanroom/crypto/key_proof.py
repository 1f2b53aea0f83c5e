"""Proof that a party holds the private key it registers with an instance.

Public keys are not secret: without a proof, anyone named on an instance could
register another party's public key as their own before its holder did. The
proof is a sealed request (:mod:`cleanroom.crypto.envelope`) in HPKE auth mode
from the key being registered to the clean room's attested key, with the action
``register_key`` and the registering party's email as its body. Only the holder
of the private key can make one that opens under the claimed public key
(RFC 9180 §5.1.3, AuthEncap), the ``info`` binds it to the instance and the
attested configuration, and the email binds it to the party whose session sends
it: a captured proof is useless under anyone else's session.
"""

from __future__ import annotations

import base64

from cleanroom.crypto import envelope
from cleanroom.crypto.keys import KeyPair, PublicKey
from cleanroom.errors import AccessDenied, InvalidRequest

__all__ = [
    "MAX_PROOF_BYTES",
    "REGISTER_KEY",
    "key_registration",
    "open_key_proof",
    "seal_key_proof",
]

REGISTER_KEY = "register_key"
# Header, key id, enc, metadata, an email of at most 254 bytes and the tag.
MAX_PROOF_BYTES = 1024


def seal_key_proof(
    *,
    recipient: PublicKey,
    sender: KeyPair,
    instance_id: str,
    config_digest: bytes,
    email: str,
) -> bytes:
    """The proof that *email* holds *sender*'s private key, for the attested *recipient*."""
    sealed = envelope.seal_request(
        recipient=recipient,
        sender=sender,
        instance_id=instance_id,
        config_digest=config_digest,
        action=REGISTER_KEY,
        body=email.encode("utf-8"),
    )
    return b"".join(sealed.parts)


def key_registration(
    *,
    recipient: PublicKey,
    sender: KeyPair,
    instance_id: str,
    config_digest: bytes,
    email: str,
) -> dict[str, str]:
    """The body of ``PUT /v1/instances/{id}/keys``: *sender*'s public key and its proof."""
    proof = seal_key_proof(
        recipient=recipient,
        sender=sender,
        instance_id=instance_id,
        config_digest=config_digest,
        email=email,
    )
    return {
        "public_key": base64.b64encode(sender.public.raw).decode("ascii"),
        "proof": base64.b64encode(proof).decode("ascii"),
    }


def open_key_proof(
    proof: bytes,
    *,
    recipient: KeyPair,
    claimed: PublicKey,
    instance_id: str,
    config_digest: bytes,
    email: str,
) -> envelope.OpenedRequest:
    """Check that *proof* was sealed by *claimed*'s private key for *email*.

    Raises :class:`DecryptionFailed` (opaque) if it does not open under
    *claimed*, and :class:`AccessDenied` if it opens but was made for another
    party or another purpose.
    """
    if len(proof) > MAX_PROOF_BYTES:
        raise InvalidRequest(f"the proof of possession is larger than {MAX_PROOF_BYTES} bytes")
    # Opened under the claimed key whatever key id the header names: the header is
    # authenticated data, so a proof sealed by any other key fails to open.
    opened = envelope.open_request(
        proof,
        recipient=recipient,
        instance_id=instance_id,
        config_digest=config_digest,
        resolve_sender=lambda _key_id: claimed,
    )
    if opened.action != REGISTER_KEY or bytes(opened.body) != email.encode("utf-8"):
        raise AccessDenied(
            "this proof of possession was not made by you for registering this key",
            remedy="register the key with the SDK's set_secret(), signed in as its holder",
        )
    return opened
