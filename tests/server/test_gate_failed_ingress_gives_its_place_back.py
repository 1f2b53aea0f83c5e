"""A prediction whose ingress check fails with an error (not a denial) gives back its
place in the party's query count: a request that never ran must not use up budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.server.fast_setup import USER, instance_record, new_gate

from cleanroom.errors import InvalidRequest
from cleanroom.policy import PolicyBundle
from cleanroom.server.gate import PREDICT, Gate
from cleanroom.server.store import InstanceRecord

REQUEST = "sha256:" + "0" * 64
BUDGET_OF_ONE = "package cleanroom\nallow_ingress if input.usage.queries < 1\n"


def _record() -> InstanceRecord:
    return instance_record(BUDGET_OF_ONE)


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    return new_gate(tmp_path)


def _engine_failure(self: PolicyBundle, document: Any) -> Any:
    raise RuntimeError("the policy engine failed")


def _tensor_name_not_text(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    gate.ingress(_record(), USER, PREDICT, REQUEST, inputs={1: np.zeros(1)})  # type: ignore[dict-item]


def _engine_raises(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PolicyBundle, "evaluate_ingress", _engine_failure)
    try:
        gate.ingress(_record(), USER, PREDICT, REQUEST, payload_nbytes=1)
    finally:
        monkeypatch.undo()


FAILURES = [
    ("a tensor name that is not text", _tensor_name_not_text, InvalidRequest),
    ("the policy engine raises", _engine_raises, RuntimeError),
]


@pytest.mark.parametrize(("case", "fail", "error"), FAILURES, ids=[case for case, _, _ in FAILURES])
def test_a_prediction_whose_ingress_check_fails_gives_its_place_back(
    gate: Gate, monkeypatch: pytest.MonkeyPatch, case: str, fail: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        fail(gate, monkeypatch)
    assert gate.queries("inst-1", USER) == 0
    # The budget of one is still there: the next prediction is admitted and counted.
    ticket = gate.ingress(_record(), USER, PREDICT, REQUEST, payload_nbytes=1)
    assert (ticket.queries, ticket.reserved) == (0, True)
    assert gate.queries("inst-1", USER) == 1
