"""Chunked STREAM sealing of large blobs: round trips, truncation, reordering, limits."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from cleanroom.crypto.keys import KeyPair, PublicKey
from cleanroom.crypto.stream import StreamOpener, at_rest_sealer, seal_stream, seal_stream_at_rest
from cleanroom.errors import AccessDenied, DecryptionFailed, PayloadTooLarge, UnsupportedEnvelope

SERVER = KeyPair()
ALICE = KeyPair()
CHUNK = 4096
DATA = os.urandom(CHUNK * 3 + 123)
INFO = b"cleanroom/v1 stream test"


def resolve(key_id: bytes) -> PublicKey:
    if key_id != ALICE.public.key_id:
        raise AccessDenied("unknown sender")
    return ALICE.public


def seal_pieces(pieces: list[bytes]) -> list[bytes]:
    """Alice's stream of *pieces* to the server, in chunks of ``CHUNK``."""
    return list(
        seal_stream(
            pieces,
            total_size=sum(len(piece) for piece in pieces),
            recipient=SERVER.public,
            sender=ALICE,
            info=INFO,
            chunk_size=CHUNK,
        )
    )


def sealed_parts(data: bytes = DATA) -> list[bytes]:
    return seal_pieces([data[i : i + 1000] for i in range(0, len(data), 1000)])


def open_parts(parts: list[bytes], *, feed_size: int = 777, max_size: int = 1 << 30) -> bytearray:
    opener = StreamOpener.in_transit(
        recipient=SERVER, info=INFO, resolve_sender=resolve, max_size=max_size
    )
    blob = b"".join(parts)
    for i in range(0, len(blob), feed_size):
        opener.feed(blob[i : i + feed_size])
    return opener.finish()


@pytest.mark.parametrize("feed_size", [1, 777, 1 << 20])
def test_round_trip_whatever_the_feeding(feed_size: int) -> None:
    assert open_parts(sealed_parts(), feed_size=feed_size) == DATA


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK])
def test_round_trip_at_chunk_boundaries(size: int) -> None:
    data = os.urandom(size)
    assert open_parts(sealed_parts(data)) == data


@pytest.mark.parametrize(
    "sizes",
    [[CHUNK] * 3, [CHUNK, CHUNK, 1], [1, CHUNK, CHUNK - 1], [CHUNK - 1, 1, CHUNK], [2 * CHUNK]],
    ids=["whole-chunks", "tail", "offset", "refill", "double"],
)
def test_round_trip_with_whole_chunk_pieces(sizes: list[int]) -> None:
    # Pieces of exactly one chunk are encrypted without buffering; the last one
    # must still be flagged last, and order must hold when buffering resumes.
    data = os.urandom(sum(sizes))
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    pieces = [data[start : start + size] for start, size in zip(starts, sizes, strict=True)]
    assert open_parts(seal_pieces(pieces)) == data


CONTEXT = b"cleanroom/v1 model\x00i1"


def test_at_rest_round_trip_and_wrong_key_label_or_context() -> None:
    key, label = os.urandom(32), os.urandom(32)
    blob = b"".join(
        seal_stream_at_rest(
            [DATA],
            total_size=len(DATA),
            sealing_key=key,
            key_label=label,
            context=CONTEXT,
            chunk_size=CHUNK,
        )
    )
    opener = StreamOpener.at_rest(
        sealing_key=key, key_label=label, context=CONTEXT, max_size=1 << 30
    )
    opener.feed(blob)
    assert opener.finish() == DATA
    wrong = {
        "key": (os.urandom(32), label, CONTEXT),
        "label": (key, os.urandom(32), CONTEXT),
        "another instance": (key, label, b"cleanroom/v1 model\x00i2"),
        "a prefix of the context": (key, label, CONTEXT[:-1]),
        "no context": (key, label, b""),
    }
    for other_key, other_label, other_context in wrong.values():
        opener = StreamOpener.at_rest(
            sealing_key=other_key, key_label=other_label, context=other_context, max_size=1 << 30
        )
        with pytest.raises(DecryptionFailed):
            opener.feed(blob)


def swap_chunks(parts: list[bytes]) -> list[bytes]:
    return [parts[0], parts[2], parts[1], *parts[3:]]


def drop_last(parts: list[bytes]) -> list[bytes]:
    return parts[:-1]


def drop_middle(parts: list[bytes]) -> list[bytes]:
    return [parts[0], parts[1], *parts[3:]]


def duplicate_chunk(parts: list[bytes]) -> list[bytes]:
    return [parts[0], parts[1], parts[1], *parts[2:]]


def flag_first_as_last(parts: list[bytes]) -> list[bytes]:
    first = bytearray(parts[1])
    first[0] = 1
    return [parts[0], bytes(first), *parts[2:]]


def flip_in_chunk(parts: list[bytes]) -> list[bytes]:
    chunk = bytearray(parts[2])
    chunk[100] ^= 0x80
    return [parts[0], parts[1], bytes(chunk), *parts[3:]]


def flip_in_header(parts: list[bytes]) -> list[bytes]:
    header = bytearray(parts[0])
    header[-3] ^= 0x01
    return [bytes(header), *parts[1:]]


def trailing_garbage(parts: list[bytes]) -> list[bytes]:
    return [*parts, b"\x00" * 8]


def chunk_from_other_stream(parts: list[bytes]) -> list[bytes]:
    other = sealed_parts()
    return [parts[0], other[1], *parts[2:]]


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("reordered chunks", swap_chunks),
        ("truncated: last chunk dropped", drop_last),
        ("chunk dropped", drop_middle),
        ("chunk duplicated", duplicate_chunk),
        ("first chunk flagged last", flag_first_as_last),
        ("flipped bit in a chunk", flip_in_chunk),
        ("flipped bit in the wrapped header", flip_in_header),
        ("bytes after the last chunk", trailing_garbage),
        ("chunk spliced from another stream", chunk_from_other_stream),
    ],
)
def test_stream_mutations_are_refused(
    name: str, mutate: Callable[[list[bytes]], list[bytes]]
) -> None:
    with pytest.raises(DecryptionFailed):
        open_parts(mutate(sealed_parts()))


def test_declared_size_over_the_limit_is_refused_before_allocation() -> None:
    with pytest.raises(PayloadTooLarge):
        open_parts(sealed_parts(), max_size=len(DATA) - 1)


def test_unknown_sender_is_refused() -> None:
    parts = list(
        seal_stream(
            [DATA],
            total_size=len(DATA),
            recipient=SERVER.public,
            sender=KeyPair(),
            info=INFO,
            chunk_size=CHUNK,
        )
    )
    with pytest.raises(AccessDenied):
        open_parts(parts)


def test_not_a_stream_is_refused() -> None:
    opener = StreamOpener.in_transit(
        recipient=SERVER, info=INFO, resolve_sender=resolve, max_size=1 << 30
    )
    with pytest.raises(UnsupportedEnvelope):
        opener.feed(b"PK\x03\x04 this is a zip file, not a sealed stream")


def test_source_length_must_match_the_declared_size() -> None:
    with pytest.raises(ValueError, match="longer"):
        list(seal_stream([DATA], total_size=10, recipient=SERVER.public, sender=ALICE, info=INFO))
    with pytest.raises(ValueError, match="shorter"):
        list(
            seal_stream(
                [DATA], total_size=len(DATA) + 1, recipient=SERVER.public, sender=ALICE, info=INFO
            )
        )


class Chunks:
    """A sink that keeps a copy of each chunk it is handed (views are reused)."""

    def __init__(self) -> None:
        self.total_size: int | None = None
        self.chunks: list[bytes] = []

    def begin(self, total_size: int) -> None:
        self.total_size = total_size

    def write(self, chunk: memoryview) -> None:
        self.chunks.append(bytes(chunk))


def open_into_sink(parts: list[bytes], sink: Chunks, *, feed_size: int = 777) -> StreamOpener:
    opener = StreamOpener.in_transit(
        recipient=SERVER, info=INFO, resolve_sender=resolve, max_size=1 << 30, sink=sink
    )
    blob = b"".join(parts)
    for i in range(0, len(blob), feed_size):
        opener.feed(blob[i : i + feed_size])
    return opener


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK * 3 + 123])
def test_a_sink_gets_each_authenticated_chunk_in_order(size: int) -> None:
    data = os.urandom(size)
    sink = Chunks()
    open_into_sink(sealed_parts(data), sink).end()
    assert sink.total_size == size
    assert b"".join(sink.chunks) == data
    assert all(len(chunk) <= CHUNK for chunk in sink.chunks)


def test_a_sink_never_gets_a_tampered_chunk_and_a_truncated_stream_does_not_end() -> None:
    sink = Chunks()
    with pytest.raises(DecryptionFailed):
        open_into_sink(flip_in_chunk(sealed_parts()), sink)  # the second chunk is flipped
    assert sink.chunks == [DATA[:CHUNK]]  # only what authenticated before it

    sink = Chunks()
    opener = open_into_sink(drop_last(sealed_parts()), sink)
    with pytest.raises(DecryptionFailed):
        opener.end()


@pytest.mark.parametrize("piece", [1000, CHUNK, CHUNK + 1])
def test_chunk_sealer_takes_pieces_from_a_reused_buffer(piece: int) -> None:
    key, label = os.urandom(32), os.urandom(32)
    data = os.urandom(CHUNK * 3)
    header, sealer = at_rest_sealer(
        total_size=len(data), sealing_key=key, key_label=label, context=CONTEXT, chunk_size=CHUNK
    )
    parts = [header]
    reused = bytearray(piece)
    for start in range(0, len(data), piece):
        size = len(data[start : start + piece])
        reused[:size] = data[start : start + piece]
        parts += sealer.push(memoryview(reused)[:size])
        reused[:] = bytes(piece)  # overwritten before the next piece
    parts += sealer.close()
    opener = StreamOpener.at_rest(
        sealing_key=key, key_label=label, context=CONTEXT, max_size=1 << 20
    )
    opener.feed(b"".join(parts))
    assert opener.finish() == data
    with pytest.raises(ValueError, match="longer"):
        sealer.push(b"x")
