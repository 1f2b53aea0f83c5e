"""The binary tensor encoding: every supported dtype round-trips; malformed bodies are refused."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from cleanroom.errors import InvalidTensor
from cleanroom.wire.tensors import (
    SUPPORTED_DTYPES,
    decode_tensors,
    encode_tensors,
    tensors_from_json,
)


@pytest.mark.parametrize("dtype", sorted(SUPPORTED_DTYPES))
def test_every_dtype_round_trips_exactly(dtype: str) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((2, 3, 4)) * 100).astype(dtype)
    out = decode_tensors(encode_tensors({"x": array}))["x"]
    assert out.dtype == array.dtype
    assert out.shape == array.shape
    np.testing.assert_array_equal(out, array)


def test_strings_scalars_empty_and_several_tensors() -> None:
    tensors = {
        "text": np.array([["héllo", ""], ["a", "bc"]]),
        "scalar": np.int64(7),
        "empty": np.zeros((0, 5), np.float32),
        "flags": np.array([True, False]),
    }
    out = decode_tensors(encode_tensors(tensors))
    assert out["text"].tolist() == [["héllo", ""], ["a", "bc"]]
    assert out["scalar"].shape == ()
    assert out["scalar"] == 7
    assert out["empty"].shape == (0, 5)
    assert out["flags"].tolist() == [True, False]


def test_numeric_tensors_decode_without_copying() -> None:
    body = encode_tensors({"x": np.arange(1000, dtype=np.float32)})
    out = decode_tensors(body)["x"]
    assert not out.flags.owndata
    assert not out.flags.writeable


def _body(entries: list[dict[str, object]], data: bytes) -> bytes:
    header = json.dumps({"tensors": entries}).encode()
    start = 8 + len(header)
    return b"CRT1" + struct.pack(">I", len(header)) + header + bytes((-start) % 64) + data


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("not a tensor body", b"{}", "magic"),
        ("truncated header", b"CRT1" + struct.pack(">I", 100) + b"{}", "truncated"),
        ("header not json", b"CRT1" + struct.pack(">I", 3) + b"abc", "JSON"),
        (
            "unknown dtype",
            _body(
                [{"name": "x", "dtype": "float128", "shape": [1], "offset": 0, "nbytes": 16}],
                bytes(16),
            ),
            "not supported",
        ),
        (
            "size mismatch",
            _body(
                [{"name": "x", "dtype": "float32", "shape": [4], "offset": 0, "nbytes": 8}],
                bytes(8),
            ),
            "needs 16 bytes",
        ),
        (
            "data past the end",
            _body(
                [{"name": "x", "dtype": "float32", "shape": [4], "offset": 0, "nbytes": 16}],
                bytes(8),
            ),
            "past the end",
        ),
        (
            "element count that wraps around 64 bits",
            _body(
                [
                    {
                        "name": "x",
                        "dtype": "float32",
                        "shape": [2**32, 2**32],
                        "offset": 0,
                        "nbytes": 0,
                    }
                ],
                b"",
            ),
            "needs 73786976294838206464 bytes",
        ),
        (
            "negative shape",
            _body(
                [{"name": "x", "dtype": "float32", "shape": [-1], "offset": 0, "nbytes": 0}], b""
            ),
            "non-negative",
        ),
        (
            "duplicate name",
            _body(
                [{"name": "x", "dtype": "uint8", "shape": [1], "offset": 0, "nbytes": 1}] * 2,
                b"\x01",
            ),
            "twice",
        ),
        (
            "empty name",
            _body(
                [{"name": "", "dtype": "uint8", "shape": [1], "offset": 0, "nbytes": 1}], b"\x01"
            ),
            "name",
        ),
        (
            "bad utf-8",
            _body(
                [{"name": "s", "dtype": "str", "shape": [1], "offset": 0, "nbytes": 5}],
                struct.pack(">I", 1) + b"\xff",
            ),
            "UTF-8",
        ),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(name: str, body: bytes, message: str) -> None:
    with pytest.raises(InvalidTensor, match=message):
        decode_tensors(body)


def test_json_inputs_take_the_models_dtypes() -> None:
    out = tensors_from_json(b'{"a": [[1, 2]], "b": ["x"]}', {"a": "float16", "b": "str"})
    assert out["a"].dtype == np.float16
    assert out["b"].tolist() == ["x"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be an object"),
        (b'{"zzz": [1]}', "no input 'zzz'"),
        (b'{"a": [[1], [2, 3]]}', "cannot be read as float32"),
    ],
)
def test_bad_json_inputs_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidTensor, match=message):
        tensors_from_json(data, {"a": "float32"})
