"""The service's audit room: which uploads a spec takes, and when a certificate is current.

* A spec that names a pool takes the pool only. Its member and non-member
  sets must come from the room's random split of the pool; uploading the
  committed member set directly would skip the one check that makes the
  bounds valid (docs/privacy-audits.md, "Limits").
* ``input.audit.current`` is true only for a certificate, signed by this
  room, about the instance's present spec *and* present model.
"""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.audit import CERTIFICATE_FORMAT, AuditSpec, LabelledRecords, sign_certificate
from cleanroom.audit.split import split_pool
from cleanroom.errors import Conflict, InvalidRequest
from cleanroom.server.audits import CERTIFICATE_OPTION, SPEC_OPTION, AuditRoom

MODEL = "sha256:" + "3" * 64
OTHER = "sha256:" + "4" * 64


def _npz(records: LabelledRecords) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, features=records.features, labels=records.labels)
    return buffer.getvalue()


def _pool() -> LabelledRecords:
    rng = np.random.default_rng(17)
    return LabelledRecords.of(rng.normal(size=(24, 3)), rng.integers(0, 2, 24))


def _spec_doc(members: LabelledRecords, nonmembers: LabelledRecords) -> dict[str, Any]:
    return {
        "format": "cleanroom-audit-spec/v1",
        "model": {"input": "X", "output": "probabilities", "output_kind": "probabilities"},
        "datasets": {"members": members.commitment(), "nonmembers": nonmembers.commitment()},
        "attacks": [{"name": "train-test-gap"}],
        "confidence": 0.95,
        "delta": 0.0,
        "epsilon_claim": 1.0,
        "seed": 0,
    }


def _record(spec: dict[str, Any], **options: Any) -> Any:
    return SimpleNamespace(id="inst-1", options={SPEC_OPTION: spec, **options}, model_digest=MODEL)


def _room(key: ed25519.Ed25519PrivateKey | None = None) -> AuditRoom:
    tee = SimpleNamespace(signing_key=key or ed25519.Ed25519PrivateKey.generate())
    return AuditRoom(store=None, tee=tee)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["members", "nonmembers"])
def test_a_pool_spec_refuses_the_committed_sets_uploaded_directly(name: str) -> None:
    pool = _pool()
    members, nonmembers = split_pool(pool)
    doc = _spec_doc(members, nonmembers)
    doc["datasets"]["pool"] = pool.commitment()
    upload = {"members": members, "nonmembers": nonmembers}[name]
    room = _room()
    with pytest.raises(InvalidRequest, match="takes"):
        room.put_dataset(_record(doc), name, _npz(upload))
    # The pool itself is taken and gives both sets.
    assert room.put_dataset(_record(doc), "pool", _npz(pool)) == pool.commitment()


def test_a_spec_without_a_pool_refuses_a_pool_upload() -> None:
    pool = _pool()
    members, nonmembers = split_pool(pool)
    with pytest.raises(InvalidRequest, match="takes"):
        _room().put_dataset(_record(_spec_doc(members, nonmembers)), "pool", _npz(pool))


def _certificate(key: ed25519.Ed25519PrivateKey, spec_digest: str, model_digest: str) -> str:
    body = {
        "format": CERTIFICATE_FORMAT,
        "audit": "membership-audit",
        "issued_at": "2026-11-21T12:00:00Z",
        "spec_digest": spec_digest,
        "model_digest": model_digest,
        "epsilon_lower_bound": {"kind": "lower-bound", "epsilon": 0.2},
        "ceiling": 3.0,
        "verdict": "CONSISTENT",
    }
    return sign_certificate(body, key).decode()


@pytest.mark.parametrize(
    ("spec_matches", "model_matches", "current"),
    [(True, True, True), (False, True, False), (True, False, False), (False, False, False)],
)
def test_a_certificate_is_current_only_for_the_present_spec_and_model(
    spec_matches: bool, model_matches: bool, current: bool
) -> None:
    pool = _pool()
    doc = _spec_doc(*split_pool(pool))
    digest = AuditSpec.from_json(doc).digest
    key = ed25519.Ed25519PrivateKey.generate()
    document = _certificate(
        key, digest if spec_matches else OTHER, MODEL if model_matches else OTHER
    )
    summary = _room(key).summary(_record(doc, **{CERTIFICATE_OPTION: document}))
    assert summary["current"] is current
    assert summary["spec_digest"] == digest


def test_a_certificate_signed_by_another_key_is_not_current() -> None:
    doc = _spec_doc(*split_pool(_pool()))
    digest = AuditSpec.from_json(doc).digest
    document = _certificate(ed25519.Ed25519PrivateKey.generate(), digest, MODEL)
    summary = _room().summary(_record(doc, **{CERTIFICATE_OPTION: document}))
    assert summary["current"] is False
    assert summary["verdict"] is None


@pytest.mark.parametrize("uploaded", ["members", "nonmembers"])
def test_an_audit_with_one_set_missing_is_refused_naming_it(uploaded: str) -> None:
    members, nonmembers = split_pool(_pool())
    record = _record(_spec_doc(members, nonmembers))
    room = _room()
    room.put_dataset(
        record, uploaded, _npz({"members": members, "nonmembers": nonmembers}[uploaded])
    )
    missing = "nonmembers" if uploaded == "members" else "members"
    runner = SimpleNamespace(run=lambda inputs: pytest.fail("the model must not be queried"))
    with pytest.raises(Conflict, match=f"missing: {missing}"):
        room.run(record, runner, lambda _: {})  # type: ignore[arg-type]
