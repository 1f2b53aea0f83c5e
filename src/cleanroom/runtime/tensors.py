"""Input checks shared by every runner: inputs must match the signature exactly.

A runner checks inputs *before* handing them to a runtime (or to a sandboxed
worker), so a caller gets :class:`~cleanroom.errors.InvalidTensor` naming
every problem at once instead of a runtime-specific crash, and the runtime
never sees names, dtypes or shapes the model did not declare.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cleanroom.errors import InvalidTensor
from cleanroom.runtime.base import Tensors, TensorSpec
from cleanroom.wire.tensors import STRING_DTYPE, dtype_name

__all__ = ["check_inputs", "shape_matches"]


def shape_matches(spec: TensorSpec, shape: tuple[int, ...]) -> bool:
    """Whether *shape* has the declared rank and every declared (not dynamic) dimension."""
    return len(shape) == len(spec.shape) and all(
        want is None or want == have for want, have in zip(spec.shape, shape, strict=True)
    )


def check_inputs(inputs: Mapping[str, object], specs: Sequence[TensorSpec]) -> Tensors:
    """Return the inputs to feed after checking names, dtypes and shapes against *specs*.

    No silent casts: the dtype must be the declared one. String tensors are
    returned as object arrays of ``str``; numeric tensors as C-contiguous arrays.
    """
    problems: list[str] = []
    declared = {spec.name: spec for spec in specs}
    missing = sorted(set(declared) - set(inputs))
    unknown = sorted(set(inputs) - set(declared))
    if missing:
        problems.append(f"missing input(s) {missing}")
    if unknown:
        problems.append(f"unknown input(s) {unknown}; the model's inputs are {sorted(declared)}")
    feed: Tensors = {}
    for name, spec in declared.items():
        if name not in inputs:
            continue
        array = inputs[name]
        if not isinstance(array, np.ndarray):
            problems.append(f"input {name!r} is a {type(array).__name__}, not a numpy array")
            continue
        got = dtype_name(array)
        if got != spec.dtype:
            problems.append(f"input {name!r} has dtype {got}, the model expects {spec.dtype}")
        shape = tuple(int(d) for d in array.shape)
        if not shape_matches(spec, shape):
            want = ["?" if d is None else d for d in spec.shape]
            problems.append(f"input {name!r} has shape {list(shape)}, the model expects {want}")
        if spec.dtype == STRING_DTYPE and got == STRING_DTYPE:
            # Text only: a byte-string array ("S") would reach the model as bytes.
            kind = array.dtype.kind
            if kind == "S" or (kind == "O" and not all(isinstance(v, str) for v in array.flat)):
                problems.append(f"input {name!r} must hold str values")
            feed[name] = array.astype(object)
        else:
            feed[name] = np.ascontiguousarray(array)
    if problems:
        raise InvalidTensor("; ".join(problems))
    return feed
