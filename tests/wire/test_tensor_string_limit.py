"""String elements are decoded one at a time in Python: a request holds at most
MAX_STRING_ELEMENTS of them, refused before any is decoded or allocated."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from cleanroom.errors import InvalidTensor
from cleanroom.wire import tensors
from cleanroom.wire.tensors import MAX_STRING_ELEMENTS, decode_tensors, encode_tensors


def _empty_strings(*counts: int) -> bytes:
    """A body of string tensors of *counts* empty elements each (4 bytes per element)."""
    entries, offset = [], 0
    for index, count in enumerate(counts):
        entries.append(
            {
                "name": f"s{index}",
                "dtype": "str",
                "shape": [count],
                "offset": offset,
                "nbytes": 4 * count,
            }
        )
        offset += 4 * count
    header = json.dumps({"tensors": entries}).encode()
    start = 8 + len(header)
    return b"CRT1" + struct.pack(">I", len(header)) + header + bytes(-start % 64) + bytes(offset)


def _never(*args: Any) -> Any:
    raise AssertionError("string elements were decoded")


def test_two_million_string_elements_are_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = _empty_strings(2_000_000)
    monkeypatch.setattr(tensors, "_decode_strings", _never)
    with pytest.raises(InvalidTensor, match=f"at most {MAX_STRING_ELEMENTS} string elements"):
        decode_tensors(body)


def test_the_limit_counts_every_string_tensor_of_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tensors, "MAX_STRING_ELEMENTS", 10)
    assert decode_tensors(_empty_strings(6, 4))["s1"].shape == (4,)
    with pytest.raises(InvalidTensor, match="at most 10 string elements"):
        decode_tensors(_empty_strings(6, 5))


def test_strings_up_to_the_limit_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensors, "MAX_STRING_ELEMENTS", 3)
    words = np.array(["a", "bé", ""], dtype=object)
    decoded = decode_tensors(encode_tensors({"w": words, "x": np.ones(100, np.float32)}))
    assert decoded["w"].tolist() == ["a", "bé", ""]
