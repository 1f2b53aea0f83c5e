"""Clean rooms composed into a pipeline: a stage forwards derived data to the next one.

A stage is an instance whose model output (derived data only) goes to an
instance of the next clean room instead of back to the caller. The call is
made over mutually attested TLS: the stage verifies the next clean room
(its policy for it) and presents its own evidence, which the next clean room
checks against the policy of its peer route. Payloads are sealed end to end
as for any party (the stage is a named data owner of the next instance).

What the stage verified travels back to the data owner as one extra output,
``cleanroom_chain`` (a JSON string), which :func:`verify_chain` re-checks
against the data owner's own policy for the next clean room.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from cleanroom.atls.certificate import load_certificate, spki_der
from cleanroom.atls.document import AttestationDocument
from cleanroom.atls.identity import AttestedTlsIdentity
from cleanroom.atls.settings import AtlsSettings
from cleanroom.attestation import AttestationPolicy, VerifiedEvidence, verify_evidence
from cleanroom.attestation.fetch import EvidenceFetchers
from cleanroom.client.client import Client
from cleanroom.client.instance import Instance
from cleanroom.client.secret import Secret
from cleanroom.crypto.binding import TLS_SPKI_KEY, tls_key_digest
from cleanroom.errors import (
    AttestationError,
    ConfigurationError,
    EvidenceFormatError,
    InferenceFailed,
    PolicyViolation,
)
from cleanroom.runtime.base import ModelRunner, ModelSignature, Tensors, TensorSpec

__all__ = ["CHAIN_OUTPUT", "Downstream", "Pipeline", "verify_chain"]

CHAIN_OUTPUT = "cleanroom_chain"


@dataclass(frozen=True)
class Downstream:
    """The next clean room of a stage: where, which instance, which policy, which account."""

    url: str
    instance_id: str
    policy: AttestationPolicy
    email: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.url.startswith("https://"):
            raise ConfigurationError("a downstream clean room is reached over attested TLS (https)")


class _Caller:
    """One stage's connection to its downstream instance, attested once and reused."""

    def __init__(
        self,
        downstream: Downstream,
        identity: AttestedTlsIdentity,
        *,
        fetchers: EvidenceFetchers | None = None,
    ) -> None:
        self.downstream = downstream
        self._client = Client(
            downstream.url,
            attestation=downstream.policy,
            identity=identity,
            kds=None if fetchers is None else fetchers.kds,
            pcs=None if fetchers is None else fetchers.pcs,
        )
        self._instance: Instance | None = None
        self._lock = threading.Lock()

    def _ready(self) -> Instance:
        if self._instance is None:
            d = self.downstream
            self._client.sign_in(d.email, d.password)
            instance = self._client.get_instance(d.instance_id)
            instance.validate_attestation(d.policy)
            instance.set_secret(Secret())
            self._instance = instance
        return self._instance

    def predict(self, features: Tensors) -> tuple[Tensors, dict[str, Any]]:
        with self._lock:
            instance = self._ready()
            outputs = instance.predict(features)
            # The connection this prediction took, not merely the newest one.
            tls = self._client.last_server_attestation
            if tls is None:
                raise AttestationError("the downstream answer did not come over attested TLS")
            assert instance.evidence is not None
            report = {
                "url": self.downstream.url,
                "instance_id": self.downstream.instance_id,
                "tls": {
                    "certificate": base64.b64encode(tls.certificate_der).decode(),
                    "document": tls.document.to_json(),
                    "claims": tls.evidence.to_json(),
                },
                "instance_config": dict(instance.attested_config or {}),
            }
        return {k: np.asarray(v) for k, v in outputs.items()}, report

    def close(self) -> None:
        self._client.close()


class _StageRunner:
    """The stage's model, then the downstream call (the runtime contract, see runtime.base)."""

    def __init__(self, inner: ModelRunner, caller: _Caller) -> None:
        self._inner = inner
        self._caller = caller

    @property
    def signature(self) -> ModelSignature:
        return ModelSignature(
            inputs=self._inner.signature.inputs,
            outputs=(TensorSpec(CHAIN_OUTPUT, "str", (1,)),),
        )

    def ready(self) -> bool:
        return self._inner.ready()

    def run(self, inputs: Tensors) -> Tensors:
        features = self._inner.run(inputs)
        outputs, report = self._caller.predict(features)
        if CHAIN_OUTPUT in outputs:
            raise InferenceFailed(f"the downstream model has an output named {CHAIN_OUTPUT!r}")
        chain = np.array([json.dumps(report, sort_keys=True)], dtype=object)
        return {**outputs, CHAIN_OUTPUT: chain}

    def close(self) -> None:
        """The inner runner belongs to the service; nothing of ours to close."""


class Pipeline:
    """The stages of one clean room: instance id -> its downstream clean room.

    Install with ``service.compose_runner = pipeline.compose``; only
    instances added with :meth:`add_stage` forward anything. The stage
    presents the clean room's attested-TLS key with a configuration whose
    ``policy_digest`` is the stage instance's own policy digest at call time,
    which the next clean room's allow-list checks.
    """

    def __init__(self, service: Any) -> None:
        self._service = service
        self._downstreams: dict[str, Downstream] = {}
        self._callers: dict[str, tuple[str, _Caller]] = {}
        self._lock = threading.Lock()

    def add_stage(self, instance_id: str, downstream: Downstream) -> None:
        with self._lock:
            self._downstreams[instance_id] = downstream
            old = self._callers.pop(instance_id, None)
        if old is not None:
            old[1].close()

    def _caller(self, record: Any, downstream: Downstream) -> _Caller:
        digest = str(self._service.gate.bundle(record).digest)
        with self._lock:
            current = self._callers.get(record.id)
            if current is not None and current[0] == digest:
                return current[1]
            settings = AtlsSettings(policy_digest=digest)
            identity = AttestedTlsIdentity.for_tee(self._service.tee, settings)
            caller = _Caller(downstream, identity, fetchers=self._service.tee.fetchers)
            self._callers[record.id] = (digest, caller)
        if current is not None:
            current[1].close()
        return caller

    def compose(self, record: Any, runner: ModelRunner) -> ModelRunner:
        with self._lock:
            downstream = self._downstreams.get(str(record.id))
        if downstream is None:
            return runner
        return _StageRunner(runner, self._caller(record, downstream))

    def close(self) -> None:
        with self._lock:
            callers = [c for _, c in self._callers.values()]
            self._callers, self._downstreams = {}, {}
        for caller in callers:
            caller.close()


def verify_chain(
    chain: str | bytes,
    policy: AttestationPolicy,
    *,
    at: datetime | None = None,
    fetchers: EvidenceFetchers | None = None,
) -> VerifiedEvidence:
    """Check, with the data owner's own *policy*, what a stage reports of its downstream.

    Verifies the downstream's evidence (root, measurement, TCB, debug...),
    that its REPORT_DATA commits to the reported configuration and nonce,
    that this configuration names the key of the certificate the stage saw,
    and that the instance configuration the stage verified names the same
    key. Freshness rests on the stage: it chose the nonce, and the data
    owner attested the stage's code. *fetchers* complete the downstream's
    evidence on this side (the current AMD CRL, Intel's current collateral).
    """
    try:
        report: Any = json.loads(chain)
        tls = report["tls"]
        document = AttestationDocument.from_json(tls["document"])
        certificate = load_certificate(base64.b64decode(tls["certificate"], validate=True))
        instance_config = report["instance_config"]
    except (KeyError, TypeError, ValueError) as exc:
        raise EvidenceFormatError(f"the chain report is malformed: {type(exc).__name__}") from None
    verified = verify_evidence(
        document.evidence if fetchers is None else fetchers.complete(document.evidence),
        policy,
        report_data=document.expected_report_data(document.nonce),
        at=at,
    )
    key = tls_key_digest(spki_der(certificate)).hex()
    failures: list[str] = []
    if document.role != "server":
        failures.append(f"atls.role: got {document.role!r}, expected 'server'")
    if _keys(document.config).get(TLS_SPKI_KEY) != key:
        failures.append(f"keys.{TLS_SPKI_KEY}: the downstream evidence names another TLS key")
    if _keys(instance_config).get(TLS_SPKI_KEY) != key:
        failures.append(
            f"instance keys.{TLS_SPKI_KEY}: the instance the stage verified is not behind this key"
        )
    if failures:
        raise PolicyViolation("the downstream chain does not hold together", failures=failures)
    return verified


def _keys(config: object) -> Mapping[str, Any]:
    keys = config.get("keys") if isinstance(config, Mapping) else None
    return keys if isinstance(keys, Mapping) else {}
