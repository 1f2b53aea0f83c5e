"""Privacy audits inside the clean room (docs/privacy-audits.md).

An instance's audit spec is fixed when the instance is created and its digest
is in the attested configuration, so nobody can tune the audit after seeing
results. The member and non-member record sets arrive sealed like models and
stay in memory; only aggregates leave, in a certificate signed by the clean
room's attested key and carrying evidence bound to the certificate body.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cleanroom.audit import (
    AuditSpec,
    LabelledRecords,
    certificate_nonce,
    certificate_payload,
    run_membership_audit,
    sign_certificate,
)
from cleanroom.audit.certificate import verify_certificate
from cleanroom.audit.data import records_from_npz
from cleanroom.audit.split import split_pool
from cleanroom.errors import AuditError, Conflict, InvalidRequest, ModelNotReady, ServiceUnavailable
from cleanroom.runtime.base import ModelRunner
from cleanroom.server.store import InstanceRecord, Store
from cleanroom.server.tee import Tee

__all__ = ["DATASETS", "POOL", "AuditRoom"]

DATASETS = ("members", "nonmembers")
POOL = "pool"  # uploaded instead of both when the spec names a pool
# Record sets wait in memory for their audit: all instances' together may hold
# at most this much, so uploads cannot grow the service without bound.
MAX_HELD_BYTES = 1024**3
SPEC_OPTION = "audit_spec"
CERTIFICATE_OPTION = "audit_certificate"


class AuditRoom:
    def __init__(self, store: Store, tee: Tee, *, max_held_bytes: int = MAX_HELD_BYTES) -> None:
        self._store = store
        self._tee = tee
        self._data: dict[tuple[str, str], LabelledRecords] = {}
        self._lock = threading.Lock()
        self.max_held_bytes = max_held_bytes

    @staticmethod
    def parse_spec(doc: Any) -> AuditSpec:
        return AuditSpec.from_json(doc)

    @staticmethod
    def spec(record: InstanceRecord) -> AuditSpec | None:
        doc = record.options.get(SPEC_OPTION)
        return None if doc is None else AuditSpec.from_json(doc)

    def check_upload_name(self, record: InstanceRecord, name: str) -> None:
        """Refuse, before any byte is received, a record set this instance's audit does not take.

        A spec that names a pool takes the pool only: its two sets are derived
        from it at random, never uploaded (:mod:`cleanroom.audit.split`).
        """
        accepted = _uploads(self._require_spec(record))
        if name not in accepted:
            raise InvalidRequest(f"this instance's audit takes {list(accepted)}, not {name!r}")

    def put_dataset(self, record: InstanceRecord, name: str, plaintext: bytes) -> str:
        """Keep a record set in memory after checking it against the spec's commitment."""
        spec = self._require_spec(record)
        self.check_upload_name(record, name)
        records = records_from_npz(plaintext)
        sets = _split(spec, records) if name == POOL else {name: _committed(spec, name, records)}
        size = sum(_held_bytes(r) for r in sets.values())
        keys = {(record.id, n) for n in sets}
        with self._lock:
            others = sum(_held_bytes(r) for k, r in self._data.items() if k not in keys)
            if others + size > self.max_held_bytes:
                raise ServiceUnavailable(
                    f"the audit record sets waiting in memory would exceed {self.max_held_bytes}"
                    " bytes",
                    remedy="retry once pending audits have run or their instances are deleted",
                )
            for n, r in sets.items():
                self._data[(record.id, n)] = r
        return records.commitment()

    def forget(self, instance_id: str) -> None:
        with self._lock:
            for name in DATASETS:
                self._data.pop((instance_id, name), None)

    def _require_spec(self, record: InstanceRecord) -> AuditSpec:
        spec = self.spec(record)
        if spec is None:
            raise Conflict(
                "this instance has no audit spec",
                remedy="create the instance with audit_spec=...; the spec cannot be added later",
            )
        return spec

    def run(
        self,
        record: InstanceRecord,
        runner: ModelRunner | None,
        config: Callable[[InstanceRecord], dict[str, Any]],
    ) -> bytes:
        """Run the spec's attacks on the instance's model; sign and store the certificate."""
        spec = self._require_spec(record)
        if runner is None or record.model_digest is None:
            raise ModelNotReady("upload the model before auditing it")
        with self._lock:
            sets = [self._data.get((record.id, name)) for name in DATASETS]
        members, nonmembers = sets
        if members is None or nonmembers is None:
            missing = [n for n, s in zip(DATASETS, sets, strict=True) if s is None]
            raise Conflict(f"upload the audit datasets first (missing: {', '.join(missing)})")
        result = run_membership_audit(spec, runner.run, members, nonmembers)
        body = certificate_payload(
            result, model_digest=record.model_digest, issued_at=datetime.now(UTC)
        )
        nonce = certificate_nonce(body)
        attested = config(record)
        block = {
            "evidence": self._tee.evidence(nonce, attested).to_json(),
            "config": attested,
            "hpke_public_key": base64.b64encode(self._tee.hpke.public.raw).decode(),
            "nonce": nonce.hex(),
        }
        document = sign_certificate(body, self._tee.signing_key, evidence=block)
        options = dict(self._store.instance(record.id).options)
        options[CERTIFICATE_OPTION] = document.decode("utf-8")
        self._store.set_options(record.id, options)
        return document

    @staticmethod
    def certificate(record: InstanceRecord) -> bytes | None:
        text = record.options.get(CERTIFICATE_OPTION)
        return text.encode("utf-8") if isinstance(text, str) else None

    def summary(self, record: InstanceRecord) -> dict[str, Any]:
        """``input.audit`` for the instance policy: the certificate in force, if any.

        ``current`` is true only when the certificate verifies under this clean
        room's key and covers the model and spec the instance has now.
        """
        spec = self.spec(record)
        document = self.certificate(record)
        empty: dict[str, Any] = {
            "verdict": None,
            "current": False,
            "issued_at": None,
            "epsilon_lower_bound": None,
            "spec_digest": None if spec is None else spec.digest,
        }
        if document is None or spec is None:
            return empty
        try:
            cert = verify_certificate(document, public_key=self._tee.signing_key.public_key())
        except Exception:  # a certificate from another key (earlier code) is simply not current
            return empty
        return {
            "verdict": cert.verdict,
            "current": cert.spec_digest == spec.digest and cert.model_digest == record.model_digest,
            "issued_at": cert.issued_at.isoformat(),
            "epsilon_lower_bound": cert.epsilon_lower_bound,
            "spec_digest": spec.digest,
        }


def _held_bytes(records: LabelledRecords) -> int:
    return int(records.features.nbytes) + int(records.labels.nbytes)


def _uploads(spec: AuditSpec) -> tuple[str, ...]:
    return (POOL,) if spec.pool_commitment is not None else DATASETS


def _committed(spec: AuditSpec, name: str, records: LabelledRecords) -> LabelledRecords:
    expected = spec.members_commitment if name == "members" else spec.nonmembers_commitment
    if records.commitment() != expected:
        raise AuditError(
            f"the {name} set does not match the commitment fixed in the audit spec",
            remedy="upload exactly the record set that was committed before training",
        )
    return records


def _split(spec: AuditSpec, pool: LabelledRecords) -> dict[str, LabelledRecords]:
    """The pool's two sets, derived at random, each checked against the spec."""
    if pool.commitment() != spec.pool_commitment:
        raise AuditError(
            "the pool does not match the commitment fixed in the audit spec",
            remedy="upload exactly the pool that was committed before training",
        )
    members, nonmembers = split_pool(pool)
    if (members.commitment(), nonmembers.commitment()) != (
        spec.members_commitment,
        spec.nonmembers_commitment,
    ):
        raise AuditError(
            "the pool's random split does not give the member and non-member sets the spec"
            " commits to",
            remedy="train on the members `cleanroom audit split POOL` derives, and commit to"
            " the commitments it prints",
        )
    return {"members": members, "nonmembers": nonmembers}
