"""Every request in and result out meets the instance's Rego policy; every decision is logged."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.models import single_input_model

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.cli.main import main
from cleanroom.client.instance import Instance
from cleanroom.crypto import envelope
from cleanroom.crypto.stream import seal_stream, stream_info
from cleanroom.errors import LogIntegrityError, PolicyDenied, PolicyError, StaleAttestation
from cleanroom.policy import verify_log, verify_receipt
from cleanroom.server.runner import ServerThread
from cleanroom.wire.tensors import encode_tensors

Party = Callable[[str], Client]
X = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)

BUDGET_POLICY = """
package cleanroom

default allow_ingress := false
default allow_egress := false

allow_ingress if {
    input.action == "upload_model"
    input.user == input.instance.owner
}

allow_ingress if {
    input.action == "predict"
    input.user in input.instance.users
    input.usage.queries < 2
    input.request.inputs.x.dtype == "float32"
}

allow_egress if {
    input.response.names == ["y"]
    every v in input.response.outputs.y.values { v <= 100 }
}

deny_reason contains "query budget exhausted" if input.usage.queries >= 2

deny_reason contains "output out of range" if {
    input.direction == "egress"
    some v in input.response.outputs.y.values
    v > 100
}

shaping := {"y": {"round": 1}}
"""


def setup(party: Party, policy: AttestationPolicy, rego: str | None) -> tuple[Instance, Instance]:
    alice = party("alice@lender.example").create_instance(
        "Gated", ModelFormat.ONNX, ["bob@bank.example"], policy=rego
    )
    alice.validate_attestation(policy)
    alice.set_secret(Secret())
    alice.upload_model(single_input_model())
    bob = party("bob@bank.example").get_instance(alice.id)
    bob.validate_attestation(policy)
    bob.set_secret(Secret())
    return alice, bob


def signing_key(inst: Instance) -> str:
    """The receipt-signing key, as committed in the attested configuration."""
    config = inst.attested_config
    assert config is not None
    return str(config["keys"]["signing"])


def test_policy_that_does_not_compile_is_refused_at_creation(party: Party) -> None:
    with pytest.raises(PolicyError):
        party("alice@lender.example").create_instance(
            "Broken", ModelFormat.ONNX, [], policy="package cleanroom\nallow_ingress if {"
        )


def test_budget_shaping_and_egress_range(party: Party, policy: AttestationPolicy) -> None:
    alice, bob = setup(party, policy, BUDGET_POLICY)
    assert bob.policy_digest == alice.policy_digest
    assert bob.policy() == BUDGET_POLICY

    y = bob.predict(X)["y"]
    np.testing.assert_array_equal(
        y, np.round(X @ np.array([[1.0, -1.0], [0.5, 2.0], [-3.0, 0.25]], dtype=np.float32), 1)
    )
    receipt = bob.last_receipt
    assert receipt is not None
    entry = verify_receipt(receipt, signing_key(bob))
    assert (entry.decision, entry.party, entry.action) == ("allow", "bob@bank.example", "predict")
    assert entry.policy_digest == bob.policy_digest

    with pytest.raises(PolicyDenied, match="output out of range"):
        bob.predict(X * 100)  # allowed in, but y exceeds 100: the result never leaves
    # Only allowed predictions count against the budget: this is the second.
    assert bob.predict(X)["y"].shape == (1, 2)
    with pytest.raises(PolicyDenied, match="query budget exhausted"):
        bob.predict(X)
    # The owner is not in `users`, so this policy refuses even the owner's predictions.
    with pytest.raises(PolicyDenied):
        alice.predict(X)


def test_parallel_predictions_never_run_past_the_query_budget(
    party: Party, policy: AttestationPolicy
) -> None:
    _alice, bob = setup(party, policy, BUDGET_POLICY)

    def predict(_: int) -> str:
        try:
            bob.predict(X)
        except PolicyDenied as exc:
            return str(exc)
        return "allowed"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(predict, range(16)))
    assert outcomes.count("allowed") == 2
    assert all("query budget exhausted" in o for o in outcomes if o != "allowed")
    decisions = [(e["action"], e["decision"]) for e in bob.usage_log()["entries"]]
    assert decisions.count(("predict", "allow")) == 2


def test_a_receipt_for_another_request_is_refused_by_the_sdk(
    party: Party, policy: AttestationPolicy, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    _alice, bob = setup(party, policy, None)
    bob.predict(X)
    genuine = bob.last_receipt
    assert genuine is not None
    predict = server.service.predict

    def replayed_receipt(*args: Any, **kwargs: Any) -> tuple[bytes, dict[str, Any]]:
        sealed, _receipt = predict(*args, **kwargs)
        return sealed, genuine  # signed by the clean room, but for the first request

    monkeypatch.setattr(server.service, "predict", replayed_receipt)
    with pytest.raises(LogIntegrityError, match="request_digest, response_digest differ"):
        bob.predict(X)
    assert bob.last_receipt is genuine


def test_usage_log_shows_every_decision_and_verifies(
    party: Party, policy: AttestationPolicy
) -> None:
    alice, bob = setup(party, policy, BUDGET_POLICY)
    bob.predict(X)
    bob.predict(X)
    with pytest.raises(PolicyDenied):
        bob.predict(X)

    owner_view = alice.usage_log()
    result = verify_log(owner_view, signing_key(alice))
    mine = [e for e in owner_view["entries"] if e["instance_id"] == alice.id]
    assert [(e["action"], e["decision"]) for e in mine] == [
        ("upload_model", "allow"),
        ("predict", "allow"),
        ("predict", "allow"),
        ("predict", "deny"),
    ]
    assert result is not None
    bob_view = bob.usage_log()
    verify_log(bob_view, signing_key(bob))
    assert {e["party"] for e in bob_view["entries"]} == {"bob@bank.example"}

    tampered = dict(owner_view)
    tampered["entries"] = [dict(e) for e in owner_view["entries"]]
    tampered["entries"][-1]["decision"] = "allow"
    with pytest.raises(LogIntegrityError):
        verify_log(tampered, signing_key(alice))


def test_replacing_the_policy_forces_data_owners_to_revalidate(
    party: Party, policy: AttestationPolicy
) -> None:
    alice, bob = setup(party, policy, None)
    bob.predict(X)
    before = bob.policy_digest
    alice.set_policy(BUDGET_POLICY)
    with pytest.raises(StaleAttestation, match="policy changed"):
        bob.predict(X)
    bob.validate_attestation(policy)
    assert bob.policy_digest != before
    assert bob.policy() == BUDGET_POLICY
    assert bob.predict(X)["y"].shape == (1, 2)


def test_receipt_and_usage_log_verify_offline_with_the_cli(
    party: Party, policy: AttestationPolicy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = setup(party, policy, None)
    bob.predict(X)
    key = tmp_path / "signing.pem"
    key.write_text(signing_key(bob))
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(bob.last_receipt))
    exported = tmp_path / "log.json"
    exported.write_text(json.dumps(alice.usage_log()))
    assert main(["log", "verify", str(receipt), "--key", str(key)]) == 0
    assert main(["log", "verify", str(exported), "--key", str(key)]) == 0

    doc = json.loads(exported.read_text())
    doc["entries"] = doc["entries"][:-1]  # a removed entry
    exported.write_text(json.dumps(doc))
    assert main(["log", "verify", str(exported), "--key", str(key)]) == 1
    assert "cleanroom:" in capsys.readouterr().err


def test_usage_log_verifies_with_the_key_from_the_servers_attestation_document(
    party: Party, policy: AttestationPolicy, data_dir: Path, tmp_path: Path
) -> None:
    # The document exactly as served, the way a data owner saves it for an auditor.
    alice, bob = setup(party, policy, None)
    bob.predict(X)
    served = bob._client.request(
        "GET", f"/v1/instances/{bob.id}/attestation", params={"nonce": "ab" * 16}
    ).json()
    evidence = tmp_path / "attestation.json"
    evidence.write_text(json.dumps(served))
    attestation_policy = tmp_path / "attestation-policy.json"
    attestation_policy.write_text(
        json.dumps(
            {
                "allow_simulated": True,
                "simulated_root": str(data_dir / "simulated-root.pem"),
                "sev-snp": {"measurements": [m.hex() for m in policy.measurements]},
            }
        )
    )
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(bob.last_receipt))
    exported = tmp_path / "log.json"
    exported.write_text(json.dumps(alice.usage_log()))
    by_evidence = ["--evidence", str(evidence), "--attestation-policy", str(attestation_policy)]
    assert main(["log", "verify", str(receipt), *by_evidence]) == 0
    assert main(["log", "verify", str(exported), *by_evidence]) == 0


AUDIT_SUMMARY_POLICY = """
package cleanroom

default allow_ingress := false
default allow_egress := false

allow_ingress if {
    input.action == "upload_model"
    input.user == input.instance.owner
    not input.audit
}

unaudited if {
    input.audit.current == false
    input.audit.verdict == null
    input.audit.spec_digest == null
}

allow_ingress if {
    input.action == "predict"
    unaudited
}

allow_egress if unaudited
"""


def test_the_audit_summary_is_shown_to_both_predict_checks(
    party: Party, policy: AttestationPolicy
) -> None:
    # No audit spec: the summary says so, at ingress and again at egress; an
    # upload's document has none (its audit would be of the model it replaces).
    _alice, bob = setup(party, policy, AUDIT_SUMMARY_POLICY)
    assert bob.predict(X)["y"].shape == (1, 2)


def test_a_request_made_before_a_policy_change_never_runs_under_the_new_policy(
    party: Party, policy: AttestationPolicy, server: ServerThread
) -> None:
    # Whoever carries the request (the operator, a proxy) may drop or rewrite
    # its headers: the configuration the data owner attested is inside the seal.
    alice, bob = setup(party, policy, None)
    attested = bob._require_attested()
    secret = bob._require_secret()
    sealed = envelope.seal_request(
        recipient=attested.hpke_key,
        sender=secret.key_pair,
        instance_id=bob.id,
        config_digest=bytes.fromhex(attested.config_digest),
        action="predict",
        body=encode_tensors({"x": X}),
    ).envelope
    entries_before = len(alice.usage_log()["entries"])
    alice.set_policy(BUDGET_POLICY)
    new_digest = server.service.current_config_digest(server.service.store.instance(bob.id))
    assert new_digest != attested.config_digest
    url = f"{server.url}/v1/instances/{bob.id}/predict"
    headers = bob._client._auth_headers()
    cases = {
        "headers dropped": ({}, 400, "decryption-failed"),
        "headers rewritten to the new configuration": (
            {"cleanroom-config-digest": new_digest},
            400,
            "decryption-failed",
        ),
        "headers as sent": (
            {"cleanroom-config-digest": attested.config_digest},
            409,
            "attestation-stale",
        ),
    }
    for case, (binding, status, code) in cases.items():
        response = httpx.post(url, content=sealed, headers={**headers, **binding})
        assert (response.status_code, response.json()["code"]) == (status, code), case
    # Nothing ran, nothing was decided about it.
    assert len(alice.usage_log()["entries"]) == entries_before


def test_an_upload_sealed_before_a_policy_change_does_not_open_after_it(
    party: Party, policy: AttestationPolicy, server: ServerThread
) -> None:
    alice, _bob = setup(party, policy, None)
    attested = alice._require_attested()
    model = single_input_model()
    sealed = b"".join(
        seal_stream(
            [model],
            total_size=len(model),
            recipient=attested.hpke_key,
            sender=alice._require_secret().key_pair,
            info=stream_info(alice.id, "model", bytes.fromhex(attested.config_digest)),
        )
    )
    alice.set_policy(BUDGET_POLICY)
    response = httpx.put(
        f"{server.url}/v1/instances/{alice.id}/model",
        content=sealed,
        headers=alice._client._auth_headers(),  # the binding headers dropped on the way
    )
    assert (response.status_code, response.json()["code"]) == (400, "decryption-failed")


def test_the_usage_log_comes_in_verifiable_pages(
    party: Party, policy: AttestationPolicy, server: ServerThread
) -> None:
    alice, bob = setup(party, policy, None)
    for _ in range(5):
        bob.predict(X)
    pages = list(alice.usage_log_pages(limit=2))
    entries = [e for page in pages for e in page["entries"]]
    mine = [e for e in entries if e["instance_id"] == alice.id]
    assert [(e["action"], e["decision"]) for e in mine] == [("upload_model", "allow")] + [
        ("predict", "allow")
    ] * 5
    assert [len(p["entries"]) for p in pages] == [2, 2, 2]
    for page in pages:
        verify_log(page, signing_key(alice))
    url = f"{server.url}/v1/instances/{alice.id}/log"
    for params in ({"limit": 0}, {"limit": 1001}, {"after": -2}, {"limit": "x"}):
        response = httpx.get(url, params=params, headers=alice._client._auth_headers())
        assert (response.status_code, response.json()["code"]) == (400, "invalid-request"), params
