"""The ingress/egress gate: every request in and result out meets the instance's policy,
and every decision lands in the signed decision log.

Policies are compiled once per instance and policy version and reused for every
request. Query counts per (instance, party) are the number of allowed
predictions in the verified log.
"""

from __future__ import annotations

import sqlite3
import threading
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
        """Allowed predictions so far, counted from the verified log."""
        return self.log.count(instance_id, user, action=PREDICT, allowed=True)

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
        here and again at egress.
        """
        bundle = self.bundle(record)
        ticket = GateTicket(
            record=record,
            bundle=bundle,
            user=user,
            action=action,
            queries=self.queries(record.id, user),
            request_digest=request_digest,
            context=dict(context or {}),
            inputs=dict(inputs or {}),
            audit=None if audit is None else dict(audit),
        )
        document = ingress_input(
            action=action,
            user=user,
            instance=self._info(record),
            queries=ticket.queries,
            inputs=ticket.inputs,
            payload_nbytes=payload_nbytes,
            context=ticket.context,
            model_digest=record.model_digest,
        )
        if ticket.audit is not None:
            document["audit"] = dict(ticket.audit)
        decision = bundle.evaluate_ingress(document)
        if not decision.allowed:
            self._deny(ticket, decision.reason or "the policy denied the request")
        return ticket

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
        entry = self.log.append(
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
        return entry

    def receipt(self, entry: LogEntry) -> Receipt:
        """The receipt of an entry :meth:`allowed` just returned (not read back from storage)."""
        return self.log.receipt_for(entry)
