"""A party's query budget holds under parallel requests: each admitted prediction
counts from ingress on, and gives its place back only if it is not logged as allowed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.errors import PolicyDenied
from cleanroom.server.gate import PREDICT, UPLOAD, Gate, GateTicket
from cleanroom.server.store import InstanceRecord

USER = "user@example.com"
OTHER = "other@example.com"
DIGEST = "sha256:" + "0" * 64
BUDGET_OF_TWO = """package cleanroom
allow_ingress if input.usage.queries < 2
allow_egress if count(input.response.names) > 0
deny_reason contains "query budget exhausted" if input.usage.queries >= 2
"""


def record(instance_id: str = "inst-1") -> InstanceRecord:
    return InstanceRecord(
        id=instance_id,
        name="n",
        owner="owner@example.com",
        format="onnx",
        users=(USER, OTHER),
        created=0,
        model_digest=None,
        model_size=None,
        model_signature=None,
        options={"policy": BUDGET_OF_TWO},
    )


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    return Gate(tmp_path / "log.db", ed25519.Ed25519PrivateKey.generate())


def admit(gate: Gate, user: str = USER, instance_id: str = "inst-1") -> GateTicket:
    return gate.ingress(record(instance_id), user, PREDICT, DIGEST, payload_nbytes=1)


def test_an_admitted_prediction_counts_before_it_is_logged(gate: Gate) -> None:
    first = admit(gate)
    assert first.queries == 0
    second = admit(gate)
    assert second.queries == 1
    assert gate.queries("inst-1", USER) == 2
    with pytest.raises(PolicyDenied, match="query budget exhausted"):
        admit(gate)  # two in flight: the third never starts
    gate.allowed(first, b"sealed")
    gate.allowed(second, b"sealed")
    assert gate.queries("inst-1", USER) == 2
    with pytest.raises(PolicyDenied, match="query budget exhausted"):
        admit(gate)


def test_a_failed_prediction_gives_its_place_back(gate: Gate) -> None:
    failed = admit(gate)
    gate.release(failed)  # the run failed: nothing was logged as allowed
    gate.release(failed)  # releasing twice changes nothing
    assert gate.queries("inst-1", USER) == 0
    assert admit(gate).queries == 0


def test_a_result_denied_at_egress_gives_its_place_back(gate: Gate) -> None:
    ticket = admit(gate)
    with pytest.raises(PolicyDenied):
        gate.egress(ticket, {})  # the policy lets no empty result out
    assert not ticket.reserved
    assert gate.queries("inst-1", USER) == 0


def test_a_logged_prediction_releases_and_counts_once(gate: Gate) -> None:
    ticket = admit(gate)
    gate.allowed(ticket, b"sealed")
    gate.release(ticket)  # the service's finally after a logged prediction
    assert not ticket.reserved
    assert gate.queries("inst-1", USER) == 1


def test_reservations_are_per_party_and_per_instance(gate: Gate) -> None:
    admit(gate)
    admit(gate)
    assert admit(gate, user=OTHER).queries == 0
    assert admit(gate, instance_id="inst-2").queries == 0


def test_an_upload_neither_reserves_nor_is_refused_by_the_prediction_budget(gate: Gate) -> None:
    admit(gate)
    owner_policy = "package cleanroom\nallow_ingress if input.usage.queries >= 1\n"
    upload_record = InstanceRecord(**{**record().__dict__, "options": {"policy": owner_policy}})
    ticket = gate.ingress(upload_record, USER, UPLOAD, DIGEST, payload_nbytes=1)
    assert (ticket.queries, ticket.reserved) == (1, False)
    assert gate.queries("inst-1", USER) == 1


def test_parallel_predictions_never_run_past_the_budget(gate: Gate) -> None:
    start = threading.Barrier(16)

    def predict() -> bool:
        start.wait()
        try:
            ticket = admit(gate)
        except PolicyDenied:
            return False
        try:
            gate.egress(ticket, {"y": np.zeros(1, dtype=np.float32)})
            gate.allowed(ticket, b"sealed")
        finally:
            gate.release(ticket)
        return True

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda _: predict(), range(16)))
    assert outcomes.count(True) == 2
    assert gate.log.count("inst-1", USER, action=PREDICT, allowed=True) == 2
    assert gate.queries("inst-1", USER) == 2


def test_a_prediction_being_logged_is_never_counted_twice(
    gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between its log entry and the end of its reservation, a prediction must not
    count both as logged and as in flight: the next request in budget would be denied."""
    first = admit(gate)
    appended, go = threading.Event(), threading.Event()
    append = gate.log.append

    def slow_append(*args: Any, **kwargs: Any) -> Any:
        entry = append(*args, **kwargs)
        appended.set()
        go.wait(10)
        return entry

    monkeypatch.setattr(gate.log, "append", slow_append)
    logging = threading.Thread(target=gate.allowed, args=(first, b"sealed"))
    logging.start()
    assert appended.wait(10)
    seen: list[int] = []
    reserving = threading.Thread(target=lambda: seen.append(admit(gate).queries))
    reserving.start()
    reserving.join(0.2)  # it waits for the logging step to finish...
    go.set()
    logging.join(10)
    reserving.join(10)
    assert seen == [1]  # ...and then counts the first prediction once
