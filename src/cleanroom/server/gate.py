"""The ingress/egress gate: every request in and result out meets the instance's policy,
and every decision lands in the signed decision log.

Policies are compiled once per instance and policy version and reused for every
request. A party's query count (``usage.queries``) is the number of its allowed
predictions in the verified log plus its predictions still in flight: each
prediction reserves its place at ingress, so parallel requests cannot all see
the same count and together run past a budget.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt

from cleanroom.errors import PolicyDenied
from cleanroom.policy import (
    DEFAULT_POLICY,
    DecisionLog,
    InstanceInfo,
    LogEntry,
    PolicyBundle,
    Receipt,
    content_digest,
    egress_input,
    ingress_input,
)
from cleanroom.server.store import InstanceRecord

__all__ = ["Gate", "GateTicket"]

PREDICT = "predict"
UPLOAD = "upload_model"


@dataclass
class GateTicket:
    """What the gate learnt at ingress, carried to egress and the log."""

    record: InstanceRecord
    bundle: PolicyBundle
    user: str
    action: str
    queries: int
    request_digest: str
    context: Mapping[str, Any]
    inputs: Mapping[str, npt.NDArray[Any]]
    audit: Mapping[str, Any] | None = None
    reserved: bool = False


class Gate:
    def __init__(self, db_path: Path, signer: Any) -> None:
        conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL: a commit survives a process crash; only a
        # power loss can drop the last transactions, never corrupt the log.
        conn.execute("PRAGMA synchronous=NORMAL")
        self.log = DecisionLog(conn, signer)
        self._bundles: dict[str, PolicyBundle] = {}
        self._lock = threading.Lock()
        # Predictions admitted at ingress and not yet logged, per (instance, party).
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._usage_lock = threading.Lock()

    @staticmethod
    def source_of(record: InstanceRecord) -> str:
        source = record.options.get("policy")
        return source if isinstance(source, str) else DEFAULT_POLICY

    def bundle(self, record: InstanceRecord) -> PolicyBundle:
        """The compiled policy of *record* (compiled on first use and on change, then cached)."""
        source = self.source_of(record)
        with self._lock:
            cached = self._bundles.get(record.id)
        if cached is not None and cached.source == source:
            return cached
        compiled = PolicyBundle.compile(source)
        with self._lock:
            self._bundles[record.id] = compiled
        return compiled

    def forget(self, instance_id: str) -> None:
        with self._lock:
            self._bundles.pop(instance_id, None)

    def queries(self, instance_id: str, user: str) -> int:
        """Allowed predictions so far (from the verified log) plus those in flight."""
        with self._usage_lock:
            return self._logged(instance_id, user) + self._in_flight[(instance_id, user)]

    def _logged(self, instance_id: str, user: str) -> int:
        return self.log.count(instance_id, user, action=PREDICT, allowed=True)

    def _reserve(self, ticket: GateTicket) -> None:
        """Count *ticket*'s prediction in flight; its ``queries`` is the count before."""
        with self._usage_lock:
            key = (ticket.record.id, ticket.user)
            ticket.queries = self._logged(*key) + self._in_flight[key]
            self._in_flight[key] += 1
            ticket.reserved = True

    def release(self, ticket: GateTicket) -> None:
        """End *ticket*'s reservation (idempotent): it was logged, denied or failed."""
        with self._usage_lock:
            self._release_locked(ticket)

    def _release_locked(self, ticket: GateTicket) -> None:
        if not ticket.reserved:
            return
        ticket.reserved = False
        key = (ticket.record.id, ticket.user)
        self._in_flight[key] -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]

    @staticmethod
    def _info(record: InstanceRecord) -> InstanceInfo:
        return InstanceInfo(id=record.id, owner=record.owner, users=record.users)

    def ingress(
        self,
        record: InstanceRecord,
        user: str,
        action: str,
        request_digest: str,
        *,
        inputs: Mapping[str, npt.NDArray[Any]] | None = None,
        payload_nbytes: int | None = None,
        context: Mapping[str, Any] | None = None,
        audit: Mapping[str, Any] | None = None,
    ) -> GateTicket:
        """Evaluate ``allow_ingress``; log and raise :class:`PolicyDenied` when denied.

        *audit* is the instance's privacy-audit summary, shown as ``input.audit``
        here and again at egress. An admitted prediction holds a place in its
        party's query count until :meth:`allowed` logs it or :meth:`release`
        gives it back; callers release in a ``finally``.
        """
        bundle = self.bundle(record)
        ticket = GateTicket(
            record=record,
            bundle=bundle,
            user=user,
            action=action,
            queries=0,
            request_digest=request_digest,
            context=dict(context or {}),
            inputs=dict(inputs or {}),
            audit=None if audit is None else dict(audit),
        )
        if action == PREDICT:
            self._reserve(ticket)  # the last step before the try that releases it
        else:
            ticket.queries = self.queries(record.id, user)
        try:
            self._check_ingress(ticket, payload_nbytes)
        except BaseException:
            self.release(ticket)
            raise
        return ticket

    def _check_ingress(self, ticket: GateTicket, payload_nbytes: int | None) -> None:
        record = ticket.record
        document = ingress_input(
            action=ticket.action,
            user=ticket.user,
            instance=self._info(record),
            queries=ticket.queries,
            inputs=ticket.inputs,
            payload_nbytes=payload_nbytes,
            context=ticket.context,
            model_digest=record.model_digest,
        )
        if ticket.audit is not None:
            document["audit"] = dict(ticket.audit)
        decision = ticket.bundle.evaluate_ingress(document)
        if not decision.allowed:
            self._deny(ticket, decision.reason or "the policy denied the request")

    def egress(
        self, ticket: GateTicket, outputs: Mapping[str, npt.NDArray[Any]]
    ) -> dict[str, npt.NDArray[Any]]:
        """Shape *outputs* as the policy declares, then evaluate ``allow_egress``."""
        shaped = ticket.bundle.shaping.apply(outputs)
        document = egress_input(
            action=ticket.action,
            user=ticket.user,
            instance=self._info(ticket.record),
            queries=ticket.queries,
            outputs=shaped,
            inputs=ticket.inputs,
            context=ticket.context,
            model_digest=ticket.record.model_digest,
        )
        if ticket.audit is not None:
            document["audit"] = dict(ticket.audit)
        decision = ticket.bundle.evaluate_egress(document)
        if not decision.allowed:
            self._deny(ticket, decision.reason or "the policy denied the result")
        return shaped

    def _deny(self, ticket: GateTicket, reason: str) -> None:
        self.release(ticket)
        self.log.append(
            ticket.record.id,
            ticket.action,
            ticket.user,
            False,
            reason,
            ticket.bundle.digest,
            ticket.record.model_digest,
            ticket.request_digest,
            None,
        )
        raise PolicyDenied(reason)

    def allowed(
        self,
        ticket: GateTicket,
        response_ciphertext: bytes | None,
        *,
        model_digest: str | None = None,
    ) -> LogEntry:
        """Log an allowed request with its response digest (this is what counts it)."""
        # One step for whoever reserves next: the prediction moves from in flight
        # to logged, never counted twice (which would deny a request in budget).
        with self._usage_lock:
            try:
                return self._append_allowed(ticket, response_ciphertext, model_digest)
            finally:
                self._release_locked(ticket)

    def _append_allowed(
        self, ticket: GateTicket, response_ciphertext: bytes | None, model_digest: str | None
    ) -> LogEntry:
        return self.log.append(
            ticket.record.id,
            ticket.action,
            ticket.user,
            True,
            None,
            ticket.bundle.digest,
            model_digest or ticket.record.model_digest,
            ticket.request_digest,
            None if response_ciphertext is None else content_digest(response_ciphertext),
        )

    def receipt(self, entry: LogEntry) -> Receipt:
        """The receipt of an entry :meth:`allowed` just returned (not read back from storage)."""
        return self.log.receipt_for(entry)
