"""A checkpoint signature covers the context string, then the canonical body.

``docs/receipts.md``: the signature is over
``b"cleanroom-log-checkpoint/1\\n" || canonical(checkpoint without "signature")``.
The context keeps a checkpoint signature from being valid as any other
message signed with the same key, and, the other way round, a signature the
log key made over the bare body (or over the body under another context)
must not pass as a checkpoint signature.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.errors import LogIntegrityError
from cleanroom.policy import Checkpoint, DecisionLog, verify_checkpoint, verify_receipt
from cleanroom.policy.signing import sign

CONTEXT = b"cleanroom-log-checkpoint/1\n"


def _canonical(body: dict[str, Any]) -> bytes:
    """RFC 8785 for a body of ASCII strings and integers."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")


def test_the_signature_is_over_the_context_and_the_canonical_body(
    filled_log: DecisionLog, log_key: ed25519.Ed25519PrivateKey
) -> None:
    checkpoint = filled_log.checkpoint()
    signature = base64.b64decode(checkpoint.signature)
    # Raises InvalidSignature unless the documented bytes are what was signed.
    log_key.public_key().verify(signature, CONTEXT + _canonical(checkpoint.body()))
    assert checkpoint.signed_message() == CONTEXT + _canonical(checkpoint.body())


@pytest.mark.parametrize(
    "prefix",
    [b"", b"cleanroom-log-checkpoint/2\n", b"cleanroom-receipt/1\n"],
    ids=["bare body", "another version", "another context"],
)
def test_a_signature_over_the_body_in_another_context_is_refused(
    filled_log: DecisionLog, log_key: ed25519.Ed25519PrivateKey, prefix: bytes
) -> None:
    genuine = filled_log.receipt(4)
    body = genuine.checkpoint.body()
    resigned = Checkpoint(
        **body,
        signature=base64.b64encode(sign(log_key, prefix + _canonical(body))).decode("ascii"),
    )
    with pytest.raises(LogIntegrityError, match="bad signature"):
        verify_checkpoint(resigned, filled_log.public_key)
    receipt = {**genuine.to_json(), "checkpoint": resigned.to_json()}
    with pytest.raises(LogIntegrityError, match="bad signature"):
        verify_receipt(receipt, filled_log.public_key)
