"""A string tensor whose elements run out before its element count is refused as truncated.

The up-front check (every element takes at least its 4-byte length prefix) lets
through data whose early elements are long enough to leave no room for the
length prefix of a later one. That prefix must be refused as truncated data
(InvalidTensor, a 422), never read past the end of the data (a builtin
``struct.error``, a 500).
"""

from __future__ import annotations

import json
import struct

import pytest

from cleanroom.errors import InvalidTensor
from cleanroom.wire.tensors import decode_tensors


def _strings_body(count: int, data: bytes) -> bytes:
    entry = {"name": "s", "dtype": "str", "shape": [count], "offset": 0, "nbytes": len(data)}
    header = json.dumps({"tensors": [entry]}).encode()
    start = 8 + len(header)
    return b"CRT1" + struct.pack(">I", len(header)) + header + bytes((-start) % 64) + data


def _element(text: bytes) -> bytes:
    return struct.pack(">I", len(text)) + text


CASES = [
    # (case, element count, string data)
    ("no room for the second prefix", 2, _element(b"abcd")),
    ("a partial second prefix", 2, _element(b"abcd") + b"\x00\x00"),
    ("no room for the third prefix", 3, _element(b"") + _element(b"abcdefgh")),
    ("a partial last prefix after several elements", 4, _element(b"ab") * 3 + b"\x00"),
]


@pytest.mark.parametrize(("case", "count", "data"), CASES, ids=[c[0] for c in CASES])
def test_string_data_that_ends_inside_an_elements_prefix_is_refused(
    case: str, count: int, data: bytes
) -> None:
    assert count * 4 <= len(data)  # past the up-front check
    with pytest.raises(InvalidTensor, match="string data is truncated") as refused:
        decode_tensors(_strings_body(count, data))
    assert refused.value.__cause__ is None


def test_string_data_that_holds_exactly_its_elements_decodes() -> None:
    decoded = decode_tensors(_strings_body(3, _element(b"") + _element(b"ab") + _element(b"c")))
    assert decoded["s"].tolist() == ["", "ab", "c"]
