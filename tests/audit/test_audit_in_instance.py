"""A membership audit of a model served in an instance: spec fixed and attested at creation,
datasets sealed in, only aggregates out, a certificate that verifies offline, and an instance
policy that serves only while a current certificate exists."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.attestation.measurement import package_measurement
from cleanroom.audit import AuditSpec, LabelledRecords, split_pool
from cleanroom.cli.main import main
from cleanroom.errors import (
    AuditError,
    InvalidRequest,
    NotFound,
    PolicyDenied,
    ServiceUnavailable,
)
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings

PASSWORD = "correct horse battery staple"

# Serve only while the instance holds a current certificate (any verdict: the
# verdict is for the parties to read; a stricter policy would require CONSISTENT).
AUDITED_POLICY = """
package cleanroom

default allow_ingress := false
default allow_egress := false

allow_ingress if {
    input.action == "upload_model"
    input.user == input.instance.owner
}

allow_ingress if {
    input.action == "predict"
    input.audit.current == true
}

allow_egress if true

deny_reason contains "no current privacy-audit certificate" if {
    input.action == "predict"
    not input.audit.current
}
"""


def _npz(records: LabelledRecords) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, features=records.features, labels=records.labels)
    return buffer.getvalue()


def _spec(task: Any) -> dict[str, Any]:
    return {
        "format": "cleanroom-audit-spec/v1",
        "model": {"input": "X", "output": "probabilities", "output_kind": "probabilities"},
        "datasets": {
            "members": task.members.commitment(),
            "nonmembers": task.nonmembers.commitment(),
        },
        "attacks": [
            {"name": "loss-threshold", "threshold": {"policy": "split", "seed": 3}},
            {"name": "train-test-gap"},
        ],
        "confidence": 0.95,
        "delta": 0.0,
        "epsilon_claim": 1.0,
        "seed": 3,
    }


def _policy(data_dir: Path) -> AttestationPolicy:
    return AttestationPolicy(
        measurements=[package_measurement().hex()],
        allow_simulated=True,
        simulated_root=data_dir / "simulated-root.pem",
    )


@pytest.fixture
def room(tmp_path: Path) -> Iterator[tuple[ServerThread, Path]]:
    with ServerThread(ServerSettings(data_dir=tmp_path)) as server:
        yield server, tmp_path


def test_audit_in_an_instance_certifies_and_gates_serving(
    room: tuple[ServerThread, Path], task: Any, overfit_model: Path, tmp_path: Path
) -> None:
    server, data_dir = room
    spec = _spec(task)
    policy = _policy(data_dir)
    owner = Client(server.url)
    owner.sign_up("owner@lender.example", PASSWORD)
    owner.sign_in("owner@lender.example", PASSWORD)
    bank = Client(server.url)
    bank.sign_up("analyst@bank.example", PASSWORD)
    bank.sign_in("analyst@bank.example", PASSWORD)

    inst = owner.create_instance(
        "Audited",
        ModelFormat.ONNX,
        ["analyst@bank.example"],
        policy=AUDITED_POLICY,
        audit_spec=spec,
    )
    inst.validate_attestation(policy)
    assert inst.attested_config is not None
    assert inst.attested_config["instance"]["audit_spec_digest"] == AuditSpec.from_json(spec).digest
    inst.set_secret(Secret())
    inst.upload_model(overfit_model)

    analyst = bank.get_instance(inst.id)
    analyst.validate_attestation(policy)
    analyst.set_secret(Secret())
    x = task.nonmembers.features[:2]
    with pytest.raises(PolicyDenied, match="no current privacy-audit certificate"):
        analyst.predict({"X": x})
    with pytest.raises(NotFound):
        analyst.audit_certificate()

    # A record set other than the committed one is refused before any attack runs.
    with pytest.raises(AuditError, match="commitment"):
        inst.upload_audit_data(_npz(task.nonmembers), _npz(task.nonmembers))
    inst.upload_audit_data(_npz(task.members), _npz(task.nonmembers))
    certificate = inst.run_audit()
    assert certificate.spec_digest == AuditSpec.from_json(spec).digest
    assert certificate.model_digest == inst.attested_config["instance"]["model_digest"]
    assert certificate.verdict in ("CONSISTENT", "VIOLATION")
    assert certificate.epsilon_lower_bound <= certificate.ceiling

    # The data owner retrieves the same certificate, verified against its evidence.
    seen = analyst.audit_certificate()
    assert seen.verdict == certificate.verdict
    assert analyst.predict({"X": x})["probabilities"].shape == (2, 2)

    # No per-record score leaves the room: the certificate holds aggregates only.
    document = bank.request("GET", f"/v1/instances/{inst.id}/audit/certificate").content
    assert len(document) < 64 * 1024
    body = json.loads(document)
    assert "scores" not in json.dumps(body)

    # Offline: the CLI verifies it against the attestation policy.
    cert_file = tmp_path / "certificate.json"
    cert_file.write_bytes(document)
    policy_file = tmp_path / "attestation-policy.json"
    policy_file.write_text(
        json.dumps(
            {
                "allow_simulated": True,
                "simulated_root": str(data_dir / "simulated-root.pem"),
                "sev-snp": {"measurements": [package_measurement().hex()]},
            }
        )
    )
    assert main(["audit", "verify", str(cert_file), "--attestation-policy", str(policy_file)]) == 0
    flipped = "CONSISTENT" if body["certificate"]["verdict"] == "VIOLATION" else "VIOLATION"
    tampered = body | {"certificate": body["certificate"] | {"verdict": flipped}}
    cert_file.write_text(json.dumps(tampered))
    assert main(["audit", "verify", str(cert_file), "--attestation-policy", str(policy_file)]) == 1
    owner.close()
    bank.close()


def test_record_sets_held_in_memory_have_a_budget(
    room: tuple[ServerThread, Path], task: Any
) -> None:
    server, data_dir = room
    owner = Client(server.url)
    owner.sign_up("owner@budget.example", PASSWORD)
    owner.sign_in("owner@budget.example", PASSWORD)
    inst = owner.create_instance("Budget", ModelFormat.ONNX, [], audit_spec=_spec(task))
    inst.validate_attestation(_policy(data_dir))
    inst.set_secret(Secret())
    held = [r.features.nbytes + r.labels.nbytes for r in (task.members, task.nonmembers)]
    server.service.audits.max_held_bytes = sum(held) - 1
    with pytest.raises(ServiceUnavailable, match="would exceed"):
        inst.upload_audit_data(_npz(task.members), _npz(task.nonmembers))
    # The set that fitted is held; the refused one is not. Replacing a set does not
    # count it twice, and once the budget allows both they are held.
    server.service.audits.max_held_bytes = sum(held)
    inst.upload_audit_data(_npz(task.members), _npz(task.nonmembers))
    owner.close()


def _pool_of(task: Any) -> LabelledRecords:
    """The task's members and non-members as one pool."""
    return LabelledRecords.of(
        np.concatenate([task.members.features, task.nonmembers.features]),
        np.concatenate([task.members.labels, task.nonmembers.labels]),
    )


def _audited_instance(
    server: ServerThread, data_dir: Path, email: str, spec: dict[str, Any]
) -> tuple[Client, Any]:
    """A new owner's instance with *spec*, attested, with a secret set."""
    owner = Client(server.url)
    owner.sign_up(email, PASSWORD)
    owner.sign_in(email, PASSWORD)
    inst = owner.create_instance("Audited", ModelFormat.ONNX, [], audit_spec=spec)
    inst.validate_attestation(_policy(data_dir))
    inst.set_secret(Secret())
    return owner, inst


def test_an_audit_on_a_pool_derives_its_sets_in_the_room(
    room: tuple[ServerThread, Path], task: Any, overfit_model: Path
) -> None:
    """The owner uploads the pool only; the room splits it and checks the split."""
    server, data_dir = room
    pool = _pool_of(task)
    members, nonmembers = split_pool(pool)
    spec = _spec(task)
    spec["datasets"] = {
        "members": members.commitment(),
        "nonmembers": nonmembers.commitment(),
        "pool": pool.commitment(),
    }
    owner, inst = _audited_instance(server, data_dir, "owner@pool.example", spec)
    inst.upload_model(overfit_model)
    # The two sets come from the pool only: uploading them directly is refused.
    with pytest.raises(InvalidRequest, match="takes \\['pool'\\]"):
        inst.upload_audit_data(_npz(members), _npz(nonmembers))
    # Another pool, or the same records in another order, is refused.
    reordered = pool.subset(np.arange(len(pool))[::-1].copy())
    with pytest.raises(AuditError, match="pool does not match"):
        inst.upload_audit_pool(_npz(reordered))
    inst.upload_audit_pool(_npz(pool))
    certificate = inst.run_audit()
    assert certificate.spec_digest == AuditSpec.from_json(spec).digest
    owner.close()


def test_a_pool_whose_split_is_not_the_committed_sets_is_refused(
    room: tuple[ServerThread, Path], task: Any
) -> None:
    """Sets chosen by hand, with a pool named beside them: the room's split disagrees."""
    server, data_dir = room
    pool = _pool_of(task)
    spec = _spec(task)  # the hand-chosen members and non-members
    spec["datasets"]["pool"] = pool.commitment()
    owner, inst = _audited_instance(server, data_dir, "owner@handpicked.example", spec)
    with pytest.raises(AuditError, match="random split does not give"):
        inst.upload_audit_pool(_npz(pool))
    owner.close()
