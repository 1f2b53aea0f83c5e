"""Tensors fill the shared slot up to its last byte, and never one byte past it."""

from __future__ import annotations

import mmap

import numpy as np

from cleanroom.runtime.sandbox.slot import write_tensors
from cleanroom.wire.tensors import decode_tensors, encode_tensors

SLOT = 4096


def _strings_encoding_to(length: int) -> dict[str, np.ndarray]:
    """One string tensor whose encoding is exactly *length* bytes."""
    base = len(encode_tensors({"s": np.array([""], dtype=object)}))
    tensors = {"s": np.array(["w" * (length - base)], dtype=object)}
    assert len(encode_tensors(tensors)) == length
    return tensors


def _floats_encoding_to(length: int) -> dict[str, np.ndarray]:
    """One float32 tensor whose encoding is exactly *length* bytes."""
    for count in range(length // 4, 0, -1):
        tensors = {"x": np.arange(count, dtype=np.float32)}
        if len(encode_tensors(tensors)) == length:
            return tensors
    raise AssertionError(f"no float32 tensor encodes to {length} bytes")


def test_strings_that_fill_the_slot_exactly_are_written() -> None:
    slot = mmap.mmap(-1, SLOT)
    tensors = _strings_encoding_to(SLOT)
    assert write_tensors(slot, tensors) == SLOT
    assert decode_tensors(bytes(slot))["s"].tolist() == tensors["s"].tolist()


def test_strings_one_byte_past_the_slot_are_left_to_the_caller() -> None:
    slot = mmap.mmap(-1, SLOT)
    for past in (1, 2, 63, 64):
        assert write_tensors(slot, _strings_encoding_to(SLOT + past)) is None
    assert slot[:] == bytes(SLOT)  # nothing written


def test_numbers_that_fill_the_slot_exactly_are_written() -> None:
    slot = mmap.mmap(-1, SLOT)
    tensors = _floats_encoding_to(SLOT)
    assert write_tensors(slot, tensors) == SLOT
    np.testing.assert_array_equal(decode_tensors(bytes(slot))["x"], tensors["x"])
    assert write_tensors(mmap.mmap(-1, SLOT - 4), tensors) is None
