"""Writing tensors straight into a shared-memory slot, in the ``CRT1`` layout.

The layout is the tensor-body encoding of ``docs/envelope.md`` ("Tensor
bodies"), byte for byte what :func:`cleanroom.wire.tensors.encode_tensors`
produces, so the reader is the same bounds-checked
:func:`~cleanroom.wire.tensors.decode_tensors`. Writing in place saves one
allocation and one copy of every tensor on each side of the sandbox.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from cleanroom.wire.tensors import MAGIC, STRING_DTYPE, SUPPORTED_DTYPES, dtype_name, encode_tensors

__all__ = ["write_tensors"]

_ALIGN = 64  # docs/envelope.md: data section and each tensor start on 64-byte boundaries
_U32 = struct.Struct(">I")


def _write_numeric(slot: mmap.mmap, tensors: Mapping[str, npt.NDArray[Any]]) -> int | None:
    entries: list[dict[str, Any]] = []
    placed: list[tuple[int, npt.NDArray[Any], np.dtype[Any]]] = []
    offset = 0
    for name, array in tensors.items():
        dtype = dtype_name(array)
        wire = SUPPORTED_DTYPES[dtype]
        offset += (-offset) % _ALIGN
        nbytes = int(array.size) * wire.itemsize
        entries.append(
            {
                "name": name,
                "dtype": dtype,
                "shape": list(array.shape),
                "offset": offset,
                "nbytes": nbytes,
            }
        )
        placed.append((offset, array, wire))
        offset += nbytes
    header = json.dumps({"tensors": entries}, separators=(",", ":")).encode()
    start = len(MAGIC) + _U32.size + len(header)
    data_start = start + (-start) % _ALIGN
    total = data_start + offset
    if total > len(slot):
        return None
    slot[: len(MAGIC)] = MAGIC
    slot[len(MAGIC) : len(MAGIC) + _U32.size] = _U32.pack(len(header))
    slot[len(MAGIC) + _U32.size : start] = header
    slot[start:data_start] = bytes(data_start - start)
    end = 0
    for position, array, wire in placed:
        if position > end:
            slot[data_start + end : data_start + position] = bytes(position - end)
        target = np.frombuffer(
            slot, dtype=wire, count=int(array.size), offset=data_start + position
        )
        np.copyto(target.reshape(array.shape), array, casting="equiv")
        del target
        end = position + int(array.size) * wire.itemsize
    return total


def write_tensors(slot: mmap.mmap, tensors: Mapping[str, npt.NDArray[Any]]) -> int | None:
    """Encode *tensors* into the start of *slot*; the byte count, or None if they do not fit."""
    if any(dtype_name(a) == STRING_DTYPE for a in tensors.values()):
        encoded = encode_tensors(tensors)
        if len(encoded) > len(slot):
            return None
        slot[: len(encoded)] = encoded
        return len(encoded)
    return _write_numeric(slot, tensors)
