"""A sealed upload is accepted once: replaying a captured model or audit-data upload is refused.

Sealed streams carry a random request id and a creation time; the service
checks them against its replay guard as soon as the stream's header opens
(``CleanRoomService._check_stream_replay``) and answers a replay with 409
``replay-detected``, before the policy sees it. Nothing is logged for it, and
what the first upload put in force stays in force.

Each replay below is one that nothing else would refuse: the stream is sealed
to the configuration the instance has again when it is replayed. For a model,
that is a rollback: the owner uploads A, then B, then A again (the attested
configuration names the model, so it is A's configuration again), and the
operator replays its capture of B's upload. Audit datasets do not change the
configuration, so a members upload can be replayed at once.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from tests.models import identity_model, single_input_model

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.audit import LabelledRecords
from cleanroom.audit.spec import SPEC_FORMAT
from cleanroom.client.instance import CONFIG_HEADER, KEY_ID_HEADER, Instance
from cleanroom.crypto.stream import seal_stream, stream_info
from cleanroom.errors import ReplayDetected
from cleanroom.server.runner import ServerThread

Party = Callable[[str], Client]
OWNER = "alice@lender.example"


def _captured_upload(owner: Instance, purpose: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    """What the operator sees of an upload: the sealed stream and its binding headers."""
    attested = owner._require_attested()
    sealed = b"".join(
        seal_stream(
            [data],
            total_size=len(data),
            recipient=attested.hpke_key,
            sender=owner._require_secret().key_pair,
            info=stream_info(owner.id, purpose, bytes.fromhex(attested.config_digest)),
        )
    )
    headers = {
        "content-type": "application/octet-stream",
        KEY_ID_HEADER: attested.hpke_key.key_id.hex(),
        CONFIG_HEADER: attested.config_digest,
    }
    return sealed, headers


def _put(
    server: ServerThread, session: Client, path: str, upload: tuple[bytes, dict[str, str]]
) -> httpx.Response:
    sealed, headers = upload
    return httpx.put(
        f"{server.url}{path}", content=sealed, headers={**session._auth_headers(), **headers}
    )


def _assert_replay_refused(response: httpx.Response) -> None:
    assert response.status_code == ReplayDetected.status == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == ReplayDetected.code


def _model_digest(session: Client, instance_id: str) -> str:
    return str(session._instance_doc(instance_id)["model"]["digest"])


def _uploads_logged(owner: Instance) -> list[str]:
    entries: list[dict[str, Any]] = owner.usage_log()["entries"]
    return [e["decision"] for e in entries if e["action"] == "upload_model"]


def test_a_replayed_model_upload_cannot_roll_the_model_back(
    party: Party, policy: AttestationPolicy, server: ServerThread
) -> None:
    session = party(OWNER)
    owner = session.create_instance("Rollback", ModelFormat.ONNX, [])
    owner.validate_attestation(policy)
    owner.set_secret(Secret())
    owner.upload_model(single_input_model())
    digest_a = _model_digest(session, owner.id)
    owner.validate_attestation(policy)
    config_a = owner._require_attested().config_digest  # it names model A

    upload_b = _captured_upload(owner, "model", identity_model())
    path = f"/v1/instances/{owner.id}/model"
    assert _put(server, session, path, upload_b).status_code == 200
    digest_b = _model_digest(session, owner.id)
    assert digest_b != digest_a

    owner.upload_model(single_input_model())  # back to A
    assert _model_digest(session, owner.id) == digest_a
    owner.validate_attestation(policy)
    # A's configuration again: B's captured upload is sealed to it and would open.
    assert owner._require_attested().config_digest == config_a == upload_b[1][CONFIG_HEADER]

    _assert_replay_refused(_put(server, session, path, upload_b))
    sealed_b, headers_b = upload_b
    with pytest.raises(ReplayDetected, match="already received"):
        session.request("PUT", path, content=sealed_b, headers=headers_b)

    assert _model_digest(session, owner.id) == digest_a
    assert _uploads_logged(owner) == ["allow", "allow", "allow"]  # the replays reached no policy
    assert set(owner.predict({"x": np.ones((1, 3), np.float32)})) == {"y"}  # A serves


def _records(rng: np.random.Generator, n: int) -> LabelledRecords:
    return LabelledRecords.of(
        rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, size=n).astype(np.int64)
    )


def _npz(records: LabelledRecords) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, features=records.features, labels=records.labels)
    return buffer.getvalue()


def test_a_replayed_audit_data_upload_is_refused_and_the_first_stays(
    party: Party, policy: AttestationPolicy, server: ServerThread
) -> None:
    rng = np.random.default_rng(20261205)
    members, nonmembers = _records(rng, 64), _records(rng, 64)
    spec = {
        "format": SPEC_FORMAT,
        "model": {"input": "x", "output": "y", "output_kind": "logits"},
        "datasets": {"members": members.commitment(), "nonmembers": nonmembers.commitment()},
        "attacks": [{"name": "train-test-gap"}],
        "confidence": 0.95,
        "delta": 0.0,
        "epsilon_claim": 1.0,
        "seed": 3,
    }
    session = party(OWNER)
    owner = session.create_instance("Audited", ModelFormat.ONNX, [], audit_spec=spec)
    owner.validate_attestation(policy)
    owner.set_secret(Secret())
    owner.upload_model(single_input_model())
    owner.validate_attestation(policy)  # the configuration now names the model

    path = f"/v1/instances/{owner.id}/audit/datasets/members"
    upload = _captured_upload(owner, "audit-members", _npz(members))
    first = _put(server, session, path, upload)
    assert first.status_code == 200, first.text
    assert first.json() == {"dataset": "members", "commitment": members.commitment()}

    _assert_replay_refused(_put(server, session, path, upload))
    sealed, headers = upload
    with pytest.raises(ReplayDetected, match="already received"):
        session.request("PUT", path, content=sealed, headers=headers)

    # The members the first upload delivered are still the ones the audit runs on.
    nonmembers_upload = _captured_upload(owner, "audit-nonmembers", _npz(nonmembers))
    nonmembers_path = f"/v1/instances/{owner.id}/audit/datasets/nonmembers"
    assert _put(server, session, nonmembers_path, nonmembers_upload).status_code == 200
    certificate = owner.run_audit()
    config = owner.attested_config
    assert config is not None
    assert certificate.spec_digest == config["instance"]["audit_spec_digest"]
