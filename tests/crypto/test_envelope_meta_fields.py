"""The meta fields of a sealed request: their types first, then their bounds.

``request_id`` and ``action`` are strings of 1 to 256 characters and
``created`` an integer from 0 to 2**63 - 1. A registered party that sends a
list or an object of the right *length* instead of a string (``["ab"]``,
``{"predict": 1}``) is refused like any other malformed meta, with the opaque
:class:`DecryptionFailed`: such a value must never reach the replay cache or
the policy as an ``action``. The bounds themselves are inclusive.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from cleanroom.crypto import envelope, hpke
from cleanroom.crypto.keys import KeyPair, PublicKey
from cleanroom.errors import AccessDenied, DecryptionFailed

SERVER = KeyPair()
ALICE = KeyPair()
CONFIG = bytes(range(48))
GOOD: dict[str, Any] = {
    "request_id": "ab" * 16,
    "created": 1_700_000_000,
    "action": "predict",
}


def _resolve(key_id: bytes) -> PublicKey:
    if key_id != ALICE.public.key_id:
        raise AccessDenied("unknown sender")
    return ALICE.public


def _open_with_meta(**changes: Any) -> envelope.OpenedRequest:
    """Seal, as Alice, a request whose meta is GOOD with *changes*; open it."""
    meta = json.dumps({**GOOD, **changes}).encode()
    sealer = hpke.seal_auth(SERVER.public, ALICE, envelope.request_info("inst-1", CONFIG))
    prefix = envelope.header(envelope.KIND_REQUEST) + ALICE.public.key_id + sealer.enc
    sealed = prefix + sealer.seal(struct.pack(">I", len(meta)) + meta + b"body", aad=prefix)
    return envelope.open_request(
        sealed,
        recipient=SERVER,
        instance_id="inst-1",
        config_digest=CONFIG,
        resolve_sender=_resolve,
    )


NOT_TEXT: list[tuple[str, dict[str, Any]]] = [
    ("request id a one-element list", {"request_id": ["ab"]}),
    ("request id a list of 32 strings", {"request_id": ["a"] * 32}),
    ("request id an object", {"request_id": {"ab": 1}}),
    ("action a one-element list", {"action": ["predict"]}),
    ("action an object", {"action": {"predict": True}}),
]


@pytest.mark.parametrize(("name", "changes"), NOT_TEXT, ids=[n[0] for n in NOT_TEXT])
def test_a_text_field_that_is_a_container_is_refused(name: str, changes: dict[str, Any]) -> None:
    with pytest.raises(DecryptionFailed) as caught:
        _open_with_meta(**changes)
    assert caught.value.__cause__ is None


BOUNDS: list[tuple[str, dict[str, Any], bool]] = [
    ("request id of 256 characters", {"request_id": "a" * 256}, True),
    ("request id of 257 characters", {"request_id": "a" * 257}, False),
    ("action of one character", {"action": "p"}, True),
    ("action of 256 characters", {"action": "p" * 256}, True),
    ("action of 257 characters", {"action": "p" * 257}, False),
    ("created 0", {"created": 0}, True),
    ("created 2**63 - 1", {"created": 2**63 - 1}, True),
    ("created 2**63", {"created": 2**63}, False),
]


@pytest.mark.parametrize(("name", "changes", "opens"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_meta_bounds_are_inclusive(name: str, changes: dict[str, Any], opens: bool) -> None:
    if opens:
        opened = _open_with_meta(**changes)
        assert opened.request_id == changes.get("request_id", GOOD["request_id"])
        assert opened.action == changes.get("action", GOOD["action"])
        assert opened.created == changes.get("created", GOOD["created"])
    else:
        with pytest.raises(DecryptionFailed):
            _open_with_meta(**changes)
