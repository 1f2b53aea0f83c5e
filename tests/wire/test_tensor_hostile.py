"""Hostile tensor bodies and JSON inputs: every one is an InvalidTensor that quotes no data.

A tensor body is decrypted request data chosen by whoever sealed it. Whatever
its bytes, decoding raises :class:`InvalidTensor` (a 422 on the wire), never
a builtin exception (a 500 whose traceback, with the decrypted data in its
message, would land in the operator's log).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import struct
import traceback
from typing import Any

import numpy as np
import pytest

from cleanroom.errors import InvalidTensor
from cleanroom.wire.tensors import decode_tensors, encode_tensors, tensors_from_json

# A tensor name long enough that echoing it would be "at length"; its tail must never
# appear in a message or a traceback.
SECRET_NAME = "patient-0042-" + "x" * 200 + "-TAIL-OF-THE-SECRET-NAME"
SECRET_TAIL = "TAIL-OF-THE-SECRET-NAME"
INTP_MAX = int(np.iinfo(np.intp).max)


def _raw(header: bytes, data: bytes = b"") -> bytes:
    start = 8 + len(header)
    return b"CRT1" + struct.pack(">I", len(header)) + header + bytes((-start) % 64) + data


def _body(entries: list[Any], data: bytes = b"") -> bytes:
    return _raw(json.dumps({"tensors": entries}).encode(), data)


def _entry(**changes: Any) -> dict[str, Any]:
    """A valid float32 [2] entry over 8 data bytes, with *changes* (None deletes a key)."""
    entry: dict[str, Any] = {
        "name": SECRET_NAME,
        "dtype": "float32",
        "shape": [2],
        "offset": 0,
        "nbytes": 8,
    }
    for key, value in changes.items():
        if value is _DELETE:
            del entry[key]
        else:
            entry[key] = value
    return entry


_DELETE = object()


def _refused(body: bytes) -> InvalidTensor:
    with pytest.raises(InvalidTensor) as caught:
        decode_tensors(body)
    return caught.value


def _assert_quotes_no_secret(exc: InvalidTensor, *secrets: str) -> None:
    """The message is short, and neither it nor the traceback the operator could see
    carries the secret (no chained builtin exception quoting it)."""
    assert len(exc.message) < 300, exc.message
    shown = "".join(traceback.format_exception(exc))
    for secret in (SECRET_TAIL, *secrets):
        assert secret not in shown
    assert exc.__cause__ is None


# entry mutation -> the refusal it gets ------------------------------------------------

ENTRY_CASES: list[tuple[str, dict[str, Any], bytes, str]] = [
    # The reported defect: no elements, but sizes numpy cannot multiply.
    (
        "zero elements, product past 2**64",
        {"shape": [4242424242, 4242424242, 0], "nbytes": 0},
        b"",
        "too large",
    ),
    (
        "zero elements, product past numpy's limit",
        {"shape": [2**31, 2**31, 0], "nbytes": 0},
        b"",
        "too large",
    ),
    (
        "zero elements, rank 32 of 2**62",
        {"shape": [2**62] * 31 + [0], "nbytes": 0},
        b"",
        "too large",
    ),
    (
        "zero string elements, huge product",
        {"dtype": "str", "shape": [4242424242, 4242424242, 0], "nbytes": 0},
        b"",
        "too large",
    ),
    (
        "zero elements, one past numpy's limit for float32",
        {"shape": [INTP_MAX // 4 + 1, 0], "nbytes": 0},
        b"",
        "too large",
    ),
    # Sizes that are not sizes.
    ("size of 2**63", {"shape": [2**63], "nbytes": 0}, b"", "below 2\\*\\*63"),
    ("size of 10**400", {"shape": [10**400, 0], "nbytes": 0}, b"", "below 2\\*\\*63"),
    ("negative size", {"shape": [-2]}, bytes(8), "non-negative"),
    ("boolean size", {"shape": [True, 2]}, bytes(8), "non-negative"),
    ("float size", {"shape": [2.0]}, bytes(8), "non-negative"),
    ("string size", {"shape": ["2"]}, bytes(8), "non-negative"),
    ("nested size", {"shape": [[2]]}, bytes(8), "non-negative"),
    ("null size", {"shape": [None]}, bytes(8), "non-negative"),
    ("shape not a list", {"shape": "2"}, bytes(8), "list of at most 32"),
    ("shape an object", {"shape": {"0": 2}}, bytes(8), "list of at most 32"),
    ("shape missing", {"shape": _DELETE}, bytes(8), "list of at most 32"),
    ("rank 33", {"shape": [1] * 33, "nbytes": 4}, bytes(4), "list of at most 32"),
    # dtypes that are not names: unhashable ones used to raise TypeError.
    ("dtype a list", {"dtype": ["float32"]}, bytes(8), "not supported"),
    ("dtype an object", {"dtype": {"float32": 1}}, bytes(8), "not supported"),
    ("dtype null", {"dtype": None}, bytes(8), "not supported"),
    ("dtype missing", {"dtype": _DELETE}, bytes(8), "not supported"),
    ("dtype unknown", {"dtype": "float128"}, bytes(8), "not supported"),
    ("dtype a long string", {"dtype": "f" * 10_000}, bytes(8), "not supported"),
    # offsets and sizes
    ("boolean offset", {"offset": True}, bytes(16), "offset and nbytes"),
    ("boolean nbytes", {"nbytes": True}, bytes(8), "offset and nbytes"),
    ("float nbytes", {"nbytes": 8.0}, bytes(8), "offset and nbytes"),
    ("negative offset", {"offset": -1}, bytes(8), "offset and nbytes"),
    ("string offset", {"offset": "0"}, bytes(8), "offset and nbytes"),
    ("offset missing", {"offset": _DELETE}, bytes(8), "offset and nbytes"),
    ("giant nbytes", {"nbytes": 10**400}, bytes(8), "past the end"),
    ("giant offset", {"offset": 10**400}, bytes(8), "past the end"),
    (
        "element count past 2**128 bytes",
        {"shape": [2**62] * 32},
        bytes(8),
        "needs more than 2\\*\\*128 bytes, got 8",
    ),
    # names
    ("name a number", {"name": 7}, bytes(8), "non-empty name"),
    ("name a list", {"name": ["x"]}, bytes(8), "non-empty name"),
    ("name missing", {"name": _DELETE}, bytes(8), "non-empty name"),
    # string tensors
    (
        "string count the data cannot hold",
        {"dtype": "str", "shape": [10**18], "nbytes": 8},
        struct.pack(">I", 0) * 2,
        "truncated",
    ),
    (
        "string length past the end",
        {"dtype": "str", "shape": [1], "nbytes": 8},
        struct.pack(">I", 2**32 - 1) + b"abcd",
        "truncated",
    ),
    (
        "string element not UTF-8",
        {"dtype": "str", "shape": [1], "nbytes": 11},
        struct.pack(">I", 7) + b"secret\xff",
        "not UTF-8",
    ),
    (
        "string data with trailing bytes",
        {"dtype": "str", "shape": [1], "nbytes": 8},
        struct.pack(">I", 1) + b"abcd",
        "trailing",
    ),
]


@pytest.mark.parametrize(
    ("mutation", "changes", "data", "message"), ENTRY_CASES, ids=[c[0] for c in ENTRY_CASES]
)
def test_a_hostile_entry_is_refused_without_quoting_it(
    mutation: str, changes: dict[str, Any], data: bytes, message: str
) -> None:
    exc = _refused(_body([_entry(**changes)], data))
    assert exc.status == 422
    assert exc.code == "invalid-tensor"
    assert re.search(message, exc.message), (mutation, exc.message)
    _assert_quotes_no_secret(exc, "f" * 100)


def test_a_name_is_quoted_only_by_its_prefix() -> None:
    exc = _refused(_body([_entry(dtype="float128")], bytes(8)))
    assert repr(SECRET_NAME[:64]) in exc.message


# header mutation -> the refusal it gets -----------------------------------------------

DEEP = 500_000  # 1 MB of brackets: within the header limit, far past the recursion limit

HEADER_CASES: list[tuple[str, bytes, str]] = [
    ("deeply nested array", b"[" * DEEP + b"]" * DEEP, "not valid JSON"),
    (
        "deeply nested in the entries",
        b'{"tensors": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "not valid JSON",
    ),
    ("deeply nested object", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "not valid JSON"),
    ("an integer too long to read", b'{"tensors": [' + b"9" * 5000 + b"]}", "not valid JSON"),
    ("not UTF-8", b'{"tensors": ["\xff\xfe"]}', "not valid JSON"),
    ("cut short", ('{"tensors": [{"name": "' + SECRET_NAME).encode(), "not valid JSON"),
    ("a list", b"[]", "expected shape"),
    ("a string", b'"tensors"', "expected shape"),
    ("null", b"null", "expected shape"),
    ("no tensors", b"{}", "expected shape"),
    ("tensors an object", b'{"tensors": {"x": 1}}', "expected shape"),
    ("tensors NaN", b'{"tensors": NaN}', "expected shape"),
    ("an entry a list", b'{"tensors": [["x"]]}', "must be an object"),
    ("too many entries", json.dumps({"tensors": [{}] * 4097}).encode(), "at most 4096"),
]


@pytest.mark.parametrize(
    ("mutation", "header", "message"), HEADER_CASES, ids=[c[0] for c in HEADER_CASES]
)
def test_a_hostile_header_is_refused_without_quoting_it(
    mutation: str, header: bytes, message: str
) -> None:
    exc = _refused(_raw(header))
    assert message in exc.message, mutation
    _assert_quotes_no_secret(exc)


@pytest.mark.parametrize(
    ("mutation", "body"),
    [
        ("empty", b""),
        ("magic only", b"CRT1"),
        ("header length past the body", b"CRT1" + struct.pack(">I", 2**32 - 1) + b"{}"),
        ("header length past the limit", b"CRT1" + struct.pack(">I", 2**20 + 1) + bytes(2**20 + 1)),
    ],
)
def test_a_hostile_frame_is_refused(mutation: str, body: bytes) -> None:
    _refused(body)


def test_a_duplicate_name_is_refused_without_quoting_it() -> None:
    exc = _refused(_body([_entry(), _entry()], bytes(8)))
    assert "twice" in exc.message
    _assert_quotes_no_secret(exc)


# what is still accepted ----------------------------------------------------------------


EDGE_SHAPES = [
    ("float32", (0,)),
    ("float32", (0, 5)),
    ("float32", (5, 0, 3)),
    ("float32", (2**40, 0)),
    ("float32", (INTP_MAX // 4, 0)),  # numpy's own limit for 4-byte items
    ("float32", (1,) * 32),
    ("str", (0,)),
    ("str", (5, 0, 3)),
    ("str", (INTP_MAX // 8, 0)),  # object arrays hold 8-byte pointers
    ("str", (1,) * 32),
]


@pytest.mark.parametrize(("dtype", "shape"), EDGE_SHAPES)
def test_legitimate_edge_shapes_still_decode(dtype: str, shape: tuple[int, ...]) -> None:
    count = int(np.prod(shape, dtype=object))
    data = (struct.pack(">I", 1) + b"a") * count if dtype == "str" else bytes(4 * count)
    entry = {"name": "x", "dtype": dtype, "shape": list(shape), "offset": 0, "nbytes": len(data)}
    out = decode_tensors(_body([entry], data))["x"]
    assert out.shape == shape
    assert out.size == count


def test_every_single_byte_change_of_a_header_decodes_or_is_refused() -> None:
    """No byte of the header, whatever it becomes, reaches a builtin exception."""
    body = encode_tensors(
        {
            "a": np.arange(6, dtype=np.float32).reshape(2, 3),
            "s": np.array(["ab", "c"]),
            "e": np.zeros((0, 4), np.int64),
        }
    )
    (header_len,) = struct.unpack_from(">I", body, 4)
    rng = random.Random(20240607)
    replacements = b'0129[]{}",:-.eE tfn\x00\xff'
    for pos in range(8, 8 + header_len):
        for value in {*replacements, rng.randrange(256)}:
            mutated = bytearray(body)
            mutated[pos] = value
            with contextlib.suppress(InvalidTensor):
                decode_tensors(bytes(mutated))


# JSON inputs (the SDK's convenience path) ----------------------------------------------


def _nested(depth: int, leaf: str) -> bytes:
    return ("[" * depth + leaf + "]" * depth).encode()


JSON_CASES: list[tuple[str, bytes, dict[str, str], str]] = [
    ("deeply nested document", b"[" * DEEP + b"]" * DEEP, {"a": "float32"}, "not valid JSON"),
    (
        "deeply nested input",
        b'{"a": ' + _nested(100_000, "1") + b"}",
        {"a": "float32"},
        "not valid JSON",
    ),
    ("not UTF-8", b'{"a": "\xff"}', {"a": "str"}, "not valid JSON"),
    (
        "an integer too long to read",
        b'{"a": [' + b"9" * 5000 + b"]}",
        {"a": "int64"},
        "not valid JSON",
    ),
    ("cut short", b'{"a": [1, 2', {"a": "float32"}, "line 1 column"),
    ("a list", b"[1]", {"a": "float32"}, "must be an object"),
    (
        "unknown input with a long name",
        json.dumps({SECRET_NAME: 1}).encode(),
        {"a": "float32"},
        "no input",
    ),
    ("uint8 over its range", b'{"a": [300]}', {"a": "uint8"}, "cannot be read as uint8"),
    ("uint8 negative", b'{"a": [-1]}', {"a": "uint8"}, "cannot be read as uint8"),
    (
        "int64 over its range",
        b'{"a": [100000000000000000000000000000]}',
        {"a": "int64"},
        "cannot be read",
    ),
    ("int32 from a huge float", b'{"a": [1e20]}', {"a": "int32"}, "cannot be read as int32"),
    ("int32 from NaN", b'{"a": [NaN]}', {"a": "int32"}, "cannot be read as int32"),
    ("float32 overflow", b'{"a": [1e39]}', {"a": "float32"}, "cannot be read as float32"),
    ("float16 overflow", b'{"a": [70000]}', {"a": "float16"}, "cannot be read as float16"),
    ("float from an object", b'{"a": {"k": 1}}', {"a": "float32"}, "cannot be read as float32"),
    ("float from a secret string", b'{"a": ["s3cr3t-value"]}', {"a": "float32"}, "cannot be read"),
    ("ragged lists", b'{"a": [[1], [2, 3]]}', {"a": "float32"}, "cannot be read as float32"),
    ("rank 65 numbers", b'{"a": ' + _nested(65, "1") + b"}", {"a": "float32"}, "cannot be read"),
    ("rank 33 numbers", b'{"a": ' + _nested(33, "1") + b"}", {"a": "float32"}, "more than 32"),
    ("rank 33 strings", b'{"a": ' + _nested(33, '"x"') + b"}", {"a": "str"}, "more than 32"),
    ("strings holding a number", b'{"a": ["x", 1]}', {"a": "str"}, "cannot be read as str"),
    ("strings holding null", b'{"a": [null]}', {"a": "str"}, "cannot be read as str"),
    ("ragged strings", b'{"a": [["x"], ["y", "z"]]}', {"a": "str"}, "cannot be read as str"),
    ("model dtype unsupported", b'{"a": [1]}', {"a": "float128"}, "unsupported dtype"),
]


@pytest.mark.parametrize(
    ("mutation", "data", "dtypes", "message"), JSON_CASES, ids=[c[0] for c in JSON_CASES]
)
def test_hostile_json_inputs_are_refused_without_quoting_them(
    mutation: str, data: bytes, dtypes: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidTensor) as caught:
        tensors_from_json(data, dtypes)
    exc = caught.value
    assert message in exc.message, (mutation, exc.message)
    _assert_quotes_no_secret(exc, "s3cr3t-value")


def test_json_inputs_in_range_still_read() -> None:
    out = tensors_from_json(
        b'{"a": [255, 0], "b": [1e-50, -0.5], "c": [["x"], ["y"]], "d": [NaN]}',
        {"a": "uint8", "b": "float32", "c": "str", "d": "float64"},
    )
    assert out["a"].tolist() == [255, 0]
    assert out["b"].tolist() == [0.0, -0.5]
    assert out["c"].tolist() == [["x"], ["y"]]
    assert np.isnan(out["d"][0])
