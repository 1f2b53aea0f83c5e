"""The ``u32 meta length | meta | body`` framing inside a sealed request.

The plaintext comes from a registered party, so HPKE authenticates it but
does not make it well formed. A plaintext shorter than its length prefix, or
whose prefix claims more meta than there is, is refused with the same opaque
:class:`DecryptionFailed` as every other malformed request: never an
exception from ``struct`` (a server error), and never opened with the body
read as part of the meta or the meta read short. The same holds for a
response: its meta is a JSON object, or the response does not open.
"""

from __future__ import annotations

import json
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cleanroom.crypto import envelope, hpke
from cleanroom.crypto.keys import KeyPair, PublicKey
from cleanroom.errors import AccessDenied, DecryptionFailed

SERVER = KeyPair()
ALICE = KeyPair()
CONFIG = bytes(range(48))
META = json.dumps({"request_id": "ab" * 16, "created": 1_700_000_000, "action": "predict"})


def _resolve(key_id: bytes) -> PublicKey:
    if key_id != ALICE.public.key_id:
        raise AccessDenied("unknown sender")
    return ALICE.public


def _sealed_plaintext(plaintext: bytes) -> bytes:
    """A request whose whole HPKE plaintext is *plaintext*, sealed as Alice would."""
    sealer = hpke.seal_auth(SERVER.public, ALICE, envelope.request_info("inst-1", CONFIG))
    prefix = envelope.header(envelope.KIND_REQUEST) + ALICE.public.key_id + sealer.enc
    return prefix + sealer.seal(plaintext, aad=prefix)


def _open(data: bytes) -> envelope.OpenedRequest:
    return envelope.open_request(
        data,
        recipient=SERVER,
        instance_id="inst-1",
        config_digest=CONFIG,
        resolve_sender=_resolve,
    )


def _framed(meta: bytes, body: bytes, *, claimed: int | None = None) -> bytes:
    length = len(meta) if claimed is None else claimed
    return struct.pack(">I", length) + meta + body


FRAMINGS: list[tuple[str, bytes]] = [
    ("empty plaintext", b""),
    ("one byte", b"\x00"),
    ("three bytes of a length", b"\x00\x00\x00"),
    (
        "meta longer than claimed, no body",
        _framed(META.encode(), b"", claimed=len(META) + 1),
    ),
    ("meta length past the end", _framed(META.encode(), b"", claimed=2**32 - 1)),
    (
        "body counted into the meta",
        _framed(META.encode(), b"  ", claimed=len(META) + 3),
    ),
]


@pytest.mark.parametrize(("name", "plaintext"), FRAMINGS, ids=[f[0] for f in FRAMINGS])
def test_a_misframed_plaintext_is_refused_opaquely(name: str, plaintext: bytes) -> None:
    with pytest.raises(DecryptionFailed) as caught:
        _open(_sealed_plaintext(plaintext))
    assert caught.value.__cause__ is None
    assert caught.value.message == DecryptionFailed().message


def test_the_exact_framing_opens() -> None:
    opened = _open(_sealed_plaintext(_framed(META.encode(), b"body")))
    assert (opened.request_id, opened.action, bytes(opened.body)) == (
        "ab" * 16,
        "predict",
        b"body",
    )
    opened = _open(_sealed_plaintext(_framed(META.encode(), b"")))
    assert bytes(opened.body) == b""


def _response_with_meta(meta_json: bytes) -> tuple[envelope.RequestSealer, bytes]:
    """A genuine request, and a response to it sealed around *meta_json* as it is."""
    sealer = envelope.seal_request(
        recipient=SERVER.public,
        sender=ALICE,
        instance_id="inst-1",
        config_digest=CONFIG,
        action="predict",
        body=b"x",
    )
    opened = _open(sealer.envelope)
    genuine = envelope.seal_response(opened, {}, b"")
    nonce = genuine[envelope.HEADER_SIZE : envelope.HEADER_SIZE + envelope.RESPONSE_NONCE_SIZE]
    key, iv = envelope._response_key(opened.response_secret, opened.enc, nonce)
    prefix = envelope.header(envelope.KIND_RESPONSE) + nonce
    return sealer, prefix + AESGCM(key).encrypt(iv, _framed(meta_json, b"result"), prefix)


@pytest.mark.parametrize("meta_json", [b"[1, 2]", b'"text"', b"7", b"null"])
def test_a_response_whose_meta_is_not_an_object_does_not_open(meta_json: bytes) -> None:
    sealer, response = _response_with_meta(meta_json)
    with pytest.raises(DecryptionFailed):
        envelope.open_response(sealer, response)


def test_a_response_whose_meta_is_an_object_opens() -> None:
    sealer, response = _response_with_meta(b'{"status": "ok"}')
    meta, body = envelope.open_response(sealer, response)
    assert (meta, bytes(body)) == ({"status": "ok"}, b"result")
