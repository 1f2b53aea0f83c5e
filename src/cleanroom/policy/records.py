"""The decision log's records: entries, signed checkpoints and receipts.

Every record has a JSON form (``to_json`` / ``from_json``). ``from_json``
checks structure only (types, sizes, hex encodings) and raises
:class:`LogIntegrityError` naming the malformed field; whether the records
verify is :mod:`cleanroom.policy.verify`'s job. The byte layouts that hashes
and signatures cover are documented in ``docs/receipts.md``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cleanroom.errors import InvalidRequest, LogIntegrityError
from cleanroom.policy._canonical import canonical_json
from cleanroom.policy.merkle import leaf_hash

__all__ = [
    "CHECKPOINT_CONTEXT",
    "EXPORT_FORMAT",
    "GENESIS_HASH",
    "RECEIPT_FORMAT",
    "Checkpoint",
    "LogEntry",
    "Receipt",
]

#: ``prev_hash`` of the first entry: there is no previous entry.
GENESIS_HASH = "0" * 64
#: Signed in front of the canonical checkpoint body (domain separation).
CHECKPOINT_CONTEXT = b"cleanroom-log-checkpoint/1\n"
RECEIPT_FORMAT = "cleanroom-receipt/1"
EXPORT_FORMAT = "cleanroom-log-export/1"

_HEX32 = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(r"[a-z0-9-]{1,16}:[0-9a-f]{32,128}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")
_MAX_TEXT = 1024
_DECISIONS = ("allow", "deny")


def _field(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    if name not in doc:
        raise LogIntegrityError(f"malformed {what}: {name} is missing")
    value = doc[name]
    if isinstance(value, bool) and kind is int:
        raise LogIntegrityError(f"malformed {what}: {name} must be an integer")
    if not isinstance(value, kind):
        raise LogIntegrityError(f"malformed {what}: {name} has the wrong type")
    if isinstance(value, str):
        if len(value) > _MAX_TEXT:
            raise LogIntegrityError(f"malformed {what}: {name} is too long")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise LogIntegrityError(
                    f"malformed {what}: {name} holds an unpaired surrogate (not UTF-8 text)"
                ) from None
    return value


def _hex32(doc: Mapping[str, Any], name: str, what: str) -> str:
    value = _field(doc, name, str, what)
    if not _HEX32.fullmatch(value):
        raise LogIntegrityError(f"malformed {what}: {name} is not 32 bytes of lowercase hex")
    return str(value)


def _optional_digest(doc: Mapping[str, Any], name: str, what: str) -> str | None:
    value = _field(doc, name, (str, type(None)), what)
    if value is not None and not _DIGEST.fullmatch(value):
        raise LogIntegrityError(f"malformed {what}: {name} is not an '<alg>:<hex>' digest")
    return value if value is None else str(value)


def check_digest(name: str, value: str | None, *, optional: bool) -> None:
    """Refuse an argument that is not an ``"<alg>:<hex>"`` digest."""
    if value is None and optional:
        return
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise InvalidRequest(f"{name} must be a digest like 'sha256:<hex>'")


@dataclass(frozen=True)
class LogEntry:
    """One decision. ``decision`` is ``"allow"`` or ``"deny"``.

    The digests are of the sealed (ciphertext) request and response, never
    of plaintext; ``model_digest`` and ``response_digest`` are ``None`` when
    there was no model yet or no response (a denied request).
    """

    seq: int
    time: str
    instance_id: str
    action: str
    party: str
    decision: str
    reason: str | None
    policy_digest: str
    model_digest: str | None
    request_digest: str
    response_digest: str | None
    prev_hash: str

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "instance_id": self.instance_id,
            "action": self.action,
            "party": self.party,
            "decision": self.decision,
            "reason": self.reason,
            "policy_digest": self.policy_digest,
            "model_digest": self.model_digest,
            "request_digest": self.request_digest,
            "response_digest": self.response_digest,
            "prev_hash": self.prev_hash,
        }

    @functools.cached_property
    def _canonical(self) -> bytes:
        return canonical_json(self.to_json())

    @functools.cached_property
    def _leaf_hash(self) -> bytes:
        return leaf_hash(self._canonical)

    def canonical(self) -> bytes:
        """The bytes the Merkle leaf covers: the entry as canonical JSON (computed once)."""
        return self._canonical

    def leaf_hash(self) -> bytes:
        """RFC 9162 §2.1.1 leaf hash of :meth:`canonical`; also the next entry's ``prev_hash``."""
        return self._leaf_hash

    @classmethod
    def from_json(cls, doc: Any) -> LogEntry:
        what = "log entry"
        if not isinstance(doc, Mapping):
            raise LogIntegrityError("malformed log entry: not an object")
        extra = sorted(set(doc) - set(_ENTRY_FIELDS))
        if extra:
            raise LogIntegrityError(f"malformed log entry: unknown field(s) {extra}")
        seq = _field(doc, "seq", int, what)
        if seq < 0:
            raise LogIntegrityError("malformed log entry: seq is negative")
        time = _field(doc, "time", str, what)
        if not _TIME.fullmatch(time):
            raise LogIntegrityError("malformed log entry: time is not RFC 3339 UTC")
        decision = _field(doc, "decision", str, what)
        if decision not in _DECISIONS:
            raise LogIntegrityError("malformed log entry: decision is not allow or deny")
        policy = _optional_digest(doc, "policy_digest", what)
        request = _optional_digest(doc, "request_digest", what)
        if policy is None or request is None:
            raise LogIntegrityError("malformed log entry: policy and request digests are required")
        return cls(
            seq=seq,
            time=time,
            instance_id=_field(doc, "instance_id", str, what),
            action=_field(doc, "action", str, what),
            party=_field(doc, "party", str, what),
            decision=decision,
            reason=_field(doc, "reason", (str, type(None)), what),
            policy_digest=policy,
            model_digest=_optional_digest(doc, "model_digest", what),
            request_digest=request,
            response_digest=_optional_digest(doc, "response_digest", what),
            prev_hash=_hex32(doc, "prev_hash", what),
        )


_ENTRY_FIELDS = tuple(LogEntry.__dataclass_fields__)


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: the log of ``tree_size`` entries has ``root_hash``.

    ``root_hash`` is the RFC 9162 Merkle tree hash over the entries' leaf
    hashes; ``head_hash`` is the leaf hash of the last entry (the head of the
    hash chain, :data:`GENESIS_HASH` for an empty log). ``log_id`` names the
    signing key (see :func:`cleanroom.policy.signing.key_id`).
    """

    log_id: str
    tree_size: int
    root_hash: str
    head_hash: str
    time: str
    algorithm: str
    signature: str

    def body(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "head_hash": self.head_hash,
            "time": self.time,
            "algorithm": self.algorithm,
        }

    def signed_message(self) -> bytes:
        """What the signature covers: the context string, then the canonical body."""
        return CHECKPOINT_CONTEXT + canonical_json(self.body())

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature}

    def signature_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError):
            raise LogIntegrityError("malformed checkpoint: signature is not base64") from None

    @classmethod
    def from_json(cls, doc: Any) -> Checkpoint:
        what = "checkpoint"
        if not isinstance(doc, Mapping):
            raise LogIntegrityError("malformed checkpoint: not an object")
        size = _field(doc, "tree_size", int, what)
        if size < 0:
            raise LogIntegrityError("malformed checkpoint: tree_size is negative")
        time = _field(doc, "time", str, what)
        if not _TIME.fullmatch(time):
            raise LogIntegrityError("malformed checkpoint: time is not RFC 3339 UTC")
        log_id = _field(doc, "log_id", str, what)
        if not _DIGEST.fullmatch(log_id):
            raise LogIntegrityError("malformed checkpoint: log_id is not a digest")
        return cls(
            log_id=log_id,
            tree_size=size,
            root_hash=_hex32(doc, "root_hash", what),
            head_hash=_hex32(doc, "head_hash", what),
            time=time,
            algorithm=_field(doc, "algorithm", str, what),
            signature=_field(doc, "signature", str, what),
        )


def proof_from_json(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 128:
        raise LogIntegrityError(f"malformed {what}: inclusion_proof must be a list of hashes")
    for item in value:
        if not isinstance(item, str) or not _HEX32.fullmatch(item):
            raise LogIntegrityError(f"malformed {what}: inclusion_proof holds a non-hash")
    return tuple(value)


@dataclass(frozen=True)
class Receipt:
    """Proof that one entry is in the log: the entry, its RFC 9162 inclusion
    proof (§2.1.3) and the signed checkpoint the proof leads to."""

    entry: LogEntry
    inclusion_proof: tuple[str, ...]
    checkpoint: Checkpoint

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RECEIPT_FORMAT,
            "entry": self.entry.to_json(),
            "leaf_index": self.entry.seq,
            "inclusion_proof": list(self.inclusion_proof),
            "checkpoint": self.checkpoint.to_json(),
        }

    @classmethod
    def from_json(cls, doc: Any) -> Receipt:
        what = "receipt"
        if not isinstance(doc, Mapping):
            raise LogIntegrityError("malformed receipt: not an object")
        if doc.get("format") != RECEIPT_FORMAT:
            raise LogIntegrityError(f"malformed receipt: format is not {RECEIPT_FORMAT!r}")
        entry = LogEntry.from_json(doc.get("entry"))
        index = _field(doc, "leaf_index", int, what)
        if index != entry.seq:
            raise LogIntegrityError("malformed receipt: leaf_index differs from the entry's seq")
        return cls(
            entry=entry,
            inclusion_proof=proof_from_json(doc.get("inclusion_proof"), what),
            checkpoint=Checkpoint.from_json(doc.get("checkpoint")),
        )
