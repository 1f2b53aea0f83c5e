"""The Rego in docs/policies.md compiles and behaves as the page says."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from cleanroom.policy import InstanceInfo, PolicyBundle, egress_input, ingress_input

DOC = Path(__file__).resolve().parents[2] / "docs" / "policies.md"
BLOCKS = re.findall(r"```rego\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_rego_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS)
def test_every_example_compiles(block: str) -> None:
    source = block if block.lstrip().startswith("package") else "package cleanroom\n\n" + block
    PolicyBundle.compile(source)


def test_the_worked_example_behaves_as_described() -> None:
    (source,) = [b for b in BLOCKS if "max_queries" in b]
    bundle = PolicyBundle.compile(source)
    instance = InstanceInfo(id="i", owner="lender@lender.example", users=[])
    features = {"features": np.zeros((1, 8), np.float32)}
    bank = "analyst@bank-a.example"

    def ingress(user: str, queries: int) -> bool:
        doc = ingress_input(
            action="predict", user=user, instance=instance, queries=queries, inputs=features
        )
        return bundle.evaluate_ingress(doc).allowed

    assert ingress(bank, 0)
    assert not ingress(bank, 100)
    assert not ingress("eve@example.com", 0)
    assert bundle.shaping.to_json() == {"score": {"round": 2}}

    def egress(outputs: dict[str, np.ndarray]) -> bool:
        doc = egress_input(
            action="predict", user=bank, instance=instance, queries=0, outputs=outputs
        )
        return bundle.evaluate_egress(doc).allowed

    shaped = bundle.shaping.apply({"decision": np.array([1]), "score": np.array([0.8765])})
    assert shaped["score"].tolist() == [0.88]
    assert egress(shaped)
    assert not egress({"decision": np.array([1]), "score": np.array([np.nan])})
    assert not egress({"score": np.array([0.5]), "logits": np.array([2.0])})
