"""The audit spec: everything about an audit that must be fixed before the data.

Attacks, threshold policies, confidence, δ, the ε claim, seeds and the
commitments of the member and non-member sets, and optionally of the pool they
are split from at random (``datasets.pool``, :mod:`cleanroom.audit.split`),
which is what makes the bounds valid. Its digest (SHA-256 of its
RFC 8785 canonical JSON) is meant to sit in the instance's attested
configuration next to the policy digest, so the audit cannot be re-tuned
after its results are seen. Parsing is strict: unknown members, missing
members and out-of-range values are refused.

Example::

    {
      "format": "cleanroom-audit-spec/v1",
      "model": {"input": "float_input", "output": "probabilities",
                "output_kind": "probabilities"},
      "datasets": {"members": "sha256:…", "nonmembers": "sha256:…", "pool": "sha256:…"},
      "attacks": [
        {"name": "loss-threshold", "threshold": {"policy": "split", "seed": 7}},
        {"name": "train-test-gap"}
      ],
      "attribute_inference": [{"column": 3, "values": [0, 1]}],
      "confidence": 0.95,
      "delta": 0.0,
      "epsilon_claim": 2.0,
      "seed": 7
    }
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from cleanroom.audit._canonical import canonical_json, parse_json, sha256_digest
from cleanroom.audit.thresholds import ThresholdPolicy, threshold_policy_from_json
from cleanroom.errors import AuditError

__all__ = [
    "ATTACK_NAMES",
    "SPEC_FORMAT",
    "AttackSpec",
    "AttributeSpec",
    "AuditSpec",
    "ModelBinding",
]

SPEC_FORMAT = "cleanroom-audit-spec/v1"
ATTACK_NAMES = ("loss-threshold", "train-test-gap", "reference-model")
# I-JSON safe integers (RFC 7493 §2.2), so the canonical form exists.
_MAX_INT = 2**53 - 1


@dataclass(frozen=True)
class ModelBinding:
    """How to query the model: its input tensor and its per-class output tensor."""

    input: str
    output: str
    output_kind: Literal["probabilities", "logits"]
    batch_size: int = 1024


@dataclass(frozen=True)
class AttackSpec:
    name: str
    threshold: ThresholdPolicy | None = None
    reference_fraction: float = 0.5
    reference_models: int = 1

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name}
        if self.threshold is not None:
            out["threshold"] = self.threshold.to_json()
        if self.name == "reference-model":
            out["reference_fraction"] = self.reference_fraction
            out["reference_models"] = self.reference_models
        return out


@dataclass(frozen=True)
class AttributeSpec:
    """A sensitive feature column and the values it can take."""

    column: int
    values: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        return {"column": self.column, "values": list(self.values)}


@dataclass(frozen=True)
class AuditSpec:
    model: ModelBinding
    members_commitment: str
    nonmembers_commitment: str
    attacks: tuple[AttackSpec, ...]
    attribute_inference: tuple[AttributeSpec, ...]
    confidence: float
    delta: float
    epsilon_claim: float
    seed: int
    # The pool the two sets are split from (cleanroom.audit.split), if the spec
    # names one: the clean room then takes only the pool and derives both sets.
    pool_commitment: str | None = None

    def to_json(self) -> dict[str, object]:
        datasets = {"members": self.members_commitment, "nonmembers": self.nonmembers_commitment}
        if self.pool_commitment is not None:
            datasets["pool"] = self.pool_commitment
        return {
            "format": SPEC_FORMAT,
            "model": {
                "input": self.model.input,
                "output": self.model.output,
                "output_kind": self.model.output_kind,
                "batch_size": self.model.batch_size,
            },
            "datasets": datasets,
            "attacks": [a.to_json() for a in self.attacks],
            "attribute_inference": [a.to_json() for a in self.attribute_inference],
            "confidence": self.confidence,
            "delta": self.delta,
            "epsilon_claim": self.epsilon_claim,
            "seed": self.seed,
        }

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def digest(self) -> str:
        """``sha256:…`` of the canonical JSON; what the attested configuration commits to."""
        return sha256_digest(self.canonical_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> AuditSpec:
        return cls.from_json(parse_json(data, "the audit spec", AuditError))

    @classmethod
    def from_json(cls, doc: object) -> AuditSpec:
        d = _object(doc, "audit spec")
        _members(
            d,
            "audit spec",
            required={"format", "model", "datasets", "attacks", "confidence", "delta"}
            | {"epsilon_claim", "seed"},
            optional={"attribute_inference"},
        )
        if d["format"] != SPEC_FORMAT:
            raise AuditError(f"unsupported audit spec format {d['format']!r}")
        model = _object(d["model"], "model")
        _members(model, "model", {"input", "output", "output_kind"}, {"batch_size"})
        kind = model["output_kind"]
        if kind not in ("probabilities", "logits"):
            raise AuditError("model.output_kind must be 'probabilities' or 'logits'")
        binding = ModelBinding(
            input=_text(model["input"], "model.input"),
            output=_text(model["output"], "model.output"),
            output_kind=kind,
            batch_size=_int(model.get("batch_size", 1024), "model.batch_size", low=1),
        )
        datasets = _object(d["datasets"], "datasets")
        _members(datasets, "datasets", {"members", "nonmembers"}, {"pool"})
        attacks_doc = d["attacks"]
        if not isinstance(attacks_doc, list) or not attacks_doc:
            raise AuditError("attacks must be a non-empty list")
        attacks = tuple(_attack(a) for a in attacks_doc)
        names = [a.name for a in attacks]
        if len(set(names)) != len(names):
            raise AuditError("each attack may appear once in a spec")
        attributes_doc = d.get("attribute_inference", [])
        if not isinstance(attributes_doc, list):
            raise AuditError("attribute_inference must be a list")
        confidence = _number(d["confidence"], "confidence")
        if not 0.5 <= confidence < 1.0:
            raise AuditError("confidence must be in [0.5, 1)")
        delta = _number(d["delta"], "delta")
        if not 0.0 <= delta < 1.0:
            raise AuditError("delta must be in [0, 1)")
        claim = _number(d["epsilon_claim"], "epsilon_claim")
        if claim < 0.0:
            raise AuditError("epsilon_claim must not be negative")
        return cls(
            model=binding,
            members_commitment=_commitment(datasets["members"], "datasets.members"),
            nonmembers_commitment=_commitment(datasets["nonmembers"], "datasets.nonmembers"),
            attacks=attacks,
            attribute_inference=tuple(_attribute(a) for a in attributes_doc),
            confidence=confidence,
            delta=delta,
            epsilon_claim=claim,
            seed=_int(d["seed"], "seed", low=0),
            pool_commitment=(
                None if "pool" not in datasets else _commitment(datasets["pool"], "datasets.pool")
            ),
        )


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AuditError(f"{where} must be a JSON object")
    return value


def _members(d: dict[str, Any], where: str, required: set[str], optional: set[str]) -> None:
    missing = required - set(d)
    unknown = set(d) - required - optional
    problems = []
    if missing:
        problems.append(f"missing {sorted(missing)}")
    if unknown:
        problems.append(f"unknown {sorted(unknown)}")
    if problems:
        raise AuditError(f"{where}: " + "; ".join(problems))


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise AuditError(f"{where} must be a non-empty string")
    return value


def _int(value: object, where: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _MAX_INT:
        raise AuditError(f"{where} must be an integer between {low} and 2**53 - 1")
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuditError(f"{where} must be a number")
    out = float(value)
    if not math.isfinite(out):
        raise AuditError(f"{where} must be finite")
    return out


def _commitment(value: object, where: str) -> str:
    text = _text(value, where)
    hex_part = text.removeprefix("sha256:")
    if not text.startswith("sha256:") or len(hex_part) != 64:
        raise AuditError(f"{where} must be 'sha256:' and 64 lower-case hex digits")
    if any(c not in "0123456789abcdef" for c in hex_part):
        raise AuditError(f"{where} must be 'sha256:' and 64 lower-case hex digits")
    return text


def _attack(doc: object) -> AttackSpec:
    d = _object(doc, "attack")
    name = d.get("name")
    if name not in ATTACK_NAMES:
        raise AuditError(f"unknown attack {name!r}; known: {', '.join(ATTACK_NAMES)}")
    if name == "train-test-gap":
        _members(d, name, {"name"}, set())
        return AttackSpec(name=name)
    optional = {"reference_fraction", "reference_models"} if name == "reference-model" else set()
    _members(d, name, {"name", "threshold"}, optional)
    fraction = _number(d.get("reference_fraction", 0.5), "reference_fraction")
    if not 0.0 < fraction < 1.0:
        raise AuditError("reference_fraction must be in (0, 1)")
    return AttackSpec(
        name=name,
        threshold=threshold_policy_from_json(d["threshold"]),
        reference_fraction=fraction,
        reference_models=_int(d.get("reference_models", 1), "reference_models", low=1),
    )


def _attribute(doc: object) -> AttributeSpec:
    d = _object(doc, "attribute_inference entry")
    _members(d, "attribute_inference entry", {"column", "values"}, set())
    values = d["values"]
    if not isinstance(values, list) or len(values) < 2:
        raise AuditError("an attribute needs a list of at least two candidate values")
    parsed = tuple(_number(v, "attribute value") for v in values)
    if len(set(parsed)) != len(parsed):
        raise AuditError("attribute values must be distinct")
    return AttributeSpec(column=_int(d["column"], "attribute column", low=0), values=parsed)
