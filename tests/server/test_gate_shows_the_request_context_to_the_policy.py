"""The request's context (say, a consent artefact) reaches the policy at ingress and
again at egress, unchanged: a policy that refuses a purpose must see that purpose."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.server.fast_setup import USER, instance_record, new_gate

from cleanroom.errors import PolicyDenied
from cleanroom.server.gate import PREDICT, Gate
from cleanroom.server.store import InstanceRecord

REQUEST = "sha256:" + "0" * 64

# Ingress refuses a marketing purpose; egress lets a result out only for a credit check.
PURPOSE_POLICY = """package cleanroom
default allow_ingress := false
default allow_egress := false
allow_ingress if not input.context.purpose == "marketing"
allow_egress if input.context.purpose == "credit-check"
deny_reason contains "marketing is not a permitted purpose" if {
    input.direction == "ingress"
    input.context.purpose == "marketing"
}
"""


def _record(policy: str) -> InstanceRecord:
    return instance_record(policy)


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    return new_gate(tmp_path)


def _ingress(gate: Gate, context: dict[str, Any] | None) -> Any:
    return gate.ingress(
        _record(PURPOSE_POLICY),
        USER,
        PREDICT,
        REQUEST,
        inputs={"x": np.zeros(1, dtype=np.float32)},
        context=context,
    )


def test_a_refused_purpose_in_the_context_is_denied_at_ingress(gate: Gate) -> None:
    with pytest.raises(PolicyDenied, match="marketing is not a permitted purpose"):
        _ingress(gate, {"purpose": "marketing"})
    entry = gate.log.entry(gate.log.size - 1)
    assert (entry.decision, entry.reason) == ("deny", "marketing is not a permitted purpose")
    assert gate.queries("inst-1", USER) == 0


OUTPUTS = {"y": np.ones(1, dtype=np.float32)}


@pytest.mark.parametrize(
    ("context", "let_out"),
    [
        ({"purpose": "credit-check"}, True),
        ({"purpose": "research"}, False),
        ({}, False),
        (None, False),
    ],
    ids=["permitted purpose", "another purpose", "empty context", "no context"],
)
def test_egress_sees_the_context_of_the_request(
    gate: Gate, context: dict[str, Any] | None, let_out: bool
) -> None:
    ticket = _ingress(gate, context)
    if let_out:
        assert gate.egress(ticket, OUTPUTS)["y"].tolist() == [1.0]
        return
    with pytest.raises(PolicyDenied):
        gate.egress(ticket, OUTPUTS)
