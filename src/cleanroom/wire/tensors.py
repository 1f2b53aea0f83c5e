"""Binary encoding of named tensors (see docs/envelope.md, "Tensor bodies").

Layout::

    magic "CRT1" | u32 header length (big-endian) | header JSON | padding | data

The header lists ``{"name", "dtype", "shape", "offset", "nbytes"}`` per
tensor; offsets are relative to the start of the data section, which begins
at the next 64-byte boundary. Numeric and bool tensors are stored
little-endian in C order and decode as zero-copy views. String tensors
(dtype ``"str"``) store each element as ``u32 length | UTF-8 bytes``.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from cleanroom.errors import InvalidTensor

__all__ = [
    "MAX_STRING_ELEMENTS",
    "SUPPORTED_DTYPES",
    "decode_tensors",
    "encode_tensor_parts",
    "encode_tensors",
    "tensors_from_json",
]

MAGIC = b"CRT1"
_U32 = struct.Struct(">I")
_ALIGN = 64
_MAX_HEADER = 1024 * 1024
_MAX_TENSORS = 4096
# numpy 1.x's NPY_MAXDIMS, and far more than any model input has; ONNX states no bound.
_MAX_RANK = 32
# ONNX and TFLite shapes are int64: no size may exceed it.
_MAX_DIM = 2**63 - 1
# numpy refuses (with builtin exceptions) shapes whose non-zero sizes multiply, with the
# item size, past its index type, even for tensors with no elements.
_MAX_EXTENT_BYTES = int(np.iinfo(np.intp).max)
# String elements per request, over all its tensors: each is decoded one at a time in
# Python, before the model's signature is checked.
MAX_STRING_ELEMENTS = 1_000_000
# How much of an attacker-chosen string a message may quote.
_QUOTE = 64

# numpy dtype name -> little-endian numpy dtype. These are the tensor types
# ONNX Runtime and LiteRT support on the CPU.
SUPPORTED_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(name).newbyteorder("<") if np.dtype(name).itemsize > 1 else np.dtype(name)
    for name in (
        "float16",
        "float32",
        "float64",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool",
        "complex64",
        "complex128",
    )
}
STRING_DTYPE = "str"


# Native-order dtypes answered without numpy's ``dtype.name`` (computed in
# Python on every access, and on the per-request path several times).
_NAMES: dict[np.dtype[Any], str] = {np.dtype(name): name for name in SUPPORTED_DTYPES}


def _quote(value: object) -> str:
    """*value* for an error message: a short quote of a string, else only its JSON type.

    Tensor names and dtypes come from decrypted, attacker-chosen headers; a
    message may name them but never echo them at length.
    """
    if isinstance(value, str):
        return repr(value) if len(value) <= _QUOTE else repr(value[:_QUOTE]) + "…"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a value"


def _byte_count(count: int) -> str:
    """A byte count computed from an attacker-chosen shape, bounded in length."""
    return str(count) if count.bit_length() <= 128 else "more than 2**128"


def dtype_name(array: npt.NDArray[Any]) -> str:
    known = _NAMES.get(array.dtype)
    if known is not None:
        return known
    kind = array.dtype.kind
    if kind in ("U", "S", "O"):
        return STRING_DTYPE
    name = array.dtype.name
    if name not in SUPPORTED_DTYPES:
        raise InvalidTensor(f"dtype {name} is not supported")
    return name


def _encode_strings(array: npt.NDArray[Any]) -> bytes:
    parts: list[bytes] = []
    for item in array.reshape(-1).tolist():
        if isinstance(item, bytes):
            data = item
        elif isinstance(item, str):
            data = item.encode()
        else:
            raise InvalidTensor("a string tensor may hold only str or bytes elements")
        parts.append(_U32.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def _decode_strings(
    buf: memoryview, count: int, shape: tuple[int, ...], label: str
) -> npt.NDArray[Any]:
    items: list[str] = []
    pos = 0
    for _ in range(count):
        if pos + _U32.size > len(buf):
            raise InvalidTensor(f"tensor {label}: string data is truncated")
        (length,) = _U32.unpack_from(buf, pos)
        pos += _U32.size
        if pos + length > len(buf):
            raise InvalidTensor(f"tensor {label}: string data is truncated")
        try:
            items.append(bytes(buf[pos : pos + length]).decode())
        except UnicodeDecodeError:
            # No chained exception: its message quotes the offending bytes.
            raise InvalidTensor(f"tensor {label}: a string element is not UTF-8") from None
        pos += length
    if pos != len(buf):
        raise InvalidTensor(f"tensor {label}: string data has trailing bytes")
    out = np.empty(count, dtype=object)
    out[:] = items
    return out.reshape(shape)


def encode_tensors(tensors: Mapping[str, npt.ArrayLike]) -> bytes:
    """Encode named arrays; numeric data is written once, without JSON."""
    return b"".join(encode_tensor_parts(tensors))


def encode_tensor_parts(tensors: Mapping[str, npt.ArrayLike]) -> list[bytes | memoryview]:
    """The encoding of :func:`encode_tensors` as parts to concatenate.

    Numeric parts are views of the arrays' memory: keep the arrays unchanged
    until the parts are consumed (sealing copies them into its plaintext).
    """
    entries: list[dict[str, Any]] = []
    blobs: list[bytes | memoryview] = []
    offset = 0
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise InvalidTensor("tensor names must be non-empty strings")
        array = np.asarray(value)
        dtype = dtype_name(array)
        if dtype == STRING_DTYPE:
            data: bytes | memoryview = _encode_strings(array)
        else:
            contiguous = np.ascontiguousarray(array, dtype=SUPPORTED_DTYPES[dtype])
            data = contiguous.reshape(-1).view(np.uint8).data
        pad = (-offset) % _ALIGN
        if pad:
            blobs.append(bytes(pad))
            offset += pad
        entries.append(
            {
                "name": name,
                "dtype": dtype,
                "shape": list(array.shape),
                "offset": offset,
                "nbytes": len(data),
            }
        )
        blobs.append(data)
        offset += len(data)
    header = json.dumps({"tensors": entries}, separators=(",", ":")).encode()
    start = len(MAGIC) + _U32.size + len(header)
    pad = (-start) % _ALIGN
    return [MAGIC, _U32.pack(len(header)), header, bytes(pad), *blobs]


def _shape(raw: Any, label: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or len(raw) > _MAX_RANK:
        raise InvalidTensor(f"tensor {label}: shape must be a list of at most {_MAX_RANK} sizes")
    # ``type(d) is int``: JSON true and false are Python ints, and no size.
    if not all(type(d) is int and 0 <= d <= _MAX_DIM for d in raw):
        raise InvalidTensor(
            f"tensor {label}: shape sizes must be non-negative integers below 2**63"
        )
    return tuple(raw)


def _check_extent(shape: tuple[int, ...], itemsize: int, label: str) -> None:
    """Refuse a shape numpy cannot represent, even with no elements (``[2**40, 2**40, 0]``)."""
    extent = itemsize
    for size in shape:
        extent *= max(size, 1)
        if extent > _MAX_EXTENT_BYTES:
            raise InvalidTensor(f"tensor {label}: its shape is too large for any tensor")


def decode_tensors(data: bytes | bytearray | memoryview) -> dict[str, npt.NDArray[Any]]:
    """Decode a tensor body. Numeric tensors are read-only views into *data*.

    Whatever the bytes, the only exception raised is :class:`InvalidTensor`,
    whose message quotes no more than a short prefix of a tensor's name.
    """
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    if len(view) < len(MAGIC) + _U32.size or bytes(view[: len(MAGIC)]) != MAGIC:
        raise InvalidTensor("the body is not a tensor encoding (expected magic CRT1)")
    (header_len,) = _U32.unpack_from(view, len(MAGIC))
    start = len(MAGIC) + _U32.size
    if header_len > _MAX_HEADER or start + header_len > len(view):
        raise InvalidTensor("the tensor header is truncated or too large")
    try:
        header = json.loads(bytes(view[start : start + header_len]))
        entries = header.get("tensors") if isinstance(header, dict) else None
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8 and over-long integers; RecursionError, deep
        # nesting. Not chained: their messages may quote the decrypted header.
        entries = None
    if not isinstance(entries, list):
        raise InvalidTensor("the tensor header is not valid JSON of the expected shape")
    if len(entries) > _MAX_TENSORS:
        raise InvalidTensor(f"at most {_MAX_TENSORS} tensors per request")
    data_start = start + header_len
    data_start += (-data_start) % _ALIGN
    body = view[data_start:]
    out: dict[str, npt.NDArray[Any]] = {}
    strings = 0
    for entry in entries:
        if not isinstance(entry, dict):
            raise InvalidTensor("each tensor entry must be an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidTensor("each tensor needs a non-empty name")
        label = _quote(name)
        if name in out:
            raise InvalidTensor(f"tensor {label} appears twice")
        dtype = entry.get("dtype")
        if not isinstance(dtype, str) or (dtype != STRING_DTYPE and dtype not in SUPPORTED_DTYPES):
            raise InvalidTensor(f"tensor {label}: dtype {_quote(dtype)} is not supported")
        shape = _shape(entry.get("shape"), label)
        offset, nbytes = entry.get("offset"), entry.get("nbytes")
        if type(offset) is not int or type(nbytes) is not int or offset < 0 or nbytes < 0:
            raise InvalidTensor(f"tensor {label}: offset and nbytes must be non-negative integers")
        if offset + nbytes > len(body):
            raise InvalidTensor(f"tensor {label}: data runs past the end of the body")
        count = math.prod(shape)  # exact: no wrap-around for hostile shapes
        chunk = body[offset : offset + nbytes]
        if dtype == STRING_DTYPE:
            # Every element takes at least its length prefix: a count the data cannot
            # hold is refused before anything is allocated or looped over.
            if count * _U32.size > nbytes:
                raise InvalidTensor(f"tensor {label}: string data is truncated")
            strings += count
            if strings > MAX_STRING_ELEMENTS:
                raise InvalidTensor(
                    f"at most {MAX_STRING_ELEMENTS} string elements per request"
                    f" (tensor {label} passes it)"
                )
            _check_extent(shape, np.dtype(object).itemsize, label)
            out[name] = _decode_strings(chunk, count, shape, label)
            continue
        np_dtype = SUPPORTED_DTYPES[dtype]
        need = count * np_dtype.itemsize
        if need != nbytes:
            raise InvalidTensor(
                f"tensor {label}: its shape of {dtype} needs {_byte_count(need)} bytes,"
                f" got {nbytes}"
            )
        # With elements, nbytes (within the body) bounds the shape; without, it does not.
        _check_extent(shape, np_dtype.itemsize, label)
        out[name] = np.frombuffer(chunk, dtype=np_dtype).reshape(shape)
    return out


def tensors_from_json(data: bytes | str, dtypes: Mapping[str, str]) -> dict[str, npt.NDArray[Any]]:
    """``{"name": nested lists}`` to arrays, typed by the model's declared *dtypes*.

    Malformed input raises :class:`InvalidTensor` only; messages quote no values.
    """
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidTensor(
            f"the input is not valid JSON (line {exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError):
        # Bad UTF-8, an integer too long to read, or nesting too deep.
        raise InvalidTensor("the input is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidTensor('JSON input must be an object: {"input name": nested lists}')
    out: dict[str, npt.NDArray[Any]] = {}
    for name, value in doc.items():
        if name not in dtypes:
            raise InvalidTensor(
                f"the model has no input {_quote(name)}; its inputs are {sorted(dtypes)}"
            )
        dtype = dtypes[name]
        if dtype != STRING_DTYPE and dtype not in SUPPORTED_DTYPES:
            raise InvalidTensor(f"the model's input {_quote(name)} has an unsupported dtype")
        try:
            # errstate: a value out of the dtype's range is refused, not made inf.
            with np.errstate(over="raise", invalid="raise"):
                if dtype == STRING_DTYPE:
                    array = np.array(value, dtype=object)
                else:
                    array = np.array(value, dtype=SUPPORTED_DTYPES[dtype])
        except (ValueError, TypeError, ArithmeticError, RecursionError):
            # ArithmeticError: OverflowError and FloatingPointError. Not chained:
            # numpy's messages quote the offending values.
            raise InvalidTensor(
                f"input {_quote(name)} cannot be read as {dtype}: it must be nested lists"
                " of one shape, holding values of that type and range"
            ) from None
        if array.ndim > _MAX_RANK:
            raise InvalidTensor(f"input {_quote(name)} has more than {_MAX_RANK} dimensions")
        if dtype == STRING_DTYPE and not all(isinstance(item, str) for item in array.flat):
            raise InvalidTensor(
                f"input {_quote(name)} cannot be read as str: nested lists of strings of one shape"
            )
        out[name] = array
    return out
