"""A sealed stream's chunk framing is checked as strictly as its ciphertext.

The sender of an upload seals the data key and so can encrypt any chunks it
likes: framing that an honest sealer never produces must still be refused
with :class:`DecryptionFailed`. A flag byte other than 0 (more) or 1 (last),
a declared chunk length beyond the chunk size (refused from its 5-byte head,
before any of it is buffered), a non-last chunk shorter than the chunk size,
a last chunk before the declared size is reached, and bytes after the last
chunk. An empty stream still needs its (empty) last chunk. The opener with a
sink hands nothing on from such a stream.

Streams are built here from explicit parameters and chunks, each encrypted
correctly under the stream's key, nonce and associated data, so the framing
check under test is the only one that can refuse them.
"""

from __future__ import annotations

import hashlib
import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cleanroom.crypto import hpke
from cleanroom.crypto.envelope import KIND_STREAM, header
from cleanroom.crypto.keys import KeyPair, PublicKey
from cleanroom.crypto.stream import StreamOpener, StreamParams
from cleanroom.errors import AccessDenied, DecryptionFailed

SERVER = KeyPair()
ALICE = KeyPair()
INFO = b"cleanroom/v1 stream framing"
CHUNK = 1024


def _resolve(key_id: bytes) -> PublicKey:
    if key_id != ALICE.public.key_id:
        raise AccessDenied("unknown sender")
    return ALICE.public


def _stream_header(params: StreamParams) -> bytes:
    prefix = header(KIND_STREAM) + ALICE.public.key_id
    sealer = hpke.seal_auth(SERVER.public, ALICE, INFO)
    prefix += sealer.enc
    wrapped = sealer.seal(params.to_bytes(), aad=prefix + struct.pack(">I", 0))
    return prefix + struct.pack(">I", len(wrapped)) + wrapped


def _chunk(
    params: StreamParams,
    stream_header: bytes,
    counter: int,
    plaintext: bytes,
    *,
    last: bool,
    flag: int | None = None,
) -> bytes:
    """One chunk, encrypted as the STREAM construction does, framed with *flag*."""
    nonce = params.nonce_prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")
    aad = hashlib.sha256(stream_header).digest()
    ciphertext = AESGCM(params.key).encrypt(nonce, plaintext, aad)
    head = struct.pack(">BI", int(last) if flag is None else flag, len(ciphertext))
    return head + ciphertext


def _stream(total_size: int, chunks: list[tuple[bytes, bool, int | None]]) -> bytes:
    params = StreamParams(total_size=total_size, chunk_size=CHUNK)
    stream_header = _stream_header(params)
    body = b"".join(
        _chunk(params, stream_header, i, plain, last=last, flag=flag)
        for i, (plain, last, flag) in enumerate(chunks)
    )
    return stream_header + body


def _open(blob: bytes) -> bytearray:
    opener = StreamOpener.in_transit(
        recipient=SERVER, info=INFO, resolve_sender=_resolve, max_size=1 << 30
    )
    opener.feed(blob)
    return opener.finish()


A, B = os.urandom(CHUNK), os.urandom(CHUNK)


def test_the_builder_makes_streams_that_open() -> None:
    assert _open(
        _stream(2 * CHUNK + 5, [(A, False, None), (B, False, None), (b"12345", True, None)])
    ) == (A + B + b"12345")
    assert _open(_stream(0, [(b"", True, None)])) == b""


FRAMINGS = [
    pytest.param(2 * CHUNK, [(A, False, 2), (B, True, None)], id="flag 2 on a middle chunk"),
    pytest.param(2 * CHUNK, [(A, False, 0xFF), (B, True, None)], id="flag 255 on a middle chunk"),
    pytest.param(CHUNK, [(A, True, 3)], id="flag 3 on the last chunk"),
    pytest.param(
        CHUNK + 10, [(A[:10], False, None), (A, True, None)], id="a short chunk before the last"
    ),
    pytest.param(2 * CHUNK, [(A, True, None)], id="the last chunk before the declared size"),
    pytest.param(0, [], id="an empty stream without its last chunk"),
    pytest.param(CHUNK, [(A, False, None)], id="no chunk flagged last"),
    pytest.param(CHUNK, [(A, True, None), (b"", True, None)], id="a chunk after the last"),
]


@pytest.mark.parametrize(("total_size", "chunks"), FRAMINGS)
def test_framing_an_honest_sealer_never_makes_is_refused(
    total_size: int, chunks: list[tuple[bytes, bool, int | None]]
) -> None:
    with pytest.raises(DecryptionFailed):
        _open(_stream(total_size, chunks))


@pytest.mark.parametrize(
    "trailing",
    [pytest.param(b"\x00", id="1 byte"), pytest.param(b"\x00" * 4, id="4 bytes")],
)
def test_bytes_too_few_for_a_chunk_head_after_the_last_chunk_are_refused(trailing: bytes) -> None:
    blob = _stream(CHUNK, [(A, True, None)])
    with pytest.raises(DecryptionFailed):
        _open(blob + trailing)


@pytest.mark.parametrize(
    "declared",
    [
        pytest.param(CHUNK + 16 + 1, id="one byte over a chunk and its tag"),
        pytest.param(2**32 - 1, id="the largest u32"),
    ],
)
def test_a_chunk_declaring_more_than_a_chunk_is_refused_from_its_head(declared: int) -> None:
    params = StreamParams(total_size=3 * CHUNK, chunk_size=CHUNK)
    opener = StreamOpener.in_transit(
        recipient=SERVER, info=INFO, resolve_sender=_resolve, max_size=1 << 30
    )
    opener.feed(_stream_header(params))
    with pytest.raises(DecryptionFailed):
        opener.feed(struct.pack(">BI", 0, declared))


@pytest.mark.parametrize("declared", [0, 1, 15])
def test_a_chunk_shorter_than_its_tag_is_refused(declared: int) -> None:
    params = StreamParams(total_size=3 * CHUNK, chunk_size=CHUNK)
    opener = StreamOpener.in_transit(
        recipient=SERVER, info=INFO, resolve_sender=_resolve, max_size=1 << 30
    )
    opener.feed(_stream_header(params))
    with pytest.raises(DecryptionFailed):
        opener.feed(struct.pack(">BI", 1, declared) + bytes(declared))
