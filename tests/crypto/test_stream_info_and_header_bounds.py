"""What an upload's HPKE ``info`` binds, and the bound on a stream's wrapped header.

``stream_info`` names the upload's purpose, the instance and the attested
configuration digest (48 bytes, SHA-384; any other length is refused), each
field separated so that no two different triples give the same ``info``: an
upload sealed as one thing never opens as another. The SDK and the clean room
compute it independently, so its layout is pinned here.

A stream header declares the length of its wrapped parameters; one over
4096 bytes is refused as soon as that length is read, before the opener
buffers what it announces.
"""

from __future__ import annotations

import struct

import pytest

from cleanroom.crypto import hpke
from cleanroom.crypto.envelope import KIND_STREAM, header
from cleanroom.crypto.keys import KeyPair, PublicKey
from cleanroom.crypto.stream import StreamOpener, seal_stream, stream_info
from cleanroom.errors import DecryptionFailed

DIGEST = bytes(range(48))
SERVER = KeyPair()
ALICE = KeyPair()


def test_the_info_layout() -> None:
    assert stream_info("i1", "model", DIGEST) == (
        b"cleanroom/v1 stream\x00model\x00i1\x00" + DIGEST
    )


@pytest.mark.parametrize("size", [0, 32, 47, 49, 64])
def test_a_configuration_digest_of_another_length_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="48 bytes"):
        stream_info("i1", "model", bytes(size))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        pytest.param(("i1", "model"), ("i2", "model"), id="another instance"),
        pytest.param(("i1", "model"), ("i1", "audit-members"), id="another purpose"),
        pytest.param(("xi1", "model"), ("i1", "modelx"), id="a character moved across"),
        pytest.param(("i1", "audit-members"), ("members", "audit-i1"), id="fields swapped"),
    ],
)
def test_different_uploads_have_different_infos(
    one: tuple[str, str], other: tuple[str, str]
) -> None:
    assert stream_info(*one, DIGEST) != stream_info(*other, DIGEST)


def test_a_stream_sealed_as_one_upload_does_not_open_as_another() -> None:
    sealed = b"".join(
        seal_stream(
            [b"model bytes"],
            total_size=11,
            recipient=SERVER.public,
            sender=ALICE,
            info=stream_info("xi1", "model", DIGEST),
        )
    )
    opener = StreamOpener.in_transit(
        recipient=SERVER,
        info=stream_info("i1", "modelx", DIGEST),
        resolve_sender=lambda _key_id: ALICE.public,
        max_size=1 << 20,
    )
    with pytest.raises(DecryptionFailed):
        opener.feed(sealed)


def _resolve(_key_id: bytes) -> PublicKey:
    return ALICE.public


@pytest.mark.parametrize("wrapped_len", [4097, 2**32 - 1])
def test_an_oversized_wrapped_header_is_refused_from_its_length(wrapped_len: int) -> None:
    prefix = header(KIND_STREAM) + ALICE.public.key_id + bytes(hpke.ENC_SIZE)
    opener = StreamOpener.in_transit(
        recipient=SERVER, info=b"info", resolve_sender=_resolve, max_size=1 << 20
    )
    with pytest.raises(DecryptionFailed):
        opener.feed(prefix + struct.pack(">I", wrapped_len))
    assert opener.params is None
