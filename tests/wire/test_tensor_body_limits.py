"""The limits of a tensor body: the magic, the header's size (at most 1 MiB of JSON),
the number of tensors (at most 4096), and the largest shape numpy can represent;
and the rank of a JSON input (at most 32, as for a tensor body).

Each refused body below is otherwise a valid encoding, so only the one limit
refuses it; the bodies at the limits still decode.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from cleanroom.errors import InvalidTensor
from cleanroom.wire.tensors import decode_tensors, encode_tensors, tensors_from_json

MAX_HEADER = 1024 * 1024
MAX_TENSORS = 4096
INTP_MAX = int(np.iinfo(np.intp).max)


def _frame(header: bytes, data: bytes = b"", magic: bytes = b"CRT1") -> bytes:
    start = 8 + len(header)
    return magic + struct.pack(">I", len(header)) + header + bytes((-start) % 64) + data


def _header_of_size(size: int) -> bytes:
    """A valid header for one uint8 [1] tensor, padded with JSON whitespace to *size* bytes."""
    entry = {"name": "x", "dtype": "uint8", "shape": [1], "offset": 0, "nbytes": 1}
    header = json.dumps({"tensors": [entry]}).encode()
    return header + b" " * (size - len(header))


@pytest.mark.parametrize(
    "magic", [b"CRT0", b"crt1", b"\x00\x00\x00\x00", b"TRC1"], ids=lambda m: repr(m)
)
def test_a_body_without_the_magic_is_refused(magic: bytes) -> None:
    body = encode_tensors({"x": np.arange(3, dtype=np.float32)})
    assert decode_tensors(body)["x"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(InvalidTensor, match="expected magic CRT1"):
        decode_tensors(magic + body[4:])


@pytest.mark.parametrize("size", [MAX_HEADER + 1, MAX_HEADER + 64, 2 * MAX_HEADER])
def test_a_header_larger_than_one_mebibyte_is_refused(size: int) -> None:
    with pytest.raises(InvalidTensor, match="truncated or too large"):
        decode_tensors(_frame(_header_of_size(size), b"\x07"))


def test_a_header_of_exactly_one_mebibyte_decodes() -> None:
    assert decode_tensors(_frame(_header_of_size(MAX_HEADER), b"\x07"))["x"].tolist() == [7]


def _empty_tensors(count: int) -> bytes:
    entries = [
        {"name": f"t{n}", "dtype": "uint8", "shape": [0], "offset": 0, "nbytes": 0}
        for n in range(count)
    ]
    return _frame(json.dumps({"tensors": entries}).encode())


def test_more_than_4096_tensors_are_refused() -> None:
    with pytest.raises(InvalidTensor, match="at most 4096 tensors"):
        decode_tensors(_empty_tensors(MAX_TENSORS + 1))


def test_4096_tensors_decode() -> None:
    assert len(decode_tensors(_empty_tensors(MAX_TENSORS))) == MAX_TENSORS


def _empty_tensor_of_shape(shape: list[int]) -> bytes:
    entry = {"name": "x", "dtype": "uint8", "shape": shape, "offset": 0, "nbytes": 0}
    return _frame(json.dumps({"tensors": [entry]}).encode())


def test_the_largest_empty_shape_numpy_can_represent_decodes() -> None:
    # One byte per element times 2**63 - 1 is exactly numpy's index limit: allowed.
    shape = [INTP_MAX, 0]
    assert decode_tensors(_empty_tensor_of_shape(shape))["x"].shape == tuple(shape)
    with pytest.raises(InvalidTensor, match="too large"):
        decode_tensors(_empty_tensor_of_shape([INTP_MAX, 2, 0]))


def _nested(depth: int) -> object:
    value: object = 1.0
    for _ in range(depth):
        value = [value]
    return value


def test_a_json_input_of_rank_32_reads_and_of_rank_33_is_refused() -> None:
    dtypes = {"x": "float32"}
    assert tensors_from_json(json.dumps({"x": _nested(32)}), dtypes)["x"].ndim == 32
    with pytest.raises(InvalidTensor, match="more than 32 dimensions"):
        tensors_from_json(json.dumps({"x": _nested(33)}), dtypes)
