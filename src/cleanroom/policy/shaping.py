"""Output shaping: round, clip or keep the top-k of named outputs before egress.

The shaping is declared in the policy module itself, as the value of the rule
``data.cleanroom.shaping``, so the policy digest that the attestation commits
to covers it::

    shaping := {
        "score": {"clip": [0, 1], "round": 2},
        "probabilities": {"top_k": 3},
    }

Each named output may carry any of three operations, always applied in this
order whatever order they are written in:

1. ``top_k`` (integer >= 1): along the last axis, keep the k largest values
   and set every other element to ``0`` (ties keep the lower index). The
   shape and dtype are unchanged, so clients see the same output signature.
2. ``clip`` (``[low, high]``, numbers, ``low <= high``): bound every element.
3. ``round`` (integer 0..15): round to that many decimal places (numpy's
   round-half-to-even). Integer and boolean outputs are left as they are.

Anything else (an unknown operation, a wrong type, a non-numeric or complex
output) is refused, never skipped: a misspelt ``"rund"`` must not let raw scores out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cleanroom.errors import PolicyError

__all__ = ["OutputRule", "OutputShaping"]

_OPERATIONS = frozenset({"top_k", "clip", "round"})
_MAX_DECIMALS = 15


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class OutputRule:
    """The shaping of one output; ``None`` means "not applied"."""

    top_k: int | None = None
    clip: tuple[float, float] | None = None
    round: int | None = None

    @classmethod
    def from_json(cls, name: str, doc: Any) -> OutputRule:
        if not isinstance(doc, Mapping) or not doc:
            raise PolicyError(f"shaping of output {name!r} must be a non-empty object")
        unknown = sorted(set(doc) - _OPERATIONS)
        if unknown:
            raise PolicyError(
                f"shaping of output {name!r} has unknown operation(s) {unknown}",
                remedy="use only top_k, clip and round",
            )
        top_k = doc.get("top_k")
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
            raise PolicyError(f"shaping top_k of output {name!r} must be an integer")
        if top_k is not None and top_k < 1:
            raise PolicyError(f"shaping top_k of output {name!r} must be at least 1")
        clip_doc = doc.get("clip")
        clip: tuple[float, float] | None = None
        if clip_doc is not None:
            if (
                not isinstance(clip_doc, list | tuple)
                or len(clip_doc) != 2
                or not all(_is_number(v) for v in clip_doc)
                or clip_doc[0] > clip_doc[1]
            ):
                raise PolicyError(
                    f"shaping clip of output {name!r} must be [low, high], low <= high"
                )
            clip = (float(clip_doc[0]), float(clip_doc[1]))
        decimals = doc.get("round")
        if decimals is not None and (
            not isinstance(decimals, int)
            or isinstance(decimals, bool)
            or not 0 <= decimals <= _MAX_DECIMALS
        ):
            raise PolicyError(
                f"shaping round of output {name!r} must be an integer 0..{_MAX_DECIMALS}"
            )
        return cls(top_k=top_k, clip=clip, round=decimals)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.top_k is not None:
            doc["top_k"] = self.top_k
        if self.clip is not None:
            doc["clip"] = [self.clip[0], self.clip[1]]
        if self.round is not None:
            doc["round"] = self.round
        return doc

    def apply(self, name: str, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        # Complex values have no order (top_k, clip) and numpy rounds only
        # floating dtypes here: refused, like strings, never passed unshaped.
        numeric = np.issubdtype(array.dtype, np.number) and not np.iscomplexobj(array)
        if not (numeric or array.dtype == np.bool_):
            raise PolicyError(f"output {name!r} of dtype {array.dtype} cannot be shaped")
        out = np.array(array, copy=True)
        if self.top_k is not None and out.ndim > 0 and out.shape[-1] > self.top_k:
            # A stable sort of the negated values keeps the lower index on ties.
            order = np.argsort(-out.astype(np.float64), axis=-1, kind="stable")
            drop = order[..., self.top_k :]
            np.put_along_axis(out, drop, 0, axis=-1)
        if self.clip is not None and out.dtype != np.bool_:
            low, high = self.clip
            if np.issubdtype(out.dtype, np.integer):
                out = np.clip(out, np.ceil(low), np.floor(high)).astype(array.dtype)
            else:
                out = np.clip(out, low, high).astype(array.dtype)
        if self.round is not None and np.issubdtype(out.dtype, np.floating):
            out = np.round(out, self.round).astype(array.dtype)
        return out


@dataclass(frozen=True)
class OutputShaping:
    """The shaping of every named output; empty means outputs pass unchanged."""

    rules: Mapping[str, OutputRule]

    @classmethod
    def none(cls) -> OutputShaping:
        return cls(rules={})

    @classmethod
    def from_json(cls, doc: Any) -> OutputShaping:
        """Parse the value of ``data.cleanroom.shaping`` (``None``: undefined)."""
        if doc is None:
            return cls.none()
        if not isinstance(doc, Mapping):
            raise PolicyError("data.cleanroom.shaping must be an object keyed by output name")
        rules: dict[str, OutputRule] = {}
        for name in sorted(doc):
            if not isinstance(name, str) or not name:
                raise PolicyError("data.cleanroom.shaping keys must be output names")
            rules[name] = OutputRule.from_json(name, doc[name])
        return cls(rules=rules)

    def to_json(self) -> dict[str, Any]:
        return {name: rule.to_json() for name, rule in sorted(self.rules.items())}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, outputs: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Shaped copies of *outputs*; the inputs are not modified.

        Fails closed: an output the shaping names but the model did not
        produce raises :class:`PolicyError` (the policy and the model disagree).
        """
        missing = sorted(set(self.rules) - set(outputs))
        if missing:
            raise PolicyError(
                f"the policy shapes output(s) {missing} which the model did not produce",
                remedy="align the policy's shaping with the model's output names",
            )
        shaped: dict[str, npt.NDArray[Any]] = {}
        for name, array in outputs.items():
            rule = self.rules.get(name)
            shaped[name] = rule.apply(name, np.asarray(array)) if rule else array
        return shaped
