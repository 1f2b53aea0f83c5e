"""The clients: one request to the plain server, one confidential prediction through the SDK."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from benchmarks.inference.architectures import INPUT_NAME, OUTPUT_NAME
from benchmarks.inference.processes import CleanroomServer

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.attestation import Evidence, verify_evidence
from cleanroom.attestation.measurement import measure_tree
from cleanroom.client.instance import Instance
from cleanroom.crypto.binding import config_digest, report_data

__all__ = [
    "CleanroomClient",
    "CleanroomDeployment",
    "PlainClient",
    "deploy",
    "sign_up_parties",
    "time_attestation",
    "undeploy",
]

OWNER = "owner@bench.example"
DATA = "data@bench.example"
PASSWORD = "a benchmark passphrase that is long enough"


def _check_logits(logits: npt.NDArray[Any]) -> None:
    if logits.shape != (1, 1000) or not np.isfinite(logits).all():
        raise RuntimeError(f"unexpected logits: shape {logits.shape}")


class PlainClient:
    """One connection to the plain server; ``__call__`` makes one prediction."""

    def __init__(self, url: str, model: str, x: npt.NDArray[np.float32]) -> None:
        self._http = httpx.Client(base_url=url, timeout=600.0)
        self._path = f"/predict/{model}"
        self._body = x.tobytes()

    def __call__(self) -> None:
        response = self._http.post(
            self._path, content=self._body, headers={"content-type": "application/octet-stream"}
        )
        response.raise_for_status()
        _check_logits(np.frombuffer(response.content, dtype=np.float32).reshape(1, -1))

    def close(self) -> None:
        self._http.close()


@dataclass
class CleanroomDeployment:
    """An instance with the model uploaded, ready for data-owner clients."""

    url: str
    instance_id: str
    policy: AttestationPolicy
    upload_s: float


def attestation_policy(server: CleanroomServer) -> AttestationPolicy:
    """Accept the simulated TEE running the code as it is on disk now.

    The expected measurement is that of the code the server runs (its
    snapshot), computed here as a verifier would from the released code.
    """
    return AttestationPolicy(
        measurements=[measure_tree(server.code_root / "cleanroom").hex()],
        allow_simulated=True,
        simulated_root=server.data_dir / "simulated-root.pem",
    )


def sign_up_parties(server: CleanroomServer) -> None:
    """The model owner and the data owner, once per server."""
    for email in (OWNER, DATA):
        with Client(server.url) as client:
            client.sign_up(email, PASSWORD)


def deploy(
    server: CleanroomServer,
    model_path: Path,
    policy: AttestationPolicy,
    limits: Mapping[str, Any] | None = None,
) -> CleanroomDeployment:
    """The model owner's side: attest, seal the model and stream it up (timed).

    *limits* are the instance's sandbox limits (``workers``, ``intra_op_threads``...).
    """
    with Client(server.url, timeout=1800.0) as owner:
        owner.sign_in(OWNER, PASSWORD)
        inst = owner.create_instance(model_path.stem, ModelFormat.ONNX, [DATA], limits=limits)
        inst.validate_attestation(policy)
        inst.set_secret(Secret())
        start = time.perf_counter()
        inst.upload_model(model_path)
        upload_s = time.perf_counter() - start
    return CleanroomDeployment(server.url, inst.id, policy, upload_s)


def undeploy(deployment: CleanroomDeployment) -> None:
    """Delete the instance: the service stops its workers and forgets the sealed model."""
    with Client(deployment.url) as owner:
        owner.sign_in(OWNER, PASSWORD)
        owner.get_instance(deployment.instance_id).delete()


class CleanroomClient:
    """One data owner's SDK session, attested; ``__call__`` makes one sealed prediction."""

    def __init__(self, deployment: CleanroomDeployment, x: npt.NDArray[np.float32]) -> None:
        self.client = Client(deployment.url, timeout=600.0)
        self.client.sign_in(DATA, PASSWORD)
        self.instance: Instance = self.client.get_instance(deployment.instance_id)
        self.instance.validate_attestation(deployment.policy)
        self.instance.set_secret(Secret())
        self._inputs = {INPUT_NAME: x}

    def __call__(self) -> None:
        _check_logits(self.instance.predict(self._inputs)[OUTPUT_NAME])

    def close(self) -> None:
        self.client.close()


def time_attestation(
    client: CleanroomClient, policy: AttestationPolicy, n: int
) -> dict[str, list[float]]:
    """Client-side evidence verification alone, and the whole validation round trip.

    ``verify`` checks one fetched evidence document (signature, certificate
    chain, policy fields, REPORT_DATA binding) as ``validate_attestation`` does;
    ``validate`` adds fetching fresh evidence for a new nonce from the server.
    """
    inst = client.instance
    nonce = bytes(range(32))
    doc = client.client.request(
        "GET", f"/v1/instances/{inst.id}/attestation", params={"nonce": nonce.hex()}
    ).json()
    hpke_raw = base64.b64decode(doc["hpke_public_key"])
    verify_ms = []
    for _ in range(n):
        start = time.perf_counter()
        evidence = Evidence.from_json(doc["evidence"])
        expected = report_data(
            hpke_public_key=hpke_raw, nonce=nonce, config_digest=config_digest(doc["config"])
        )
        verify_evidence(evidence, policy, report_data=expected)
        verify_ms.append((time.perf_counter() - start) * 1000)
    validate_ms = []
    for _ in range(n):
        start = time.perf_counter()
        inst.validate_attestation(policy)
        validate_ms.append((time.perf_counter() - start) * 1000)
    return {"verify": verify_ms, "validate": validate_ms}
