"""The decision log: append-only, hash-chained, Merkle-rooted, signed.

Each decision becomes a :class:`LogEntry` whose ``prev_hash`` is the leaf
hash of the entry before it (a hash chain, which lets a verifier say *which*
entry was changed), and a leaf of an RFC 9162 Merkle tree (which gives every
entry a short inclusion proof). :meth:`DecisionLog.checkpoint` signs the tree
head with the clean room's log key; :meth:`DecisionLog.receipt` returns an
entry with its proof and a signed checkpoint.

Storage is one SQLite table that the log creates itself. The entries are
stored as the exact canonical bytes that are hashed, so a restart reloads
and re-verifies them; a stored log that does not verify is refused
(:class:`LogIntegrityError`), never silently repaired.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import functools
import hashlib
import json
import sqlite3
import threading
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cleanroom.errors import (
    ConfigurationError,
    InvalidRequest,
    LogIntegrityError,
    ServiceUnavailable,
)
from cleanroom.policy._canonical import utf8_text
from cleanroom.policy._chain import chain_problems
from cleanroom.policy.engine import Decision
from cleanroom.policy.merkle import MerkleTree
from cleanroom.policy.records import (
    EXPORT_FORMAT,
    GENESIS_HASH,
    Checkpoint,
    LogEntry,
    Receipt,
    check_digest,
)
from cleanroom.policy.signing import LogPrivateKey, LogPublicKey, algorithm_of, key_id, sign

__all__ = ["EXPORT_FORMAT", "ContentHasher", "DecisionLog", "content_digest", "stored_log_size"]

_MAX_NAME = 256
_MAX_REASON = 1024


def rfc3339(moment: datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: ``2026-01-31T12:00:00.000Z``."""
    if moment.tzinfo is None:
        raise InvalidRequest("the log clock must return timezone-aware datetimes")
    t = moment.astimezone(UTC)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond // 1000:03d}Z"
    )


class ContentHasher:
    """:func:`content_digest` of data that arrives in pieces, fed as they come."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, part: bytes | bytearray | memoryview) -> None:
        self._hash.update(part)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def content_digest(data: bytes | memoryview | Sequence[bytes | memoryview]) -> str:
    """``"sha256:<hex>"`` of *data*: how request and response ciphertexts are named.

    *data* may also be a sequence of parts: the digest of their concatenation.
    """
    hasher = ContentHasher()
    if isinstance(data, bytes | bytearray | memoryview):
        hasher.update(data)
    else:
        for part in data:
            hasher.update(part)
    return hasher.digest


def stored_log_size(path: Path) -> int:
    """How many entries the decision log in the SQLite database *path* holds.

    Read only, without verifying them: 0 when there is no such file or no
    log table in it. :class:`ServiceUnavailable` when the file cannot be read.
    """
    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            (tables,) = conn.execute(
                "SELECT COUNT(*) FROM sqlite_master"
                " WHERE type = 'table' AND name = 'cleanroom_decision_log'"
            ).fetchone()
            if not tables:
                return 0
            (size,) = conn.execute("SELECT COUNT(*) FROM cleanroom_decision_log").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ServiceUnavailable(
            f"the decision log in {path} cannot be read ({type(exc).__name__})"
        ) from None
    return int(size)


def _name(label: str, value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME:
        raise InvalidRequest(f"{label} must be a non-empty string of at most {_MAX_NAME} chars")
    return value


class DecisionLog:
    """The clean room's decision log over a SQLite connection.

    Give it a connection of its own, opened with ``check_same_thread=False``:
    the log serialises its own use of the connection with a lock, so it is
    safe to call from several threads. The *clock* returns aware datetimes
    (tests inject one); it defaults to the system clock in UTC.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        signer: LogPrivateKey,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._algorithm = algorithm_of(signer)
        self._signer = signer
        self._public_key: LogPublicKey = signer.public_key()
        self._log_id = key_id(self._public_key)
        self._conn = conn
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._tree = MerkleTree()
        self._last: LogEntry | None = None
        # (instance_id, party, action, decision) -> entries, from verified entries only.
        self._counts: Counter[tuple[str, str, str, str]] = Counter()
        # (instance_id, party) filter -> the seqs of the verified entries it selects,
        # ascending (8 bytes each): a page must be exactly the next ones of these.
        self._selected: defaultdict[tuple[str | None, str | None], array[int]] = defaultdict(
            functools.partial(array, "q")
        )
        self._checkpoint: Checkpoint | None = None
        with self._locked():
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS cleanroom_decision_log ("
                " seq INTEGER PRIMARY KEY,"
                " instance_id TEXT NOT NULL,"
                " party TEXT NOT NULL,"
                " entry BLOB NOT NULL)"
            )
            self._conn.execute(
                "CREATE INDEX IF NOT EXISTS cleanroom_decision_log_instance"
                " ON cleanroom_decision_log (instance_id, seq)"
            )
            self._conn.execute(
                "CREATE INDEX IF NOT EXISTS cleanroom_decision_log_party"
                " ON cleanroom_decision_log (party, seq)"
            )
            self._conn.commit()
            self._catch_up()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock; a database failure is the service's, not the caller's."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise ServiceUnavailable(
                    f"the decision log cannot be read ({type(exc).__name__})"
                ) from None

    @property
    def public_key(self) -> LogPublicKey:
        """The key checkpoints verify under; commit it in the attestation evidence."""
        return self._public_key

    @property
    def log_id(self) -> str:
        return self._log_id

    @property
    def size(self) -> int:
        with self._lock:
            return self._tree.size

    def _catch_up(self) -> None:
        """Load and verify rows written since we last looked (by us before a
        restart, or by another process sharing the database)."""
        start = self._tree.size
        rows = self._conn.execute(
            "SELECT seq, entry FROM cleanroom_decision_log WHERE seq >= ? ORDER BY seq", (start,)
        ).fetchall()
        if not rows:
            return
        loaded: list[LogEntry] = []
        for seq, blob in rows:
            try:
                entry = LogEntry.from_json(json.loads(bytes(blob).decode("utf-8")))
            except (ValueError, UnicodeDecodeError):
                raise LogIntegrityError(
                    f"the stored decision log is corrupt: entry {seq} is not JSON"
                ) from None
            if entry.seq != seq or entry.canonical() != bytes(blob):
                raise LogIntegrityError(
                    f"the stored decision log is corrupt: entry {seq} was altered"
                )
            loaded.append(entry)
        prev = self._last.leaf_hash().hex() if self._last is not None else GENESIS_HASH
        problems = chain_problems(loaded, first_seq=start, prev_hash=prev)
        if problems:
            raise LogIntegrityError(
                "the stored decision log is corrupt: " + "; ".join(problems), problems=problems
            )
        for entry in loaded:
            self._record(entry)

    def append(
        self,
        instance_id: str,
        action: str,
        party: str,
        decision: Decision | bool,
        reason: str | None,
        policy_digest: str,
        model_digest: str | None,
        request_digest: str,
        response_digest: str | None,
    ) -> LogEntry:
        """Record one decision and return the entry as stored.

        *decision* is a :class:`Decision` or ``True`` for allowed; *reason*
        falls back to the decision's reason when ``None``. Digests are
        ``"<alg>:<hex>"`` strings of ciphertexts (see :func:`content_digest`).
        """
        allowed = decision.allowed if isinstance(decision, Decision) else decision
        if not isinstance(allowed, bool):
            raise InvalidRequest("decision must be a Decision or a bool")
        if reason is None and isinstance(decision, Decision):
            reason = decision.reason
        if reason is not None and (not isinstance(reason, str) or len(reason) > _MAX_REASON):
            raise InvalidRequest(f"reason must be a string of at most {_MAX_REASON} chars")
        if reason is not None:
            reason = utf8_text(reason)  # a deny is logged even if its reason is not UTF-8
        check_digest("policy_digest", policy_digest, optional=False)
        check_digest("model_digest", model_digest, optional=True)
        check_digest("request_digest", request_digest, optional=False)
        check_digest("response_digest", response_digest, optional=True)
        fields = {
            "instance_id": _name("instance_id", instance_id),
            "action": _name("action", action),
            "party": _name("party", party),
        }
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise ServiceUnavailable(
                    f"the decision log cannot be written ({type(exc).__name__})"
                ) from None
            try:
                self._catch_up()
                entry = LogEntry(
                    seq=self._tree.size,
                    time=rfc3339(self._clock()),
                    decision="allow" if allowed else "deny",
                    reason=reason,
                    policy_digest=policy_digest,
                    model_digest=model_digest,
                    request_digest=request_digest,
                    response_digest=response_digest,
                    prev_hash=self._last.leaf_hash().hex() if self._last else GENESIS_HASH,
                    **fields,
                )
                self._conn.execute(
                    "INSERT INTO cleanroom_decision_log (seq, instance_id, party, entry)"
                    " VALUES (?, ?, ?, ?)",
                    (entry.seq, entry.instance_id, entry.party, entry.canonical()),
                )
                self._conn.commit()
            except sqlite3.Error as exc:
                self._conn.rollback()
                raise ServiceUnavailable(
                    f"the decision log cannot be written ({type(exc).__name__})"
                ) from None
            except BaseException:
                self._conn.rollback()
                raise
            self._record(entry)
            return entry

    def _record(self, entry: LogEntry) -> None:
        self._tree.append(entry.leaf_hash())
        self._last = entry
        self._counts[(entry.instance_id, entry.party, entry.action, entry.decision)] += 1
        for selection in (
            (entry.instance_id, None),
            (None, entry.party),
            (entry.instance_id, entry.party),
        ):
            self._selected[selection].append(entry.seq)

    def count(
        self, instance_id: str, party: str, *, action: str = "predict", allowed: bool = True
    ) -> int:
        """How many *action* requests of *party* on *instance_id* were allowed
        (or, with ``allowed=False``, denied): ``usage.queries`` for the policy.

        Counted from verified entries, so it survives restarts and cannot be
        reset by editing the table without the log refusing to load.
        """
        with self._locked():
            self._catch_up()
            decision = "allow" if allowed else "deny"
            return self._counts[(instance_id, party, action, decision)]

    def checkpoint(self) -> Checkpoint:
        """A signed tree head over every entry appended so far."""
        with self._locked():
            self._catch_up()
            return self._signed_head()

    def _signed_head(self) -> Checkpoint:
        """A signed tree head over the entries loaded so far (the lock is held)."""
        with self._lock:
            size = self._tree.size
            if self._checkpoint is not None and self._checkpoint.tree_size == size:
                return self._checkpoint
            unsigned = Checkpoint(
                log_id=self._log_id,
                tree_size=size,
                root_hash=self._tree.root().hex(),
                head_hash=self._last.leaf_hash().hex() if self._last else GENESIS_HASH,
                time=rfc3339(self._clock()),
                algorithm=self._algorithm,
                signature="",
            )
            signature = sign(self._signer, unsigned.signed_message())
            self._checkpoint = Checkpoint(
                **{**unsigned.body(), "signature": base64.b64encode(signature).decode("ascii")}
            )
            return self._checkpoint

    def entry(self, seq: int) -> LogEntry:
        with self._locked():
            row = self._conn.execute(
                "SELECT entry FROM cleanroom_decision_log WHERE seq = ?", (seq,)
            ).fetchone()
        if row is None:
            raise LogIntegrityError(f"the decision log has no entry {seq}")
        return self._parse_row(seq, bytes(row[0]))

    def _parse_row(self, seq: int, blob: bytes) -> LogEntry:
        try:
            entry = LogEntry.from_json(json.loads(blob.decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            raise LogIntegrityError(f"the stored entry {seq} is not JSON") from None
        if entry.seq != seq or entry.leaf_hash() != self._tree.leaf(seq):
            raise LogIntegrityError(f"the stored entry {seq} was altered after it was logged")
        return entry

    def receipt(self, seq: int) -> Receipt:
        """The entry *seq* (read back and checked against the tree), its
        inclusion proof and the current signed checkpoint."""
        with self._locked():
            checkpoint = self.checkpoint()
            if not 0 <= seq < checkpoint.tree_size:
                raise LogIntegrityError(f"the decision log has no entry {seq}")
            return self._receipt(self.entry(seq), checkpoint)

    def receipt_for(self, entry: LogEntry) -> Receipt:
        """The receipt of *entry*, as :meth:`append` returned it, without reading it back.

        The entry must be the one the tree holds at its seq (its leaf hash is
        compared); otherwise :class:`LogIntegrityError`.
        """
        with self._locked():
            # Rows another process added since are not needed: a head over
            # the entries loaded here covers *entry* and is as valid.
            checkpoint = self._signed_head()
            seq = entry.seq
            if not 0 <= seq < checkpoint.tree_size or entry.leaf_hash() != self._tree.leaf(seq):
                raise LogIntegrityError(f"the decision log does not hold this entry {seq}")
            return self._receipt(entry, checkpoint)

    def _receipt(self, entry: LogEntry, checkpoint: Checkpoint) -> Receipt:
        proof = self._tree.inclusion_proof(entry.seq, checkpoint.tree_size)
        return Receipt(
            entry=entry, inclusion_proof=tuple(p.hex() for p in proof), checkpoint=checkpoint
        )

    def consistency_proof(self, first_size: int, second_size: int | None = None) -> list[str]:
        """RFC 9162 §2.1.4 proof that the log of *first_size* entries is a prefix
        of the log of *second_size* (default: the current checkpoint's size),
        hex-encoded; see :func:`verify_log_consistency`."""
        with self._locked():
            size = self.checkpoint().tree_size if second_size is None else second_size
            if not 0 <= first_size <= size <= self._tree.size:
                raise InvalidRequest(f"no consistency proof from {first_size} to {size} entries")
            return [p.hex() for p in self._tree.consistency_proof(first_size, size)]

    def export(
        self,
        instance_id: str | None = None,
        party: str | None = None,
        *,
        after: int = -1,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """The log as a JSON-able document (format in ``docs/receipts.md``).

        Without filters it holds every entry and a checkpoint over exactly
        those: a verifier can then tell a removed, altered, reordered or
        inserted entry. With a filter (the entries of one instance, one
        party, or both) each entry carries its inclusion proof instead.

        With a *limit*, the export is one page of a filtered export: at most
        *limit* entries with ``seq`` above *after*, and ``page.next_after`` to
        ask for the next page with (``None`` after the last). The log is
        locked for one page at a time, never for the whole history.
        """
        filtered = instance_id is not None or party is not None
        if limit is not None and (not filtered or limit < 1):
            raise ConfigurationError("a page is of a filtered export, with a limit of at least 1")
        with self._locked():
            checkpoint = self.checkpoint()
            rows = self._conn.execute(
                "SELECT seq, entry FROM cleanroom_decision_log WHERE seq < ? AND seq > ?"
                " AND (? IS NULL OR instance_id = ?) AND (? IS NULL OR party = ?)"
                " ORDER BY seq LIMIT ?",
                (
                    checkpoint.tree_size,
                    after,
                    instance_id,
                    instance_id,
                    party,
                    party,
                    -1 if limit is None else limit + 1,
                ),
            ).fetchall()
            more = limit is not None and len(rows) > limit
            rows = rows[:limit] if limit is not None else rows
            entries = [self._parse_row(seq, bytes(blob)) for seq, blob in rows]
            if filtered:
                self._check_selection(entries, instance_id, party, after=after, limit=limit)
            doc: dict[str, Any] = {
                "format": EXPORT_FORMAT,
                "filter": {"instance_id": instance_id, "party": party} if filtered else None,
                "checkpoint": checkpoint.to_json(),
                "entries": [e.to_json() for e in entries],
            }
            if limit is not None:
                doc["page"] = {
                    "after": after,
                    "limit": limit,
                    "next_after": entries[-1].seq if more else None,
                }
            if filtered:
                doc["inclusion_proofs"] = [
                    [p.hex() for p in self._tree.inclusion_proof(e.seq, checkpoint.tree_size)]
                    for e in entries
                ]
        return doc

    def _check_selection(
        self,
        entries: list[LogEntry],
        instance_id: str | None,
        party: str | None,
        *,
        after: int = -1,
        limit: int | None = None,
    ) -> None:
        """The indexed columns chose the rows; make sure they chose exactly the
        entries the verified log holds for this filter (an edited column
        would otherwise hide or add entries silently): the next *limit* (or
        all) of the filter's verified entries after *after*. For a page, the
        index must also select as many rows in all as the log holds, so that
        the page's ``next_after`` does not end the walk early."""
        paged = limit is not None
        seqs = self._selected.get((instance_id, party), array("q"))
        start = bisect.bisect_right(seqs, after)
        window = seqs[start:] if limit is None else seqs[start : start + limit]
        expected = len(seqs)
        wrong = [
            e.seq
            for e in entries
            if (instance_id is not None and e.instance_id != instance_id)
            or (party is not None and e.party != party)
        ]
        if paged:
            (selected,) = self._conn.execute(
                "SELECT COUNT(*) FROM cleanroom_decision_log WHERE seq < ?"
                " AND (? IS NULL OR instance_id = ?) AND (? IS NULL OR party = ?)",
                (self._tree.size, instance_id, instance_id, party, party),
            ).fetchone()
        else:
            selected = len(entries)
        if wrong or selected != expected or [e.seq for e in entries] != window.tolist():
            raise LogIntegrityError(
                "the stored decision log's index was altered: the selected rows are not the "
                "entries of this filter"
            )
