"""The SDK checks what the evidence commits to, not only that it is genuine.

Genuine evidence proves that *some* configuration document was served by the
measured code with a fresh nonce. The SDK then refuses one that is not this
instance's: a configuration naming another ``instance.id`` (the operator
answered with another instance's attestation), or whose ``keys.hpke`` is not
the key it was handed to seal to. After a prediction, it refuses a receipt
that does not record an allowed decision on this instance, even one the
clean room signed and whose digests are this prediction's.

The answers are altered in the client's request layer. Where an altered answer
must still carry genuine evidence or a genuine receipt, the test server's own
simulated TEE or decision log signs it, so that the check under test is the
only one that can refuse it; an unaltered copy made the same way is accepted.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from tests.models import single_input_model

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.client.instance import RECEIPT_HEADER, Instance
from cleanroom.crypto.binding import canonical_json
from cleanroom.errors import AttestationError, LogIntegrityError, PolicyViolation
from cleanroom.server.runner import ServerThread

Party = Callable[[str], Client]
OWNER = "alice@lender.example"
BOB = "bob@bank.example"
X = np.ones((1, 3), np.float32)
Request = Callable[..., httpx.Response]


def _instances(party: Party) -> tuple[str, str]:
    """Two instances of different owners, both naming Bob: the one he wants, and another."""
    wanted = party(OWNER).create_instance("Wanted", ModelFormat.ONNX, [BOB])
    other = party("mallory@elsewhere.example").create_instance("Other", ModelFormat.ONNX, [BOB])
    return wanted.id, other.id


def _intercept(
    monkeypatch: pytest.MonkeyPatch,
    client: Client,
    suffix: str,
    answer: Callable[[Request, str, str, dict[str, Any]], httpx.Response],
) -> None:
    """Answer *client*'s requests to paths ending in *suffix* with *answer*."""
    original = client.request

    def request(method: str, path: str, **kwargs: Any) -> httpx.Response:
        if path.endswith(suffix):
            return answer(original, method, path, kwargs)
        return original(method, path, **kwargs)

    monkeypatch.setattr(client, "request", request)


def _assert_nothing_to_seal_to(inst: Instance) -> None:
    assert inst.attested_config is None
    with pytest.raises(AttestationError, match="not been validated"):
        inst.set_secret(Secret())


def test_a_genuine_attestation_of_another_instance_is_refused(
    party: Party, policy: AttestationPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted_id, other_id = _instances(party)
    bob = party(BOB)
    inst = bob.get_instance(wanted_id)

    def other_instances_attestation(
        original: Request, method: str, path: str, kwargs: dict[str, Any]
    ) -> httpx.Response:
        # Same nonce, so the evidence verifies: only the configuration tells.
        return original(method, path.replace(wanted_id, other_id), **kwargs)

    _intercept(monkeypatch, bob, "/attestation", other_instances_attestation)
    with pytest.raises(PolicyViolation, match="not this instance's") as info:
        inst.validate_attestation(policy)
    assert info.value.failures == [f"instance.id: got {other_id!r}, expected {wanted_id!r}"]
    _assert_nothing_to_seal_to(inst)


def test_a_failed_validation_drops_the_one_before(
    party: Party, policy: AttestationPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted_id, other_id = _instances(party)
    bob = party(BOB)
    inst = bob.get_instance(wanted_id)
    inst.validate_attestation(policy)
    assert inst.attested_config is not None

    def other_instances_attestation(
        original: Request, method: str, path: str, kwargs: dict[str, Any]
    ) -> httpx.Response:
        return original(method, path.replace(wanted_id, other_id), **kwargs)

    _intercept(monkeypatch, bob, "/attestation", other_instances_attestation)
    with pytest.raises(PolicyViolation):
        inst.validate_attestation(policy)
    # The earlier validation no longer counts: nothing is sealed on its strength.
    _assert_nothing_to_seal_to(inst)


def _another_key() -> str:
    return base64.b64encode(Secret().public_key.raw).decode()


CONFIG_MUTATIONS: list[Any] = [
    pytest.param(lambda c: None, [], id="unaltered (the harness's control)"),
    pytest.param(
        lambda c: c["instance"].update(id="0" * 24), ["instance.id"], id="another instance.id"
    ),
    pytest.param(lambda c: c.pop("instance"), ["instance.id"], id="no instance section"),
    pytest.param(
        lambda c: c["keys"].update(hpke=_another_key()), ["keys.hpke"], id="another keys.hpke"
    ),
    pytest.param(lambda c: c["keys"].pop("hpke"), ["keys.hpke"], id="no keys.hpke"),
    pytest.param(
        lambda c: c.update(keys=None, instance=[]), ["instance.id", "keys.hpke"], id="both wrong"
    ),
]


@pytest.mark.parametrize(("mutate", "failed"), CONFIG_MUTATIONS)
def test_evidence_committing_to_a_configuration_not_this_instances_is_refused(
    party: Party,
    policy: AttestationPolicy,
    server: ServerThread,
    monkeypatch: pytest.MonkeyPatch,
    mutate: Callable[[dict[str, Any]], None],
    failed: list[str],
) -> None:
    wanted_id, _other_id = _instances(party)
    bob = party(BOB)
    inst = bob.get_instance(wanted_id)
    tee = server.service.tee

    def altered_configuration(
        original: Request, method: str, path: str, kwargs: dict[str, Any]
    ) -> httpx.Response:
        doc = original(method, path, **kwargs).json()
        config = copy.deepcopy(doc["config"])
        mutate(config)
        # Evidence over the altered document, the served key and the client's nonce.
        evidence = tee.evidence(bytes.fromhex(kwargs["params"]["nonce"]), config)
        return httpx.Response(200, json={**doc, "config": config, "evidence": evidence.to_json()})

    _intercept(monkeypatch, bob, "/attestation", altered_configuration)
    if not failed:
        inst.validate_attestation(policy)
        assert inst.attested_config is not None
        return
    with pytest.raises(PolicyViolation, match="not this instance's") as info:
        inst.validate_attestation(policy)
    assert [f.split(":")[0] for f in info.value.failures] == failed
    _assert_nothing_to_seal_to(inst)


RECEIPT_MUTATIONS: list[Any] = [
    pytest.param(lambda entry, other_id: {}, False, id="re-signed unaltered (control)"),
    pytest.param(
        lambda entry, other_id: {"instance_id": other_id}, True, id="another instance's entry"
    ),
    pytest.param(
        lambda entry, other_id: {"decision": False, "reason": "the policy denied the request"},
        True,
        id="a deny entry",
    ),
]


@pytest.mark.parametrize(("alter", "refused"), RECEIPT_MUTATIONS)
def test_a_signed_receipt_not_recording_this_allowed_prediction_is_refused(
    party: Party,
    policy: AttestationPolicy,
    server: ServerThread,
    monkeypatch: pytest.MonkeyPatch,
    alter: Callable[[dict[str, Any], str], dict[str, Any]],
    refused: bool,
) -> None:
    wanted_id, other_id = _instances(party)
    owner = party(OWNER).get_instance(wanted_id)
    owner.validate_attestation(policy)
    owner.set_secret(Secret())
    owner.upload_model(single_input_model())
    bob = party(BOB)
    inst = bob.get_instance(wanted_id)
    inst.validate_attestation(policy)
    inst.set_secret(Secret())
    inst.predict(X)
    genuine = inst.last_receipt
    assert genuine is not None
    log = server.service.gate.log

    def altered_receipt(
        original: Request, method: str, path: str, kwargs: dict[str, Any]
    ) -> httpx.Response:
        response = original(method, path, **kwargs)
        header = response.headers[RECEIPT_HEADER]
        entry = json.loads(base64.urlsafe_b64decode(header))["entry"]
        # The same decision with one field changed, logged and signed by the clean room:
        # it names this request's and this response's ciphertexts.
        fields: dict[str, Any] = {
            "instance_id": entry["instance_id"],
            "action": entry["action"],
            "party": entry["party"],
            "decision": True,
            "reason": None,
            "policy_digest": entry["policy_digest"],
            "model_digest": entry["model_digest"],
            "request_digest": entry["request_digest"],
            "response_digest": entry["response_digest"],
        }
        fields.update(alter(entry, other_id))
        receipt = log.receipt_for(log.append(**fields)).to_json()
        headers = dict(response.headers)
        headers[RECEIPT_HEADER] = base64.urlsafe_b64encode(canonical_json(receipt)).decode()
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=response.content,
            request=response.request,
        )

    _intercept(monkeypatch, bob, "/predict", altered_receipt)
    if not refused:
        assert set(inst.predict(X)) == {"y"}
        assert inst.last_receipt is not None
        assert inst.last_receipt["entry"]["seq"] > genuine["entry"]["seq"]
        return
    with pytest.raises(
        LogIntegrityError,
        match=r"^the receipt does not record this prediction \(instance or decision differ\)$",
    ):
        inst.predict(X)
    assert inst.last_receipt is genuine
