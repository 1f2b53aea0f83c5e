"""Split a received ONNX model into a small graph and its weights, without copying them.

A serialized ``ModelProto`` keeps each initializer's weights in the
``raw_data`` field of its ``TensorProto``. Parsing the model with protobuf
and reading those fields copies every weight at least once. Instead, the
wire format is scanned here (protocol buffers encoding: tag varint, then a
varint, a fixed 4/8-byte value or a length-prefixed payload), and:

* each top-level initializer's ``raw_data`` payload is located by offset in
  the received buffer and moved, inside that same buffer, to a 64-byte
  aligned position before its own (a payload with no such position stays in
  the graph);
* a *graph* is written without those payloads: each detached tensor is
  marked ``data_location = EXTERNAL`` at :data:`WEIGHTS_LOCATION`, with its
  offset and length in the buffer. That name is never a file: ONNX Runtime
  is given the buffer itself as the contents of an external-data file of
  that name, and uses it in place.

Only initializers that hold nothing but ``raw_data`` of a fixed-size numeric
type, of at least :data:`MIN_DETACHED_BYTES`, are detached; everything else
stays in the graph as it was and goes through the usual checks. A model
whose framing is broken, or that repeats the ``graph`` field, is refused with
:class:`~cleanroom.errors.ModelRejected`. The hostile-model checks then run on
the graph (``validate_onnx`` with the detached locations), under the worker's
confinement, before anything is loaded.
"""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass

import numpy as np

from cleanroom.errors import ModelRejected

__all__ = ["MIN_DETACHED_BYTES", "WEIGHTS_LOCATION", "Detached", "SplitModel", "split_onnx"]

WEIGHTS_LOCATION = "cleanroom:weights"
MIN_DETACHED_BYTES = 4096
_ALIGN = 64

# ModelProto.graph, GraphProto.initializer and the TensorProto fields read here
# (onnx/onnx.proto field numbers).
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_RAW_DATA = 9
_TENSOR_DATA_TYPE = 2
_TENSOR_DIMS = 1
_TENSOR_NAME = 8
# Fields that hold data or point elsewhere: a tensor with any of them stays whole.
_TENSOR_OTHER_DATA = frozenset({3, 4, 5, 6, 7, 10, 11, 13, 14})
_LEN = 2

# TensorProto.DataType -> little-endian numpy dtype, for the detachable types.
_DTYPES: dict[int, str] = {
    1: "<f4",
    2: "u1",
    3: "i1",
    4: "<u2",
    5: "<i2",
    6: "<i4",
    7: "<i8",
    9: "?",
    10: "<f2",
    11: "<f8",
    12: "<u4",
    13: "<u8",
}


@dataclass(frozen=True)
class Detached:
    """Where a detached initializer's weights are: *nbytes* at *offset* in the buffer."""

    offset: int
    nbytes: int


@dataclass
class SplitModel:
    """The graph without the detached weights, and where those weights are in the buffer.

    ``detached`` maps the index of each detached top-level initializer to
    its location; the graph's external-data entries name the same locations.
    """

    graph: bytes
    detached: dict[int, Detached]


def _varint(data: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ModelRejected("the bytes are not an ONNX model (broken varint)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@dataclass(frozen=True)
class _Field:
    number: int
    wire: int
    start: int  # where the tag begins
    body: int  # where the value (or the length-prefixed payload) begins
    end: int  # one past the field


def _fields(data: memoryview, start: int, end: int) -> list[_Field]:
    out = []
    pos = start
    while pos < end:
        tag, body = _varint(data, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ModelRejected("the bytes are not an ONNX model (field number 0)")
        if wire == 0:
            _, stop = _varint(data, body, end)
        elif wire == 1:
            stop = body + 8
        elif wire == 5:
            stop = body + 4
        elif wire == _LEN:
            length, body = _varint(data, body, end)
            stop = body + length
        else:
            raise ModelRejected("the bytes are not an ONNX model (unsupported wire type)")
        if stop > end:
            raise ModelRejected("the bytes are not an ONNX model (a field runs past its end)")
        out.append(_Field(number, wire, pos, body, stop))
        pos = stop
    return out


def _tag(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _tag(number, _LEN) + _encode_varint(len(payload)) + payload


def _external_marker(offset: int, length: int) -> bytes:
    """``external_data`` entries (field 13) and ``data_location = EXTERNAL`` (field 14)."""
    entries = b""
    for key, value in (
        ("location", WEIGHTS_LOCATION),
        ("offset", str(offset)),
        ("length", str(length)),
    ):
        entries += _length_delimited(
            13, _length_delimited(1, key.encode()) + _length_delimited(2, value.encode())
        )
    return entries + _tag(14, 0) + _encode_varint(1)


@dataclass(frozen=True)
class _Tensor:
    index: int  # position among the graph's initializers
    field: _Field  # the initializer field in the graph
    raw: _Field  # its raw_data field


def _detachable(data: memoryview, tensor: _Field, index: int) -> _Tensor | None:
    """The tensor as a detachable payload, or None if it stays in the graph as it is."""
    raw: _Field | None = None
    data_type = 0
    name = b""
    dims: list[int] = []
    for field in _fields(data, tensor.body, tensor.end):
        if field.number in _TENSOR_OTHER_DATA:
            return None
        if field.number == _TENSOR_RAW_DATA:
            if raw is not None or field.wire != _LEN:
                return None
            raw = field
        elif field.number == _TENSOR_DATA_TYPE and field.wire == 0:
            data_type, _ = _varint(data, field.body, field.end)
        elif field.number == _TENSOR_NAME and field.wire == _LEN:
            name = bytes(data[field.body : field.end])
        elif field.number == _TENSOR_DIMS and field.wire == 0:
            dims.append(_varint(data, field.body, field.end)[0])
        elif field.number == _TENSOR_DIMS and field.wire == _LEN:  # packed
            pos = field.body
            while pos < field.end:
                value, pos = _varint(data, pos, field.end)
                dims.append(value)
        elif field.number == _TENSOR_DIMS:
            return None
    if raw is None or data_type not in _DTYPES or raw.end - raw.body < MIN_DETACHED_BYTES:
        return None
    # dims are int64: a varint of 2**63 or more is a negative dimension.
    if any(d >= 2**63 for d in dims):
        raise ModelRejected("an initializer declares a negative dimension")
    try:
        text = name.decode()
    except UnicodeDecodeError:
        return None  # the parser refuses it with the whole model
    itemsize = np.dtype(_DTYPES[data_type]).itemsize
    if math.prod(dims) * itemsize != raw.end - raw.body:
        raise ModelRejected(
            f"initializer {text!r} holds {raw.end - raw.body} bytes "
            f"but declares {math.prod(dims) * itemsize}"
        )
    return _Tensor(index, tensor, raw)


def _targets(tensors: list[_Tensor], base: int) -> dict[int, int]:
    """An aligned offset for each payload that has one at or before its own.

    Payloads appear in increasing order, so moving each one down in turn never
    overwrites one not yet moved. *base* is the buffer's address. A payload
    left out keeps its place in the graph.
    """
    out: dict[int, int] = {}
    cursor = 0
    for tensor in tensors:
        target = (base + cursor + _ALIGN - 1) // _ALIGN * _ALIGN - base
        if target > tensor.raw.body:
            continue
        out[tensor.index] = target
        cursor = target + (tensor.raw.end - tensor.raw.body)
    return out


def _graph_without(
    data: memoryview, graph: _Field, tensors: list[_Tensor], targets: dict[int, int]
) -> bytes:
    """The graph field rewritten with each detached tensor marked external at its target."""
    by_start = {t.field.start: t for t in tensors}
    body: list[bytes] = []
    for field in _fields(data, graph.body, graph.end):
        tensor = by_start.get(field.start)
        if tensor is None:
            body.append(bytes(data[field.start : field.end]))
            continue
        kept = bytes(data[field.body : tensor.raw.start]) + bytes(data[tensor.raw.end : field.end])
        marker = _external_marker(targets[tensor.index], tensor.raw.end - tensor.raw.body)
        body.append(_length_delimited(_GRAPH_INITIALIZER, kept + marker))
    return _length_delimited(_MODEL_GRAPH, b"".join(body))


def split_onnx(buffer: bytearray | mmap.mmap) -> SplitModel:
    """Detach the large initializers of the model in *buffer*; *buffer* is rearranged.

    The detached weights stay in *buffer*, which becomes the contents of the
    graph's external-data file :data:`WEIGHTS_LOCATION`. Raises ModelRejected
    for framing that a protobuf parser would refuse or could read differently.
    """
    data = memoryview(buffer)
    top = _fields(data, 0, len(data))
    graphs = [f for f in top if f.number == _MODEL_GRAPH]
    if len(graphs) > 1:
        raise ModelRejected("the model repeats its graph field")
    if not graphs or graphs[0].wire != _LEN:
        data.release()
        return SplitModel(graph=bytes(buffer), detached={})
    graph = graphs[0]
    found: list[_Tensor] = []
    index = 0
    for field in _fields(data, graph.body, graph.end):
        if field.number != _GRAPH_INITIALIZER:
            continue
        if field.wire == _LEN:
            tensor = _detachable(data, field, index)
            if tensor is not None:
                found.append(tensor)
        index += 1
    targets = _targets(found, int(np.frombuffer(buffer, dtype=np.uint8).ctypes.data))
    tensors = [t for t in found if t.index in targets]
    if not tensors:
        data.release()
        return SplitModel(graph=bytes(buffer), detached={})
    # Everything but the payloads is written out before they move over it.
    model = b"".join(
        (
            bytes(data[: graph.start]),
            _graph_without(data, graph, tensors, targets),
            bytes(data[graph.end :]),
        )
    )
    detached: dict[int, Detached] = {}
    for tensor in tensors:
        length = tensor.raw.end - tensor.raw.body
        target = targets[tensor.index]
        if target != tensor.raw.body:
            # memoryview assignment is a memmove: no temporary copy of the payload.
            data[target : target + length] = data[tensor.raw.body : tensor.raw.end]
        detached[tensor.index] = Detached(target, length)
    data.release()
    return SplitModel(graph=model, detached=detached)
