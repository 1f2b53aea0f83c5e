"""Each allowed entry in the decision log names the model that was actually involved.

For an upload, that is the model just uploaded (the record still names the one it
replaces, or none); for a prediction, the model installed on the instance. A log
that named the wrong model would leave data owners unable to see which model was
uploaded or which one answered.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.server.fast_setup import OWNER, USER, instance_record, new_gate

from cleanroom.server.gate import PREDICT, UPLOAD, Gate
from cleanroom.server.store import InstanceRecord

REQUEST = "sha256:" + "0" * 64
OLD_MODEL = "sha256:" + "1" * 64
NEW_MODEL = "sha256:" + "2" * 64
ALLOW_ALL = "package cleanroom\nallow_ingress := true\nallow_egress := true\n"


def _record(model_digest: str | None) -> InstanceRecord:
    return instance_record(ALLOW_ALL, model_digest=model_digest)


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    return new_gate(tmp_path)


@pytest.mark.parametrize(
    "installed", [None, OLD_MODEL], ids=["first upload", "upload replacing a model"]
)
def test_an_upload_is_logged_with_the_digest_of_the_uploaded_model(
    gate: Gate, installed: str | None
) -> None:
    ticket = gate.ingress(_record(installed), OWNER, UPLOAD, REQUEST, payload_nbytes=1)
    entry = gate.allowed(ticket, None, model_digest=NEW_MODEL)
    assert entry.model_digest == NEW_MODEL
    assert gate.log.entry(entry.seq).model_digest == NEW_MODEL  # as stored and signed


def test_a_prediction_is_logged_with_the_digest_of_the_installed_model(gate: Gate) -> None:
    ticket = gate.ingress(_record(OLD_MODEL), USER, PREDICT, REQUEST, payload_nbytes=1)
    entry = gate.allowed(ticket, b"sealed response")
    assert entry.model_digest == OLD_MODEL
    assert entry.response_digest is not None
