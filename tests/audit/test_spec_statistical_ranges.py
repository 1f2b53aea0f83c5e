"""The spec refuses statistical parameters the audit could not honour, when it is parsed.

A spec's digest is attested with the instance before any data exists, so a
confidence, δ or reference fraction outside its range must be refused then,
not discovered (or silently accepted) when the audit runs. With two attacks a
spec-level confidence of 0.3 would still give each attack a per-attack level
of 0.65, which the statistics accept: only the spec can refuse it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from cleanroom.audit import AuditSpec
from cleanroom.errors import AuditError

SpecFactory = Callable[..., dict[str, Any]]


@pytest.mark.parametrize("confidence", [0.0, 0.3, 0.4999, 1.0, 1.5, -0.95])
def test_confidence_outside_half_to_one_is_refused(
    spec_doc: SpecFactory, confidence: float
) -> None:
    with pytest.raises(AuditError, match=r"confidence must be in \[0\.5, 1\)"):
        AuditSpec.from_json(spec_doc(confidence=confidence))


@pytest.mark.parametrize("confidence", [0.5, 0.95, 0.999999])
def test_confidence_inside_the_range_is_kept(spec_doc: SpecFactory, confidence: float) -> None:
    assert AuditSpec.from_json(spec_doc(confidence=confidence)).confidence == confidence


@pytest.mark.parametrize("delta", [1.0, 1.5, -1e-12])
def test_delta_outside_zero_to_one_is_refused(spec_doc: SpecFactory, delta: float) -> None:
    with pytest.raises(AuditError, match=r"delta must be in \[0, 1\)"):
        AuditSpec.from_json(spec_doc(delta=delta))


@pytest.mark.parametrize("delta", [0.0, 1e-5, 0.999])
def test_delta_inside_the_range_is_kept(spec_doc: SpecFactory, delta: float) -> None:
    assert AuditSpec.from_json(spec_doc(delta=delta)).delta == delta


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 2.0])
def test_reference_fraction_outside_the_open_interval_is_refused(
    spec_doc: SpecFactory, fraction: float
) -> None:
    doc = copy.deepcopy(spec_doc())
    doc["attacks"] = [
        {
            "name": "reference-model",
            "threshold": {"policy": "split"},
            "reference_fraction": fraction,
        }
    ]
    with pytest.raises(AuditError, match=r"reference_fraction must be in \(0, 1\)"):
        AuditSpec.from_json(doc)
