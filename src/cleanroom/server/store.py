"""Persistent state in SQLite: accounts, sessions, instances, allow-lists, party keys.

Nothing secret is stored in plaintext: passwords as Argon2id hashes, session
tokens as SHA-256 digests, models as sealed files (see ``models.py``). The
connection is shared by the service's threads behind one lock; SQLite runs in
WAL mode so readers do not block the writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cleanroom.errors import Conflict, NotFound

__all__ = ["InstanceRecord", "Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    email TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_digest BLOB PRIMARY KEY,
    email TEXT NOT NULL REFERENCES users(email) ON DELETE CASCADE,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    format TEXT NOT NULL,
    created INTEGER NOT NULL,
    model_digest TEXT,
    model_size INTEGER,
    model_signature TEXT,
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS instance_users (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    PRIMARY KEY (instance_id, email)
);
CREATE TABLE IF NOT EXISTS party_keys (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    key_id BLOB NOT NULL,
    public_key BLOB NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (instance_id, key_id)
);
-- Which party a key id was first registered by on an instance. Kept when the
-- party is revoked (its party_keys rows are dropped), so a key id never moves
-- to another party of the same instance: see add_party_key.
CREATE TABLE IF NOT EXISTS party_key_bindings (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    key_id BLOB NOT NULL,
    email TEXT NOT NULL,
    PRIMARY KEY (instance_id, key_id)
);
-- Databases made before the bindings table: the keys registered so far are bound.
INSERT OR IGNORE INTO party_key_bindings (instance_id, key_id, email)
    SELECT instance_id, key_id, email FROM party_keys;
"""


@dataclass(frozen=True)
class InstanceRecord:
    id: str
    name: str
    owner: str
    format: str
    created: int
    users: tuple[str, ...]
    model_digest: str | None
    model_size: int | None
    model_signature: dict[str, Any] | None
    options: dict[str, Any]


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        # Instance records are read on every request and written rarely: they are
        # cached here and every write below drops the written instance's entry, so
        # a revocation or a new policy takes effect from the next request on.
        self._records: dict[str, InstanceRecord] = {}
        # Party keys are looked up on every sealed request. A read there cost about
        # 40 us (the decision log's connection writes to the same database on every
        # request, so the next read here reloads what changed): keys found are
        # cached per instance, and dropped with the instance's record on every write.
        # Keys not found are not cached, so unknown key ids cannot grow the cache.
        self._party_keys: dict[str, dict[bytes, tuple[str, bytes]]] = {}
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)

    @property
    def connection(self) -> sqlite3.Connection:
        """The shared connection, for components that keep their own tables."""
        return self._conn

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # accounts -----------------------------------------------------------

    def add_user(self, email: str, password_hash: str) -> None:
        try:
            with self.transaction() as c:
                c.execute(
                    "INSERT INTO users (email, password_hash, created) VALUES (?, ?, ?)",
                    (email, password_hash, int(time.time())),
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"an account for {email} already exists") from exc

    def password_hash(self, email: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT password_hash FROM users WHERE email = ?", (email,)
            ).fetchone()
        return None if row is None else str(row[0])

    def set_password_hash(self, email: str, password_hash: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE users SET password_hash = ? WHERE email = ?", (password_hash, email))

    def add_session(self, token_digest: bytes, email: str, expires: int) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM sessions WHERE expires < ?", (int(time.time()),))
            c.execute(
                "INSERT INTO sessions (token_digest, email, expires) VALUES (?, ?, ?)",
                (token_digest, email, expires),
            )

    def session(self, token_digest: bytes) -> tuple[str, int] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT email, expires FROM sessions WHERE token_digest = ?", (token_digest,)
            ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    # instances ------------------------------------------------------------

    def create_instance(
        self,
        instance_id: str,
        name: str,
        owner: str,
        fmt: str,
        users: list[str],
        options: dict[str, Any],
    ) -> InstanceRecord:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO instances (id, name, owner, format, created, options) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (instance_id, name, owner, fmt, int(time.time()), json.dumps(options)),
            )
            c.executemany(
                "INSERT OR IGNORE INTO instance_users (instance_id, email) VALUES (?, ?)",
                [(instance_id, u) for u in users],
            )
        return self.instance(instance_id)

    def _record(self, row: tuple[Any, ...]) -> InstanceRecord:
        users = tuple(
            r[0]
            for r in self._conn.execute(
                "SELECT email FROM instance_users WHERE instance_id = ? ORDER BY email", (row[0],)
            )
        )
        return InstanceRecord(
            id=row[0],
            name=row[1],
            owner=row[2],
            format=row[3],
            created=row[4],
            model_digest=row[5],
            model_size=row[6],
            model_signature=json.loads(row[7]) if row[7] else None,
            options=json.loads(row[8]),
            users=users,
        )

    _COLUMNS = (
        "id, name, owner, format, created, model_digest, model_size, model_signature, options"
    )

    def instance(self, instance_id: str) -> InstanceRecord:
        with self._lock:
            cached = self._records.get(instance_id)
            if cached is not None:
                return cached
            row = self._conn.execute(
                f"SELECT {self._COLUMNS} FROM instances WHERE id = ?",  # noqa: S608
                (instance_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no instance {instance_id}")
            record = self._record(row)
            self._records[instance_id] = record
            return record

    def _changed(self, instance_id: str) -> None:
        with self._lock:
            self._records.pop(instance_id, None)
            self._party_keys.pop(instance_id, None)

    def instances(self) -> list[InstanceRecord]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {self._COLUMNS} FROM instances ORDER BY created, id"  # noqa: S608
            ).fetchall()
            return [self._record(r) for r in rows]

    def instances_visible_to(self, email: str) -> list[InstanceRecord]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {self._COLUMNS} FROM instances WHERE owner = ? OR id IN "  # noqa: S608
                "(SELECT instance_id FROM instance_users WHERE email = ?) ORDER BY created, id",
                (email, email),
            ).fetchall()
            return [self._record(r) for r in rows]

    def delete_instance(self, instance_id: str) -> None:
        self._changed(instance_id)
        with self.transaction() as c:
            c.execute("DELETE FROM instances WHERE id = ?", (instance_id,))
        self._changed(instance_id)

    def grant(self, instance_id: str, email: str) -> None:
        self._changed(instance_id)
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO instance_users (instance_id, email) VALUES (?, ?)",
                (instance_id, email),
            )
        self._changed(instance_id)

    def revoke(self, instance_id: str, email: str) -> None:
        self._changed(instance_id)
        with self.transaction() as c:
            c.execute(
                "DELETE FROM instance_users WHERE instance_id = ? AND email = ?",
                (instance_id, email),
            )
            c.execute(
                "DELETE FROM party_keys WHERE instance_id = ? AND email = ?", (instance_id, email)
            )
        self._changed(instance_id)

    def set_model(
        self, instance_id: str, digest: str, size: int, signature: dict[str, Any]
    ) -> None:
        self._changed(instance_id)
        with self.transaction() as c:
            c.execute(
                "UPDATE instances SET model_digest = ?, model_size = ?, model_signature = ? "
                "WHERE id = ?",
                (digest, size, json.dumps(signature), instance_id),
            )
        self._changed(instance_id)

    def set_options(self, instance_id: str, options: dict[str, Any]) -> None:
        self._changed(instance_id)
        with self.transaction() as c:
            c.execute(
                "UPDATE instances SET options = ? WHERE id = ?", (json.dumps(options), instance_id)
            )
        self._changed(instance_id)

    # party keys -------------------------------------------------------------

    def add_party_key(self, instance_id: str, email: str, key_id: bytes, public_key: bytes) -> None:
        """Register *public_key* for *email* on the instance.

        A key id belongs to the first party that registered it on the instance,
        for the instance's life: the same party registering it again is a no-op
        (also after being revoked and granted again), any other party is refused
        with :class:`Conflict`. Public keys are not secret, so without this a
        party could take over another party's key id: the victim's requests
        would be refused, and a captured sealed request of the victim's would be
        accepted and logged as the taker's. The check and the write are one
        transaction.
        """
        with self.transaction() as c:
            row = c.execute(
                "SELECT email FROM party_key_bindings WHERE instance_id = ? AND key_id = ?",
                (instance_id, key_id),
            ).fetchone()
            if row is not None and str(row[0]) != email:
                # The other party's email is not named: who uses which key is theirs.
                raise Conflict(
                    "this public key is registered to another party on this instance",
                    remedy="generate a new key pair for this instance and register that",
                )
            c.execute(
                "INSERT OR IGNORE INTO party_key_bindings (instance_id, key_id, email) "
                "VALUES (?, ?, ?)",
                (instance_id, key_id, email),
            )
            c.execute(
                "INSERT OR REPLACE INTO party_keys "
                "(instance_id, email, key_id, public_key, created) VALUES (?, ?, ?, ?, ?)",
                (instance_id, email, key_id, public_key, int(time.time())),
            )
            self._party_keys.pop(instance_id, None)

    def party_key(self, instance_id: str, key_id: bytes) -> tuple[str, bytes] | None:
        """The (email, public key) registered under *key_id* on the instance, if any."""
        with self._lock:
            cached = self._party_keys.get(instance_id, {}).get(key_id)
            if cached is not None:
                return cached
            row = self._conn.execute(
                "SELECT email, public_key FROM party_keys WHERE instance_id = ? AND key_id = ?",
                (instance_id, key_id),
            ).fetchone()
            if row is None:
                return None
            found = (str(row[0]), bytes(row[1]))
            self._party_keys.setdefault(instance_id, {})[bytes(key_id)] = found
            return found
