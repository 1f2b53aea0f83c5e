"""Hostile-model checks for ONNX, run before any runtime sees the bytes.

An ONNX model is untrusted business logic. Before it is loaded we refuse,
with :class:`~cleanroom.errors.ModelRejected` naming the reason:

* bytes that are not a ``ModelProto`` or exceed ``max_model_bytes``;
* an IR version or operator-set version that ONNX Runtime 1.31 does not
  implement (``ModelProto.ir_version``, ``opset_import``; ONNX IR spec,
  "Versioning");
* external data (``TensorProto.data_location == EXTERNAL`` or any
  ``external_data`` entry; ONNX IR spec, "External Tensor Data"), wherever
  it hides: initializers, sparse initializers, tensor attributes of any node
  (also those that carry ``ref_attr_name``: ONNX Runtime reads their tensor
  all the same), sub-graphs of ``If``/``Loop``/``Scan`` and model-local
  functions, walked with an explicit stack to at most ``MAX_NESTING`` levels
  of sub-graphs. A path such as ``/etc/passwd`` is never opened;
* operators outside the standard domains, unless they call a function
  defined in the model itself (whose body is checked the same way), and
  operators of a standard domain that the domain does not define;
* a model-local function in a domain that ONNX Runtime implements operators
  of (``ai.onnx``, ``ai.onnx.ml``, ``com.microsoft`` and the others it
  registers): ONNX Runtime would run its own kernel of that name instead of
  the body checked here;
* declared tensor sizes beyond the limits, and tensors whose data does not
  match their declared size;
* anything the ONNX checker refuses.

The worker hands over a model split by :mod:`cleanroom.runtime.onnx_split`:
its large initializers are detached and marked as external data at
``WEIGHTS_LOCATION``. Those, and only those, are accepted as external, at
exactly the offset and length the split recorded; the
checker runs on the graph with them as graph inputs, and no weight payload
is read or copied here.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from cleanroom.errors import ModelRejected
from cleanroom.runtime.base import ModelSignature, RuntimeLimits, TensorSpec
from cleanroom.runtime.onnx_split import WEIGHTS_LOCATION, Detached

# What onnxruntime 1.31 implements (its own error text: "official support for
# domain ai.onnx is till opset 26", "ai.onnx.ml is till opset 5", "max
# supported IR version: 13"). Update together with the onnxruntime pin.
MAX_IR_VERSION = 13
MIN_IR_VERSION = 3
MAX_OPSET: dict[str, int] = {"": 26, "ai.onnx": 26, "ai.onnx.ml": 5}

# Protocol buffers cannot parse a message of 2 GiB or more.
_PROTOBUF_LIMIT = 2**31 - 1

# TensorProto.DataType -> (signature dtype name, bytes per element).
_ELEM_TYPES: dict[int, tuple[str, int]] = {
    1: ("float32", 4),
    2: ("uint8", 1),
    3: ("int8", 1),
    4: ("uint16", 2),
    5: ("int16", 2),
    6: ("int32", 4),
    7: ("int64", 8),
    8: ("str", 0),
    9: ("bool", 1),
    10: ("float16", 2),
    11: ("float64", 8),
    12: ("uint32", 4),
    13: ("uint64", 8),
    14: ("complex64", 8),
    15: ("complex128", 16),
}
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


# Sub-graphs (If/Loop/Scan bodies) nested deeper than this are refused. The
# protobuf parser stops near 31 levels; this bound holds whatever it allows.
MAX_NESTING = 24

# Domains whose operators ONNX Runtime implements itself (onnxruntime
# core/graph/constants.h). A model-local function in one of them would be
# shadowed by the built-in kernel. Those of the ONNX schemas and of ONNX
# Runtime's registered schemas are added when the check runs.
_RUNTIME_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.preview",
        "ai.onnx.preview.training",
        "ai.onnx.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "com.microsoft.dml",
        "com.ms.internal.nhwc",
        "org.pytorch.aten",
    }
)


@functools.cache
def _runtime_domains() -> frozenset[str]:
    """Every domain ONNX Runtime or ONNX define operators in."""
    import onnx.defs

    domains = set(_RUNTIME_DOMAINS)
    domains.update(str(s.domain) for s in onnx.defs.get_all_schemas_with_history())
    try:
        # Untyped native module; absent from minimal builds.
        state = importlib.import_module("onnxruntime.capi.onnxruntime_pybind11_state")
        domains.update(str(s.domain) for s in state.get_all_operator_schema())
    except (ImportError, AttributeError):
        pass
    return frozenset(domains)


def _defines(domain: str, op_type: str) -> bool:
    """Whether the ONNX schemas of the standard *domain* have an operator *op_type*."""
    import onnx.defs

    return bool(onnx.defs.has(op_type, "" if domain == "ai.onnx" else domain))


# A graph (or a function's node list) still to walk: (proto, label, depth).
_Pending = list[tuple[Any, str, int]]


class _Walker:
    """Walks every graph, node, attribute and tensor of a model once, without recursion."""

    def __init__(self, limits: RuntimeLimits, local_functions: set[tuple[str, str]]) -> None:
        self.limits = limits
        self.local_functions = local_functions
        self.declared_bytes = 0

    def model(self, proto: Any, detached: Mapping[int, Detached] | None) -> None:
        """Walk the functions, the main graph and every sub-graph of *proto*."""
        pending: _Pending = []
        for function in proto.functions:
            where = f"function {function.name!r}"
            for attr in function.attribute_proto:
                self.attribute(attr, f"{where} attribute {attr.name!r}", 0, pending)
            self.nodes(function.node, where, 0, pending)
        self.graph(proto.graph, "graph", 0, pending, detached)
        while pending:
            graph, where, depth = pending.pop()
            self.graph(graph, where, depth, pending)

    def tensor(self, tensor: object, where: str, detached: int | None = None) -> None:
        """Check one tensor; *detached* is the size of its payload if the split took it."""
        location = getattr(tensor, "data_location", 0)
        external = location == _EXTERNAL or len(getattr(tensor, "external_data", ())) > 0
        if detached is None and external:
            raise ModelRejected(f"{where} refers to external data; only self-contained models load")
        dims = [int(d) for d in getattr(tensor, "dims", ())]
        if any(d < 0 for d in dims):
            raise ModelRejected(f"{where} declares a negative dimension")
        count = math.prod(dims)
        elem = int(getattr(tensor, "data_type", 0))
        _, size = _ELEM_TYPES.get(elem, ("", 1))
        nbytes = count * max(size, 1)
        if nbytes > self.limits.max_model_bytes:
            raise ModelRejected(f"{where} declares {nbytes} bytes, over the model size limit")
        self.declared_bytes += nbytes
        if self.declared_bytes > self.limits.max_model_bytes:
            raise ModelRejected("the declared tensors add up to more than the model size limit")
        if detached is None:
            self._check_data_matches(tensor, count, size, where)
        elif not size or detached != count * size:
            raise ModelRejected(f"{where} holds {detached} bytes but declares {count * size}")

    def sparse(self, sparse: Any, where: str) -> None:
        self.tensor(sparse.values, f"{where} values")
        self.tensor(sparse.indices, f"{where} indices")

    @staticmethod
    def check_detached(tensor: object, where: str, detached: Detached) -> None:
        """A detached tensor carries exactly the split's marker and no data of its own."""
        entries = [(e.key, e.value) for e in getattr(tensor, "external_data", ())]
        expected = [
            ("location", WEIGHTS_LOCATION),
            ("offset", str(detached.offset)),
            ("length", str(detached.nbytes)),
        ]
        if getattr(tensor, "data_location", 0) != _EXTERNAL or entries != expected:
            raise ModelRejected(f"{where} does not match the weights detached from it")
        if tensor.HasField("raw_data"):  # type: ignore[attr-defined]
            raise ModelRejected(f"{where} holds data besides the weights detached from it")

    @staticmethod
    def _check_data_matches(tensor: object, count: int, size: int, where: str) -> None:
        raw = getattr(tensor, "raw_data", b"")
        if raw:
            if size and len(raw) != count * size:
                raise ModelRejected(f"{where} holds {len(raw)} bytes but declares {count * size}")
            return
        held = 0
        for field in (
            "float_data",
            "int32_data",
            "string_data",
            "int64_data",
            "double_data",
            "uint64_data",
        ):
            held += len(getattr(tensor, field, ()))
        # Complex values take two slots each (ONNX IR spec, TensorProto).
        elem = int(getattr(tensor, "data_type", 0))
        expected = count * 2 if elem in (14, 15) else count
        if held not in (0, expected) or (held == 0 and count != 0):
            raise ModelRejected(f"{where} holds {held} values but declares {expected}")

    def value_info(self, info: object, where: str) -> None:
        kind = getattr(info, "type", None)
        if kind is None or not kind.HasField("tensor_type"):
            return
        tensor_type = kind.tensor_type
        _, size = _ELEM_TYPES.get(int(tensor_type.elem_type), ("", 1))
        if not tensor_type.HasField("shape"):
            return
        dims = []
        for dim in tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                if dim.dim_value < 0:
                    raise ModelRejected(f"{where} declares a negative dimension")
                dims.append(int(dim.dim_value))
        if math.prod(dims) * max(size, 1) > self.limits.memory_bytes:
            raise ModelRejected(f"{where} declares a tensor larger than the memory limit")

    def graph(
        self,
        graph: Any,
        where: str,
        depth: int,
        pending: _Pending,
        detached: Mapping[int, Detached] | None = None,
    ) -> None:
        for index, init in enumerate(graph.initializer):
            label = f"{where} initializer {init.name!r}"
            location = (detached or {}).get(index)
            if location is not None:
                self.check_detached(init, label, location)
            self.tensor(init, label, None if location is None else location.nbytes)
        for sparse in graph.sparse_initializer:
            self.sparse(sparse, f"{where} sparse initializer")
        for group in ("input", "output", "value_info"):
            for info in getattr(graph, group):
                self.value_info(info, f"{where} {group} {info.name!r}")
        self.nodes(graph.node, where, depth, pending)

    def nodes(self, nodes: Iterable[Any], where: str, depth: int, pending: _Pending) -> None:
        for node in nodes:
            domain = str(node.domain)
            op_type = str(node.op_type)
            label = f"{where} node {node.name or op_type!r}"
            if domain in MAX_OPSET:
                if not _defines(domain, op_type):
                    raise ModelRejected(
                        f"{label} uses operator {op_type!r}, "
                        f"which domain {domain or 'ai.onnx'!r} does not define"
                    )
            elif (domain, op_type) not in self.local_functions:
                raise ModelRejected(
                    f"{label} uses operator {op_type!r} from custom domain {domain!r}; "
                    "custom operators are not allowed"
                )
            for attr in node.attribute:
                self.attribute(attr, f"{label} attribute {attr.name!r}", depth, pending)

    def attribute(self, attr: Any, where: str, depth: int, pending: _Pending) -> None:
        """Check an attribute's tensors and queue its sub-graphs.

        Every field is looked at whatever ``type`` and ``ref_attr_name`` say:
        ONNX Runtime loads a tensor it finds on a reference all the same.
        """
        if attr.HasField("t"):
            self.tensor(attr.t, where)
        for tensor in attr.tensors:
            self.tensor(tensor, where)
        if attr.HasField("sparse_tensor"):
            self.sparse(attr.sparse_tensor, f"{where} sparse tensor")
        for sparse in attr.sparse_tensors:
            self.sparse(sparse, f"{where} sparse tensor")
        subgraphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
        if subgraphs and depth >= MAX_NESTING:
            raise ModelRejected(f"{where} nests sub-graphs more than {MAX_NESTING} levels deep")
        for sub in subgraphs:
            pending.append((sub, f"{where} subgraph", depth + 1))


def _check_opsets(opsets: Iterable[object], where: str, local: frozenset[str]) -> None:
    for opset in opsets:
        domain = str(getattr(opset, "domain", ""))
        version = int(getattr(opset, "version", 0))
        if domain in local and domain not in MAX_OPSET:
            continue  # the domain of functions the model defines itself
        if domain not in MAX_OPSET:
            raise ModelRejected(f"{where} imports custom operator domain {domain!r}")
        if not 1 <= version <= MAX_OPSET[domain]:
            raise ModelRejected(
                f"{where} imports opset {version} of domain {domain or 'ai.onnx'!r}; "
                f"supported: 1 to {MAX_OPSET[domain]}"
            )


def _spec(info: object, where: str) -> TensorSpec:
    kind = getattr(info, "type", None)
    name = str(getattr(info, "name", ""))
    if kind is None or not kind.HasField("tensor_type"):
        raise ModelRejected(f"{where} {name!r} is not a tensor; only tensors are supported")
    tensor_type = kind.tensor_type
    elem = int(tensor_type.elem_type)
    if elem not in _ELEM_TYPES:
        raise ModelRejected(f"{where} {name!r} has element type {elem}, which is not supported")
    shape: tuple[int | None, ...] = ()
    if tensor_type.HasField("shape"):
        shape = tuple(
            int(d.dim_value) if d.HasField("dim_value") else None for d in tensor_type.shape.dim
        )
    else:
        raise ModelRejected(f"{where} {name!r} declares no shape")
    return TensorSpec(name=name, dtype=_ELEM_TYPES[elem][0], shape=shape)


def _checker_view(proto: Any, detached: Mapping[int, Detached]) -> bytes:
    """The model for the ONNX checker: detached initializers become graph inputs.

    The checker would otherwise look for a file named by their external-data
    location; their sizes were checked against their declarations already.
    """
    import onnx

    view = onnx.ModelProto()
    view.CopyFrom(proto)
    graph = view.graph
    inputs = {info.name for info in graph.input}
    kept = []
    for index, init in enumerate(graph.initializer):
        if index not in detached:
            kept.append(init)
            continue
        if init.name not in inputs:
            graph.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return bytes(view.SerializeToString())


def validate_onnx(
    model: bytes | bytearray | memoryview,
    limits: RuntimeLimits,
    *,
    detached: Mapping[int, Detached] | None = None,
) -> ModelSignature:
    """Check an ONNX model before loading; return its signature or raise ModelRejected.

    *detached* maps the index of each top-level initializer whose weights
    :func:`~cleanroom.runtime.onnx_split.split_onnx` detached to where they are.
    """
    size = memoryview(model).nbytes
    if size > limits.max_model_bytes:
        raise ModelRejected(
            f"the model has {size} bytes, over the limit of {limits.max_model_bytes}"
        )
    if size > _PROTOBUF_LIMIT:
        raise ModelRejected("an ONNX model must be smaller than 2 GiB")
    import onnx  # imported late: the service may run TFLite only
    import onnx.checker

    # protobuf ships no type stubs; its DecodeError is looked up untyped.
    decode_error: type[Exception] = importlib.import_module("google.protobuf.message").DecodeError

    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(bytes(model) if not isinstance(model, bytes) else model)
    except (decode_error, ValueError, RuntimeError) as exc:
        raise ModelRejected("the bytes are not an ONNX model") from exc
    if not MIN_IR_VERSION <= proto.ir_version <= MAX_IR_VERSION:
        raise ModelRejected(
            f"IR version {proto.ir_version} is not supported "
            f"(supported: {MIN_IR_VERSION} to {MAX_IR_VERSION})"
        )
    if not proto.HasField("graph"):
        raise ModelRejected("the model has no graph")
    if len(proto.training_info) > 0:
        raise ModelRejected("training information is not supported in an inference model")
    runtime_domains = _runtime_domains()
    for function in proto.functions:
        if function.domain in runtime_domains:
            raise ModelRejected(
                f"function {function.name!r} is defined in domain "
                f"{function.domain or 'ai.onnx'!r}, whose operators ONNX Runtime implements "
                "itself; its own kernel, not the function, would run"
            )
    local = {(str(f.domain), str(f.name)) for f in proto.functions}
    local_domains = frozenset(domain for domain, _ in local)
    _check_opsets(proto.opset_import, "the model", local_domains)
    for function in proto.functions:
        _check_opsets(function.opset_import, f"function {function.name!r}", local_domains)
    if detached and not all(0 <= i < len(proto.graph.initializer) for i in detached):
        raise ModelRejected("weights were detached from initializers the graph does not have")
    _Walker(limits, local).model(proto, detached)
    try:
        # Given bytes, the checker parses them itself; given the proto, it would
        # serialise the whole model first.
        onnx.checker.check_model(_checker_view(proto, detached) if detached else bytes(model))
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        # The checker's message names the failing node; it holds no tensor data.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise ModelRejected(f"the ONNX checker refused the model: {first_line[:300]}") from exc
    initializers = {init.name for init in proto.graph.initializer}
    inputs = tuple(
        _spec(info, "input") for info in proto.graph.input if info.name not in initializers
    )
    outputs = tuple(_spec(info, "output") for info in proto.graph.output)
    if not outputs:
        raise ModelRejected("the model declares no outputs")
    return ModelSignature(inputs=inputs, outputs=outputs)
