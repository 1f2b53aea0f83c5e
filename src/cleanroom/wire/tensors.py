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
_MAX_RANK = 32

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
    buf: memoryview, count: int, shape: tuple[int, ...], name: str
) -> npt.NDArray[Any]:
    items: list[str] = []
    pos = 0
    for _ in range(count):
        if pos + _U32.size > len(buf):
            raise InvalidTensor(f"tensor {name!r}: string data is truncated")
        (length,) = _U32.unpack_from(buf, pos)
        pos += _U32.size
        if pos + length > len(buf):
            raise InvalidTensor(f"tensor {name!r}: string data is truncated")
        try:
            items.append(bytes(buf[pos : pos + length]).decode())
        except UnicodeDecodeError as exc:
            raise InvalidTensor(f"tensor {name!r}: a string element is not UTF-8") from exc
        pos += length
    if pos != len(buf):
        raise InvalidTensor(f"tensor {name!r}: string data has trailing bytes")
    return np.array(items, dtype=object).reshape(shape)


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


def _shape(raw: Any, name: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or len(raw) > _MAX_RANK:
        raise InvalidTensor(f"tensor {name!r}: shape must be a list of at most {_MAX_RANK} sizes")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw):
        raise InvalidTensor(f"tensor {name!r}: shape sizes must be non-negative integers")
    return tuple(raw)


def decode_tensors(data: bytes | bytearray | memoryview) -> dict[str, npt.NDArray[Any]]:
    """Decode a tensor body. Numeric tensors are read-only views into *data*."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    if len(view) < len(MAGIC) + _U32.size or bytes(view[: len(MAGIC)]) != MAGIC:
        raise InvalidTensor("the body is not a tensor encoding (expected magic CRT1)")
    (header_len,) = _U32.unpack_from(view, len(MAGIC))
    start = len(MAGIC) + _U32.size
    if header_len > _MAX_HEADER or start + header_len > len(view):
        raise InvalidTensor("the tensor header is truncated or too large")
    try:
        header = json.loads(bytes(view[start : start + header_len]))
        entries = header["tensors"]
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidTensor("the tensor header is not valid JSON of the expected shape") from exc
    if len(entries) > _MAX_TENSORS:
        raise InvalidTensor(f"at most {_MAX_TENSORS} tensors per request")
    data_start = start + header_len
    data_start += (-data_start) % _ALIGN
    body = view[data_start:]
    out: dict[str, npt.NDArray[Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise InvalidTensor("each tensor entry must be an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidTensor("each tensor needs a non-empty name")
        if name in out:
            raise InvalidTensor(f"tensor {name!r} appears twice")
        dtype = entry.get("dtype")
        shape = _shape(entry.get("shape"), name)
        offset, nbytes = entry.get("offset"), entry.get("nbytes")
        if not isinstance(offset, int) or not isinstance(nbytes, int) or offset < 0 or nbytes < 0:
            raise InvalidTensor(f"tensor {name!r}: offset and nbytes must be non-negative integers")
        if offset + nbytes > len(body):
            raise InvalidTensor(f"tensor {name!r}: data runs past the end of the body")
        count = math.prod(shape)  # exact: no wrap-around for hostile shapes
        chunk = body[offset : offset + nbytes]
        if dtype == STRING_DTYPE:
            out[name] = _decode_strings(chunk, count, shape, name)
            continue
        if dtype not in SUPPORTED_DTYPES:
            raise InvalidTensor(f"tensor {name!r}: dtype {dtype!r} is not supported")
        np_dtype = SUPPORTED_DTYPES[dtype]
        if count * np_dtype.itemsize != nbytes:
            raise InvalidTensor(
                f"tensor {name!r}: shape {list(shape)} of {dtype} needs "
                f"{count * np_dtype.itemsize} bytes, got {nbytes}"
            )
        out[name] = np.frombuffer(chunk, dtype=np_dtype).reshape(shape)
    return out


def tensors_from_json(data: bytes | str, dtypes: Mapping[str, str]) -> dict[str, npt.NDArray[Any]]:
    """``{"name": nested lists}`` to arrays, typed by the model's declared *dtypes*."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise InvalidTensor(f"the input is not valid JSON: {exc.args[0]}") from exc
    if not isinstance(doc, dict):
        raise InvalidTensor('JSON input must be an object: {"input name": nested lists}')
    out: dict[str, npt.NDArray[Any]] = {}
    for name, value in doc.items():
        if name not in dtypes:
            raise InvalidTensor(f"the model has no input {name!r}; its inputs are {sorted(dtypes)}")
        dtype = dtypes[name]
        try:
            if dtype == STRING_DTYPE:
                out[name] = np.array(value, dtype=object)
            else:
                out[name] = np.array(value, dtype=SUPPORTED_DTYPES[dtype])
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidTensor(f"input {name!r} cannot be read as {dtype}: {exc}") from exc
    return out
