"""The runtime contract: what the service knows about a model.

The service (data plane) never touches ONNX Runtime or LiteRT directly; it
loads a model through :func:`cleanroom.runtime.load_model` and talks to the
returned :class:`ModelRunner` only. That keeps the runtime movable: in
process, or in a sandboxed worker process, behind the same four calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    # Types only: a sandboxed worker imports this before it may import numpy
    # (runtime/sandbox/startup.py).
    import numpy as np
    import numpy.typing as npt

Tensors: TypeAlias = "dict[str, npt.NDArray[np.generic]]"


@dataclass(frozen=True)
class TensorSpec:
    """One declared model input or output.

    ``dtype`` is a numpy dtype name (``"float32"``, ``"int64"``, ``"bool"``,
    ``"str"`` for string tensors). ``shape`` holds ``None`` for a dynamic
    dimension.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelSignature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
        }


@dataclass(frozen=True)
class RuntimeLimits:
    """Limits a model runs under. The defaults suit models up to a few GB."""

    max_model_bytes: int = 4 * 1024**3
    request_timeout_s: float = 60.0
    memory_bytes: int = 16 * 1024**3
    cpu_seconds: int = 3600
    open_files: int = 256
    workers: int = 1
    intra_op_threads: int = 0  # 0: the runtime's default
    extra: dict[str, str] = field(default_factory=dict)


class ModelRunner(Protocol):
    """A loaded model. Implementations must be safe to call from several threads."""

    @property
    def signature(self) -> ModelSignature: ...

    def ready(self) -> bool: ...

    def run(self, inputs: Tensors) -> Tensors:
        """Run the model.

        Raises :class:`cleanroom.errors.InvalidTensor` for inputs that do not
        match the signature and :class:`cleanroom.errors.InferenceFailed` when
        the model itself fails.
        """
        ...

    def close(self) -> None: ...
