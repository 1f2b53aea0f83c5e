"""The input documents the policy sees: ``input`` in Rego.

Both documents are built here and only here, so ``docs/policies.md`` can
describe them field by field. They carry metadata (names, dtypes, shapes,
sizes) and never whole tensors: the engine's cost grows with the document,
and a policy has no business reading a data owner's inputs. For egress, the
*values* of small outputs are included so a policy can check ranges; an
output with more than :data:`SMALL_OUTPUT_MAX_ELEMENTS` elements is described
by its metadata only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cleanroom.errors import InvalidRequest

__all__ = [
    "SMALL_OUTPUT_MAX_ELEMENTS",
    "InstanceInfo",
    "TensorMeta",
    "egress_input",
    "ingress_input",
]

#: Outputs with at most this many elements have their values in the egress
#: document (flattened, row-major); larger ones only their metadata.
SMALL_OUTPUT_MAX_ELEMENTS = 64


@dataclass(frozen=True)
class InstanceInfo:
    """What the policy knows of the instance: ``input.instance``."""

    id: str
    owner: str
    users: Sequence[str]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "owner": self.owner, "users": sorted(self.users)}


@dataclass(frozen=True)
class TensorMeta:
    """Metadata of one tensor: numpy dtype name, shape and size in bytes."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @classmethod
    def of(cls, array: npt.NDArray[Any]) -> TensorMeta:
        arr = np.asarray(array)
        dtype = "str" if arr.dtype.kind in "USO" else arr.dtype.name
        return cls(dtype=dtype, shape=tuple(int(d) for d in arr.shape), nbytes=int(arr.nbytes))

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape), "nbytes": self.nbytes}


def _json_scalar(value: Any) -> Any:
    """One output element as JSON; non-finite floats become strings.

    JSON has no NaN or infinity. As strings they fail ``is_number(v)``, which
    every range rule must check (docs/policies.md): a mixed string/number
    comparison is not a numeric check.
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer | int):
        number = int(value)
        # Rego integers are int64: larger uint64 values are shown as the nearest float,
        # which still orders correctly against any bound a policy writes.
        return number if -(2**63) <= number < 2**63 else float(number)
    if isinstance(value, np.floating | float):
        f = float(value)
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "Infinity" if f > 0 else "-Infinity"
        return f
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _tensors_doc(
    tensors: Mapping[str, npt.NDArray[Any] | TensorMeta], *, with_values: bool
) -> tuple[dict[str, Any], int]:
    described: dict[str, Any] = {}
    total = 0
    for name in sorted(tensors):
        if not isinstance(name, str):
            raise InvalidRequest("tensor names must be strings")
        tensor = tensors[name]
        meta = tensor if isinstance(tensor, TensorMeta) else TensorMeta.of(tensor)
        doc = meta.to_json()
        if with_values and not isinstance(tensor, TensorMeta):
            arr = np.asarray(tensor)
            if arr.size <= SMALL_OUTPUT_MAX_ELEMENTS:
                doc["values"] = [_json_scalar(v) for v in arr.reshape(-1).tolist()]
        described[name] = doc
        total += meta.nbytes
    return described, total


def _common(
    direction: str,
    action: str,
    user: str,
    instance: InstanceInfo,
    queries: int,
    context: Mapping[str, Any] | None,
    model_digest: str | None,
    now_ns: int | None,
) -> dict[str, Any]:
    if queries < 0:
        raise InvalidRequest("usage.queries cannot be negative")
    return {
        "direction": direction,
        "action": action,
        "user": user,
        "instance": instance.to_json(),
        "usage": {"queries": queries},
        "model": {"digest": model_digest},
        "context": dict(context) if context is not None else {},
        "now_ns": now_ns if now_ns is not None else time.time_ns(),
    }


def ingress_input(
    *,
    action: str,
    user: str,
    instance: InstanceInfo,
    queries: int,
    inputs: Mapping[str, npt.NDArray[Any] | TensorMeta] | None = None,
    payload_nbytes: int | None = None,
    context: Mapping[str, Any] | None = None,
    model_digest: str | None = None,
    now_ns: int | None = None,
) -> dict[str, Any]:
    """The document ``data.cleanroom.allow_ingress`` is evaluated against.

    *inputs* are the request's tensors (arrays or their :class:`TensorMeta`);
    only metadata goes into the document. ``request.nbytes`` is
    *payload_nbytes* when given (e.g. the size of an uploaded model) and the
    sum of the tensors' sizes otherwise. *context* is passed through
    unchanged as ``input.context`` (e.g. a consent artefact); *now_ns*
    defaults to the current time, in nanoseconds since the Unix epoch.
    """
    described, total = _tensors_doc(inputs or {}, with_values=False)
    doc = _common("ingress", action, user, instance, queries, context, model_digest, now_ns)
    doc["request"] = {
        "names": list(described),
        "inputs": described,
        "nbytes": payload_nbytes if payload_nbytes is not None else total,
    }
    return doc


def egress_input(
    *,
    action: str,
    user: str,
    instance: InstanceInfo,
    queries: int,
    outputs: Mapping[str, npt.NDArray[Any] | TensorMeta],
    inputs: Mapping[str, npt.NDArray[Any] | TensorMeta] | None = None,
    context: Mapping[str, Any] | None = None,
    model_digest: str | None = None,
    now_ns: int | None = None,
) -> dict[str, Any]:
    """The document ``data.cleanroom.allow_egress`` is evaluated against.

    Everything :func:`ingress_input` holds (the request's metadata again, so
    a rule can relate outputs to inputs), plus ``response``: each output's
    metadata and, for outputs of at most :data:`SMALL_OUTPUT_MAX_ELEMENTS`
    elements, its ``values`` flattened in row-major order. Pass the outputs
    *after* shaping, so the policy judges what would actually leave.
    """
    request_doc, request_total = _tensors_doc(inputs or {}, with_values=False)
    response_doc, response_total = _tensors_doc(outputs, with_values=True)
    doc = _common("egress", action, user, instance, queries, context, model_digest, now_ns)
    doc["request"] = {"names": list(request_doc), "inputs": request_doc, "nbytes": request_total}
    doc["response"] = {
        "names": list(response_doc),
        "outputs": response_doc,
        "nbytes": response_total,
    }
    return doc
