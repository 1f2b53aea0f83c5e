"""The audit spec: strict parsing and a digest that pins every choice."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from cleanroom.audit import AuditSpec
from cleanroom.audit.thresholds import SplitThreshold
from cleanroom.errors import AuditError

SpecFactory = Callable[..., dict[str, Any]]


def test_round_trip_and_digest(spec_doc: SpecFactory) -> None:
    spec = AuditSpec.from_json(spec_doc())
    assert spec.attacks[0].threshold == SplitThreshold(seed=3)
    again = AuditSpec.from_bytes(spec.canonical_bytes())
    assert again == spec
    assert again.digest == spec.digest
    assert spec.digest.startswith("sha256:")
    assert len(spec.digest) == 71
    # Key order and whitespace of the source do not matter.
    reordered = json.dumps(dict(reversed(list(spec_doc().items()))), indent=3).encode()
    assert AuditSpec.from_bytes(reordered).digest == spec.digest


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("confidence", lambda d: d.update(confidence=0.99)),
        ("delta", lambda d: d.update(delta=1e-5)),
        ("claim", lambda d: d.update(epsilon_claim=2.0)),
        ("seed", lambda d: d.update(seed=2)),
        ("split seed", lambda d: d["attacks"][0]["threshold"].update(seed=4)),
        ("attack order", lambda d: d["attacks"].reverse()),
        ("member commitment", lambda d: d["datasets"].update(members="sha256:" + "0" * 64)),
        ("attribute values", lambda d: d["attribute_inference"][0].update(values=[0, 1, 2])),
    ],
)
def test_every_choice_changes_the_digest(
    spec_doc: SpecFactory, name: str, mutate: Callable[[dict[str, Any]], None]
) -> None:
    base = AuditSpec.from_json(spec_doc()).digest
    doc = copy.deepcopy(spec_doc())
    mutate(doc)
    assert AuditSpec.from_json(doc).digest != base, name


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("wrong format", lambda d: d.update(format="cleanroom-audit-spec/v0")),
        ("unknown member", lambda d: d.update(tuned_after_results=True)),
        ("missing claim", lambda d: d.pop("epsilon_claim")),
        ("missing seed", lambda d: d.pop("seed")),
        ("confidence one", lambda d: d.update(confidence=1.0)),
        ("confidence as string", lambda d: d.update(confidence="0.95")),
        ("negative delta", lambda d: d.update(delta=-0.1)),
        ("negative claim", lambda d: d.update(epsilon_claim=-1)),
        ("boolean seed", lambda d: d.update(seed=True)),
        ("huge seed", lambda d: d.update(seed=2**60)),
        ("no attacks", lambda d: d.update(attacks=[])),
        ("unknown attack", lambda d: d.update(attacks=[{"name": "oracle"}])),
        ("duplicate attack", lambda d: d.update(attacks=[{"name": "train-test-gap"}] * 2)),
        ("gap attack with threshold", lambda d: d["attacks"][1].update(threshold={})),
        ("loss attack without threshold", lambda d: d["attacks"][0].pop("threshold")),
        ("bad threshold policy", lambda d: d["attacks"][0].update(threshold={"policy": "peek"})),
        ("bad commitment", lambda d: d["datasets"].update(members="sha256:abc")),
        ("upper-case commitment", lambda d: d["datasets"].update(members="sha256:" + "A" * 64)),
        ("missing non-members", lambda d: d["datasets"].pop("nonmembers")),
        ("bad output kind", lambda d: d["model"].update(output_kind="labels")),
        ("empty input name", lambda d: d["model"].update(input="")),
        ("zero batch size", lambda d: d["model"].update(batch_size=0)),
        ("one attribute value", lambda d: d["attribute_inference"][0].update(values=[1])),
        ("repeated attribute value", lambda d: d["attribute_inference"][0].update(values=[1, 1])),
        ("negative column", lambda d: d["attribute_inference"][0].update(column=-1)),
        (
            "reference fraction one",
            lambda d: d.update(
                attacks=[
                    {
                        "name": "reference-model",
                        "threshold": {"policy": "split"},
                        "reference_fraction": 1.0,
                    }
                ]
            ),
        ),
    ],
)
def test_refusals(
    spec_doc: SpecFactory, name: str, mutate: Callable[[dict[str, Any]], None]
) -> None:
    doc = copy.deepcopy(spec_doc())
    mutate(doc)
    with pytest.raises(AuditError):
        AuditSpec.from_json(doc)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("not json", b"{"),
        ("not utf-8", b"\xff\xfe"),
        ("NaN literal", b'{"confidence": NaN}'),
        ("array", b"[]"),
        ("a name twice", b'{"confidence": 0.95, "confidence": 0.5}'),
    ],
)
def test_byte_level_refusals(name: str, raw: bytes) -> None:
    with pytest.raises(AuditError):
        AuditSpec.from_bytes(raw)
