"""The Alice/Bob workflow against a real server, and every refusal along it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from tests.models import (
    identity_inputs,
    identity_model,
    mixed_inputs,
    mixed_model,
    single_input_model,
)

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.attestation.measurement import package_measurement
from cleanroom.client.instance import Instance
from cleanroom.crypto import envelope
from cleanroom.errors import (
    AccessDenied,
    AttestationError,
    AuthenticationFailed,
    DecryptionFailed,
    InvalidRequest,
    InvalidTensor,
    ModelNotReady,
    ModelRejected,
    NotFound,
    PayloadTooLarge,
    PolicyViolation,
    ReplayDetected,
    UnsupportedEnvelope,
    error_class_for_code,
)
from cleanroom.server.runner import ServerThread

Party = Callable[[str], Client]


def owned_instance(
    party: Party, policy: AttestationPolicy, owner: str, users: list[str], model: bytes | None
) -> Instance:
    client = party(owner)
    inst = client.create_instance("Scoring", ModelFormat.ONNX, users)
    inst.validate_attestation(policy)
    inst.set_secret(Secret())
    if model is not None:
        inst.upload_model(model)
    return inst


def joined(party: Party, policy: AttestationPolicy, email: str, instance_id: str) -> Instance:
    inst = party(email).get_instance(instance_id)
    inst.validate_attestation(policy)
    inst.set_secret(Secret())
    return inst


def test_full_workflow_outputs_equal_direct_onnx_runtime(
    party: Party, policy: AttestationPolicy
) -> None:
    model = mixed_model()
    alice = owned_instance(party, policy, "alice@lender.example", ["bob@bank.example"], model)
    bob = joined(party, policy, "bob@bank.example", alice.id)

    inputs = mixed_inputs(7)
    got = bob.predict(inputs)

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    expected = dict(zip(names, session.run(None, inputs), strict=True))
    assert set(got) == set(expected)
    for name, want in expected.items():
        want = np.asarray(want)
        assert got[name].shape == want.shape, name
        if want.dtype.kind == "O":
            assert got[name].tolist() == want.tolist()
        else:
            assert got[name].dtype == want.dtype, name
            np.testing.assert_array_equal(got[name], want)


def test_every_cpu_tensor_type_crosses_the_clean_room_exactly(
    party: Party, policy: AttestationPolicy
) -> None:
    alice = owned_instance(party, policy, "alice@lender.example", [], identity_model())
    inputs = identity_inputs()
    outputs = alice.predict(inputs)
    for name, array in inputs.items():
        got = outputs["out_" + name[3:]]
        assert got.shape == array.shape, name
        if array.dtype.kind == "O":
            assert got.tolist() == array.tolist()
        else:
            assert got.dtype == array.dtype, name
            np.testing.assert_array_equal(got, array)


def test_single_array_and_json_inputs(party: Party, policy: AttestationPolicy) -> None:
    alice = owned_instance(
        party, policy, "alice@lender.example", ["bob@bank.example"], single_input_model()
    )
    bob = joined(party, policy, "bob@bank.example", alice.id)
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    direct = bob.predict({"x": x})["y"]
    np.testing.assert_array_equal(bob.predict(x)["y"], direct)
    np.testing.assert_array_equal(bob.predict(json.dumps({"x": x.tolist()}).encode())["y"], direct)
    # The owner may predict on its own instance too.
    np.testing.assert_array_equal(alice.predict(x)["y"], direct)


def test_only_named_parties_see_and_use_an_instance(
    party: Party, policy: AttestationPolicy
) -> None:
    alice = owned_instance(
        party, policy, "alice@lender.example", ["bob@bank.example"], single_input_model()
    )
    stranger = party("eve@elsewhere.example")
    assert alice.id not in [i.id for i in stranger.list_instances()]
    assert alice.id in [i.id for i in party("bob@bank.example").list_instances()]
    with pytest.raises(AccessDenied):
        stranger.get_instance(alice.id)
    with pytest.raises(NotFound):
        stranger.get_instance("0" * 24)


@pytest.mark.parametrize(
    "address",
    ["ops/team@bank.example", "a#b@bank.example", "q?x=1@bank.example", "x%2fy@b.example"],
)
def test_any_valid_address_can_be_granted_and_revoked(
    party: Party, policy: AttestationPolicy, address: str
) -> None:
    alice = party("alice@lender.example").create_instance("Names", ModelFormat.ONNX, [])
    alice.grant(address)
    assert address in alice.users
    alice.revoke(address)
    assert address not in alice.users


def test_an_answer_naming_another_instance_is_refused(
    party: Party, policy: AttestationPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator or proxy answers "instance A" with instance B, whose genuine
    # evidence names B: the SDK must notice before validating anything.
    wanted = party("alice@lender.example").create_instance(
        "Wanted", ModelFormat.ONNX, ["bob@bank.example"]
    )
    other = party("mallory@elsewhere.example").create_instance(
        "Other", ModelFormat.ONNX, ["bob@bank.example"]
    )
    bob = party("bob@bank.example")
    genuine = bob.get_instance(wanted.id)
    substituted = bob._instance_doc(other.id)
    monkeypatch.setattr(bob, "_instance_doc", lambda _instance_id: substituted)
    with pytest.raises(AttestationError, match="answered with"):
        bob.get_instance(wanted.id)
    with pytest.raises(AttestationError, match="instead of"):
        genuine.refresh()
    assert genuine.id == wanted.id


def test_revoked_data_owner_is_refused_from_the_next_request(
    party: Party, policy: AttestationPolicy
) -> None:
    alice = owned_instance(
        party, policy, "alice@lender.example", ["bob@bank.example"], single_input_model()
    )
    bob = joined(party, policy, "bob@bank.example", alice.id)
    x = np.ones((1, 3), np.float32)
    bob.predict(x)
    alice.revoke("bob@bank.example")
    with pytest.raises(AccessDenied):
        bob.predict(x)
    alice.grant("bob@bank.example")
    with pytest.raises(AccessDenied, match="not registered"):
        bob.predict(x)  # revocation also dropped Bob's registered key
    bob.set_secret(Secret())
    bob.predict(x)


def test_only_the_owner_manages_the_instance(party: Party, policy: AttestationPolicy) -> None:
    alice = owned_instance(party, policy, "alice@lender.example", ["bob@bank.example"], None)
    bob = joined(party, policy, "bob@bank.example", alice.id)
    for attempt in (
        lambda: bob.upload_model(single_input_model()),
        lambda: bob.grant("eve@elsewhere.example"),
        lambda: bob.revoke("bob@bank.example"),
        bob.delete,
    ):
        with pytest.raises(AccessDenied):
            attempt()
    alice.delete()
    with pytest.raises(NotFound):
        party("alice@lender.example").get_instance(alice.id)


def test_predict_before_upload_is_model_not_ready(party: Party, policy: AttestationPolicy) -> None:
    alice = owned_instance(party, policy, "alice@lender.example", ["bob@bank.example"], None)
    bob = joined(party, policy, "bob@bank.example", alice.id)
    with pytest.raises(ModelNotReady):
        bob.predict({"x": np.ones((1, 3), np.float32)})


def test_nothing_is_sent_before_attestation_and_secret(
    party: Party, policy: AttestationPolicy
) -> None:
    alice = owned_instance(
        party, policy, "alice@lender.example", ["bob@bank.example"], single_input_model()
    )
    bob = party("bob@bank.example").get_instance(alice.id)
    with pytest.raises(AttestationError, match="not been validated"):
        bob.set_secret(Secret())
    bob.validate_attestation(policy)
    with pytest.raises(InvalidRequest, match="no secret"):
        bob.predict({"x": np.ones((1, 3), np.float32)})


@pytest.mark.parametrize(
    ("name", "make_policy", "error", "message"),
    [
        (
            "wrong measurement",
            lambda root: AttestationPolicy(
                measurements=["00" * 48], allow_simulated=True, simulated_root=root
            ),
            PolicyViolation,
            "MEASUREMENT",
        ),
        (
            "simulated evidence not allowed",
            lambda root: AttestationPolicy(measurements=[package_measurement().hex()]),
            AttestationError,
            "simulat",
        ),
        (
            "empty allow-list",
            lambda root: AttestationPolicy(
                measurements=[], allow_simulated=True, simulated_root=root
            ),
            AttestationError,
            "",
        ),
    ],
)
def test_attestation_refusals(
    party: Party,
    data_dir: Path,
    name: str,
    make_policy: Callable[[Path], AttestationPolicy],
    error: type[Exception],
    message: str,
) -> None:
    inst = party("alice@lender.example").create_instance("X", ModelFormat.ONNX, [])
    with pytest.raises(error) as info:
        inst.validate_attestation(make_policy(data_dir / "simulated-root.pem"))
    assert isinstance(info.value, AttestationError)
    assert message.lower() in " ".join([str(info.value), *info.value.failures]).lower()
    with pytest.raises(AttestationError):
        inst.set_secret(Secret())  # a failed validation leaves nothing to seal to


def test_evidence_for_another_nonce_is_refused(
    party: Party, policy: AttestationPolicy, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale (replayed) attestation answer does not verify against a fresh nonce."""
    inst = party("alice@lender.example").create_instance("X", ModelFormat.ONNX, [])
    client = party("alice@lender.example")
    old = client.request("GET", f"/v1/instances/{inst.id}/attestation", params={"nonce": "11" * 32})
    original = client.request

    def replaying(method: str, path: str, **kwargs: object) -> httpx.Response:
        if path.endswith("/attestation"):
            return old
        return original(method, path, **kwargs)

    victim = client.get_instance(inst.id)
    monkeypatch.setattr(client, "request", replaying)
    with pytest.raises(PolicyViolation) as info:
        victim.validate_attestation(policy)
    assert any("REPORT_DATA" in f for f in info.value.failures)


def _raw_predict(
    server: ServerThread, client: Client, instance_id: str, body: bytes
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/instances/{instance_id}/predict",
        content=body,
        headers=client._auth_headers(),
    )


def _problem(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/problem+json"
    return str(response.json()["code"])


def test_tampered_replayed_and_unknown_envelopes_are_refused(
    party: Party, policy: AttestationPolicy, server: ServerThread
) -> None:
    alice = owned_instance(
        party, policy, "alice@lender.example", ["bob@bank.example"], single_input_model()
    )
    bob_client = party("bob@bank.example")
    bob = bob_client.get_instance(alice.id)
    bob.validate_attestation(policy)
    secret = Secret()
    bob.set_secret(secret)
    attested = bob._require_attested()

    def sealed() -> bytes:
        from cleanroom.wire.tensors import encode_tensors

        return envelope.seal_request(
            recipient=attested.hpke_key,
            sender=secret.key_pair,
            instance_id=alice.id,
            config_digest=bytes.fromhex(attested.config_digest),
            action="predict",
            body=encode_tensors({"x": np.ones((1, 3), np.float32)}),
        ).envelope

    good = sealed()
    assert _raw_predict(server, bob_client, alice.id, good).status_code == 200
    replay = _raw_predict(server, bob_client, alice.id, good)
    assert (replay.status_code, _problem(replay)) == (409, ReplayDetected.code)

    cases = {
        "tampered ciphertext": (lambda b: b[:-3] + bytes([b[-3] ^ 1]) + b[-2:], DecryptionFailed),
        "truncated": (lambda b: b[: len(b) // 2], DecryptionFailed),
        "unknown version": (lambda b: b[:4] + b"\x09" + b[5:], UnsupportedEnvelope),
        "not an envelope": (lambda b: b"hello", UnsupportedEnvelope),
    }
    for case, (mutate, error) in cases.items():
        response = _raw_predict(server, bob_client, alice.id, mutate(sealed()))
        assert response.status_code == error.status, case
        assert _problem(response) == error.code, case
        assert "could not" in response.json()["detail"] or error is not DecryptionFailed
    # The service keeps serving everyone else.
    assert bob.predict({"x": np.ones((1, 3), np.float32)})["y"].shape == (1, 2)


def test_wrong_inputs_get_clear_errors(party: Party, policy: AttestationPolicy) -> None:
    alice = owned_instance(
        party, policy, "alice@lender.example", ["bob@bank.example"], mixed_model()
    )
    bob = joined(party, policy, "bob@bank.example", alice.id)
    good = mixed_inputs(2)
    cases = {
        "missing input": ({k: v for k, v in good.items() if k != "ids"}, "missing input"),
        "unknown input": ({**good, "zzz": np.ones(1)}, "unknown input"),
        "wrong dtype": ({**good, "x": good["x"].astype(np.float64)}, "dtype float64"),
        "wrong rank": ({**good, "x": good["x"].reshape(-1)}, "shape"),
        "wrong static dim": ({**good, "x": np.ones((2, 4), np.float32)}, "shape"),
    }
    for _case, (inputs, message) in cases.items():
        with pytest.raises(InvalidTensor, match=message):
            bob.predict(inputs)
    assert "y" in bob.predict(good)


def test_bad_models_are_rejected_and_the_instance_keeps_its_model(
    party: Party, policy: AttestationPolicy
) -> None:
    alice = owned_instance(
        party, policy, "alice@lender.example", ["bob@bank.example"], single_input_model()
    )
    for bad in (b"this is not an ONNX model", single_input_model()[:-40]):
        with pytest.raises(ModelRejected):
            alice.upload_model(bad)
    assert alice.predict(np.ones((1, 3), np.float32))["y"].shape == (1, 2)


def test_oversized_request_body_is_refused(party: Party, policy: AttestationPolicy) -> None:
    alice = owned_instance(party, policy, "alice@lender.example", [], single_input_model())
    with pytest.raises(PayloadTooLarge):
        alice.predict({"x": np.ones((1_000_000, 3), np.float32)})  # 12 MB > 8 MiB limit
    assert alice.predict(np.ones((1, 3), np.float32))["y"].shape == (1, 2)


def test_credentials(server: ServerThread, party: Party) -> None:
    party("carol@bank.example")
    client = Client(server.url)
    with pytest.raises(AuthenticationFailed):
        client.sign_in("carol@bank.example", "wrong password, long enough")
    with pytest.raises(AuthenticationFailed):
        client.sign_in("nobody@bank.example", "wrong password, long enough")
    with pytest.raises(AuthenticationFailed):
        client.list_instances()  # not signed in
    client._token = "forged-" + "A" * 36
    with pytest.raises(AuthenticationFailed):
        client.list_instances()
    response = httpx.get(f"{server.url}/v1/instances", headers={"authorization": "Bearer x"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    with pytest.raises(InvalidRequest, match="at least 12"):
        client.sign_up("dave@bank.example", "short")
    client.close()


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/nothing", 404, "not-found"),
        ("GET", "/", 404, "not-found"),
        ("PATCH", "/v1/instances", 405, "method-not-allowed"),
        ("DELETE", "/v1/health", 405, "method-not-allowed"),
    ],
)
def test_routing_refusals_are_problems_that_agree_with_their_status(
    server: ServerThread, method: str, path: str, status: int, code: str
) -> None:
    response = httpx.request(method, f"{server.url}{path}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert error_class_for_code(code).status == status
    if status == 405:
        assert response.headers["allow"]  # what the endpoint does take


def test_an_instance_declaring_upstreams_refuses_direct_calls(
    party: Party, policy: AttestationPolicy
) -> None:
    upstream = {"measurement": "ab" * 48, "policy_digest": "sha256:" + "00" * 32}
    client = party("alice@lender.example")
    for bad in ({"measurement": "ab"}, {"measurement": "zz" * 48, "policy_digest": "sha256:x"}):
        with pytest.raises(InvalidRequest, match="upstream"):
            client.create_instance("Stage", ModelFormat.ONNX, [], upstreams=[bad])
    inst = client.create_instance("Stage", ModelFormat.ONNX, [], upstreams=[upstream])
    inst.validate_attestation(policy)
    assert inst.attested_config is not None
    assert inst.attested_config["instance"]["upstreams"] == [upstream]
    inst.set_secret(Secret())
    inst.upload_model(single_input_model())
    with pytest.raises(AccessDenied, match="only attested upstream"):
        inst.predict(np.ones((1, 3), np.float32))
