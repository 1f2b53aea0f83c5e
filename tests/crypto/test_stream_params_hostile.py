"""Hostile stream parameters: authentic (the sender sealed them) but malformed.

A party allowed to upload can seal any bytes as a stream's parameters. Whatever
they hold, opening refuses them with the one opaque :class:`DecryptionFailed`,
never a builtin exception (a 500 whose traceback would carry the parameters,
data key included, to the operator's log).
"""

from __future__ import annotations

import base64
import json
import os
import struct
import traceback
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cleanroom.crypto import hpke
from cleanroom.crypto.envelope import KIND_AT_REST, KIND_STREAM, header
from cleanroom.crypto.keys import KeyPair, PublicKey
from cleanroom.crypto.stream import AT_REST_SUITE_ID, StreamOpener, StreamParams
from cleanroom.errors import AccessDenied, DecryptionFailed

SERVER = KeyPair()
ALICE = KeyPair()
INFO = b"cleanroom/v1 stream hostile params"
KEY = os.urandom(32)
KEY_B64 = base64.b64encode(KEY).decode()
OPAQUE = DecryptionFailed().message


def _good() -> dict[str, Any]:
    return {
        "total_size": 10,
        "chunk_size": 1024,
        "key": KEY_B64,
        "nonce_prefix": base64.b64encode(b"\x01" * 7).decode(),
        "request_id": "0123456789abcdef",
        "created": 1_700_000_000,
    }


def _with(**changes: Any) -> bytes:
    doc = _good()
    for key, value in changes.items():
        if value is _DELETE:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc).encode()


def _raw(key: str, literal: str) -> bytes:
    """The good parameters with *key*'s value spelled as the raw JSON *literal*."""
    doc = _good()
    doc[key] = "@@"
    return json.dumps(doc).encode().replace(b'"@@"', literal.encode())


_DELETE = object()

# mutation -> the parameters' bytes; every one is refused the same opaque way
CASES: list[tuple[str, bytes]] = [
    # The reported defect: Python's json reads these, int() then raises.
    ("total_size Infinity", _raw("total_size", "Infinity")),
    ("total_size -Infinity", _raw("total_size", "-Infinity")),
    ("total_size NaN", _raw("total_size", "NaN")),
    ("chunk_size NaN", _raw("chunk_size", "NaN")),
    ("created Infinity", _raw("created", "Infinity")),
    ("a huge float", _raw("total_size", "1e999")),
    # sizes and times that are not integers, or out of range
    ("total_size a float", _with(total_size=10.0)),
    ("total_size a string", _with(total_size="10")),
    ("total_size a boolean", _with(total_size=True)),
    ("total_size null", _with(total_size=None)),
    ("total_size negative", _with(total_size=-1)),
    ("total_size 2**63", _with(total_size=2**63)),
    ("total_size 10**400", _with(total_size=10**400)),
    ("total_size too long to read", _raw("total_size", "9" * 5000)),
    ("chunk_size under 1 KiB", _with(chunk_size=1023)),
    ("chunk_size over 64 MiB", _with(chunk_size=64 * 1024 * 1024 + 1)),
    ("chunk_size a boolean", _with(chunk_size=True)),
    ("chunk_size a list", _with(chunk_size=[1024])),
    ("chunk counter past u32", _with(total_size=2**32 * 1024, chunk_size=1024)),
    ("created negative", _with(created=-1)),
    ("created a string", _with(created="now")),
    ("created a float", _with(created=1.5)),
    ("created 2**63", _with(created=2**63)),
    # keys and nonces
    ("key not base64", _with(key="not base64!")),
    ("key too short", _with(key=base64.b64encode(b"k" * 31).decode())),
    ("key too long", _with(key=base64.b64encode(b"k" * 4096).decode())),
    ("key not ASCII", _with(key="é" * 44)),
    ("key a number", _with(key=1234)),
    ("key a list", _with(key=[KEY_B64])),
    ("nonce_prefix too short", _with(nonce_prefix=base64.b64encode(b"n" * 6).decode())),
    ("nonce_prefix null", _with(nonce_prefix=None)),
    # request ids (the replay check keys on their UTF-8 bytes)
    ("request_id a number", _with(request_id=7)),
    ("request_id a list", _with(request_id=["a"])),
    ("request_id empty", _with(request_id="")),
    ("request_id too long", _with(request_id="r" * 257)),
    ("request_id a lone surrogate", _with(request_id="\ud800")),
    # missing members
    *[(f"{key} missing", _with(**{key: _DELETE})) for key in _good()],
    # documents that are not objects
    ("a list", b"[1, 2]"),
    ("a string", b'"params"'),
    ("a number", b"1024"),
    ("null", b"null"),
    ("not JSON", b"params"),
    ("not UTF-8", b'{"key": "\xff"}'),
    ("empty", b""),
    ("deeply nested", b"[" * 4000 + b"]" * 4000),
    ("deeply nested member", _raw("request_id", "[" * 4000 + "]" * 4000)),
]
IDS = [c[0] for c in CASES]


def _assert_opaque(exc: DecryptionFailed) -> None:
    """One message whatever went wrong, and nothing chained that could quote the key."""
    assert exc.message == OPAQUE
    assert exc.__cause__ is None
    assert KEY_B64 not in "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(("mutation", "params"), CASES, ids=IDS)
def test_malformed_params_are_refused_opaquely(mutation: str, params: bytes) -> None:
    with pytest.raises(DecryptionFailed) as caught:
        StreamParams.from_bytes(params)
    _assert_opaque(caught.value)


def _resolve(key_id: bytes) -> PublicKey:
    if key_id != ALICE.public.key_id:
        raise AccessDenied("unknown sender")
    return ALICE.public


def _in_transit_header(params: bytes) -> bytes:
    """A kind-3 stream header whose wrapped parameters are exactly *params*."""
    prefix = header(KIND_STREAM) + ALICE.public.key_id
    sealer = hpke.seal_auth(SERVER.public, ALICE, INFO)
    prefix += sealer.enc
    wrapped = sealer.seal(params, aad=prefix + struct.pack(">I", 0))
    return prefix + struct.pack(">I", len(wrapped)) + wrapped


AT_REST_CONTEXT = b"cleanroom/v1 model\x00i1"


def _at_rest_header(params: bytes, sealing_key: bytes, label: bytes) -> bytes:
    nonce = os.urandom(12)
    prefix = header(KIND_AT_REST, AT_REST_SUITE_ID) + label + nonce
    aad = prefix + struct.pack(">I", 0) + AT_REST_CONTEXT
    wrapped = AESGCM(sealing_key).encrypt(nonce, params, aad)
    return prefix + struct.pack(">I", len(wrapped)) + wrapped


# Every case but those too long to wrap (the reader refuses wrapped params over 4 KiB).
WRAPPABLE = [c for c in CASES if len(c[1]) < 4000]


@pytest.mark.parametrize(("mutation", "params"), WRAPPABLE, ids=[c[0] for c in WRAPPABLE])
def test_an_in_transit_stream_with_malformed_params_is_refused(
    mutation: str, params: bytes
) -> None:
    opener = StreamOpener.in_transit(
        recipient=SERVER, info=INFO, resolve_sender=_resolve, max_size=1 << 30
    )
    with pytest.raises(DecryptionFailed) as caught:
        opener.feed(_in_transit_header(params))
    _assert_opaque(caught.value)
    assert opener.params is None


@pytest.mark.parametrize(("mutation", "params"), WRAPPABLE, ids=[c[0] for c in WRAPPABLE])
def test_an_at_rest_blob_with_malformed_params_is_refused(mutation: str, params: bytes) -> None:
    sealing_key, label = os.urandom(32), os.urandom(32)
    opener = StreamOpener.at_rest(
        sealing_key=sealing_key, key_label=label, context=AT_REST_CONTEXT, max_size=1 << 30
    )
    with pytest.raises(DecryptionFailed) as caught:
        opener.feed(_at_rest_header(params, sealing_key, label))
    _assert_opaque(caught.value)


def test_well_formed_params_still_open_at_their_bounds() -> None:
    for params in (
        _with(),
        _with(total_size=0, chunk_size=64 * 1024 * 1024, created=0),
        _with(total_size=2**32 * 1024 - 1, chunk_size=1024, request_id="é" * 256),
    ):
        parsed = StreamParams.from_bytes(params)
        assert parsed.key == KEY
        assert StreamParams.from_bytes(parsed.to_bytes()) == parsed
    opener = StreamOpener.in_transit(
        recipient=SERVER, info=INFO, resolve_sender=_resolve, max_size=1 << 30
    )
    opener.feed(_in_transit_header(_with()))
    assert opener.params is not None
    assert opener.params.total_size == 10
