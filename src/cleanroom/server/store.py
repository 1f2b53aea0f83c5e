"""Persistent state in SQLite: accounts, sessions, instances, allow-lists, party keys.

Nothing secret is stored in plaintext: passwords as Argon2id hashes, session
tokens as SHA-256 digests, models as sealed files (see ``models.py``). The
connection is shared by the service's threads behind one lock; SQLite runs in
WAL mode so readers do not block the writer.

The database is in the host's data directory, so the host can edit it. Given
an integrity key (the service derives it from the TEE's sealing key), every row
of ``users``, ``sessions``, ``instances``, ``party_keys`` and
``party_key_bindings`` carries an HMAC-SHA256 (``mac``) over the table's name
and every column of the row; an instance's also covers its sorted allow-list
(``instance_users``). A row whose MAC does not verify, or that has none, is
never used: an account cannot sign in, a session or a party key does not
exist, a key binding belongs to someone else, and an instance is refused with
:class:`~cleanroom.errors.StateTampered`. Not detected: a deleted row (the host
can always delete state), and a whole row put back as it was earlier, MAC and
all (there is no monotonic counter).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cleanroom.errors import Conflict, NotFound, StateTampered

__all__ = ["InstanceRecord", "Store"]

log = logging.getLogger("cleanroom.server")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    email TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created INTEGER NOT NULL,
    mac BLOB
);
CREATE TABLE IF NOT EXISTS sessions (
    token_digest BLOB PRIMARY KEY,
    email TEXT NOT NULL REFERENCES users(email) ON DELETE CASCADE,
    expires INTEGER NOT NULL,
    mac BLOB
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
    options TEXT NOT NULL DEFAULT '{}',
    mac BLOB
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
    mac BLOB,
    PRIMARY KEY (instance_id, key_id)
);
-- Which party a key id was first registered by on an instance. Kept when the
-- party is revoked (its party_keys rows are dropped), so a key id never moves
-- to another party of the same instance: see add_party_key.
CREATE TABLE IF NOT EXISTS party_key_bindings (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    key_id BLOB NOT NULL,
    email TEXT NOT NULL,
    mac BLOB,
    PRIMARY KEY (instance_id, key_id)
);
-- Databases made before the bindings table: the keys registered so far are bound.
INSERT OR IGNORE INTO party_key_bindings (instance_id, key_id, email)
    SELECT instance_id, key_id, email FROM party_keys;
"""


# The tables whose rows carry a MAC, and what every MAC input starts with.
_MAC_TABLES = ("users", "sessions", "instances", "party_keys", "party_key_bindings")
_MAC_CONTEXT = b"cleanroom/v1 store row"
_MIN_KEY_BYTES = 32


def _field(value: object) -> bytes:
    """One value, tagged with its type and length-prefixed, so no two rows encode alike."""
    if value is None:
        return b"N"
    if isinstance(value, bool):  # an int to Python, never a stored value
        raise TypeError("a bool is not a stored value")
    if isinstance(value, int):
        return b"I" + value.to_bytes(8, "big", signed=True)
    if isinstance(value, str):
        text = value.encode("utf-8")
        return b"S" + len(text).to_bytes(8, "big") + text
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return b"B" + len(data).to_bytes(8, "big") + data
    if isinstance(value, tuple):
        return b"L" + len(value).to_bytes(8, "big") + b"".join(_field(v) for v in value)
    raise TypeError(f"a {type(value).__name__} is not a stored value")


def _row_mac(key: bytes, table: str, values: Sequence[object]) -> bytes:
    """HMAC-SHA256 over the context, the table's name and the row's values, in order."""
    message = _field(_MAC_CONTEXT) + _field(table) + _field(tuple(values))
    return hmac.new(key, message, hashlib.sha256).digest()


def _refused(table: str, which: str) -> None:
    log.warning(
        "a stored row of %s (%s) failed its integrity check: it was written by other code "
        "or altered outside the clean room, and is not used",
        table,
        which,
    )


def _tampered(instance_id: str) -> StateTampered:
    return StateTampered(
        f"the stored state of instance {instance_id} failed its integrity check; it was "
        "written by other code or altered outside the clean room"
    )


def _key_taken() -> Conflict:
    # The other party's email is not named: who uses which key is theirs.
    return Conflict(
        "this public key is registered to another party on this instance",
        remedy="generate a new key pair for this instance and register that",
    )


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
    """The service's tables; with *integrity_key*, every row is authenticated.

    Without a key nothing is written to or checked against the ``mac`` columns.
    """

    def __init__(self, path: Path, integrity_key: bytes | None = None) -> None:
        if integrity_key is not None and len(integrity_key) < _MIN_KEY_BYTES:
            raise ValueError(f"the integrity key must have at least {_MIN_KEY_BYTES} bytes")
        self._key = None if integrity_key is None else bytes(integrity_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        # Instance records are read on every request and written rarely: they are
        # cached here and every write below drops the written instance's entry, so
        # a revocation or a new policy takes effect from the next request on.
        # Only records that passed their integrity check are cached.
        self._records: dict[str, InstanceRecord] = {}
        # Party keys are looked up on every sealed request. A read there cost about
        # 40 us (the decision log's connection writes to the same database on every
        # request, so the next read here reloads what changed): keys found are
        # cached per instance, and dropped with the instance's record on every write.
        # Keys not found (or failing their check) are not cached, so unknown key ids
        # cannot grow the cache.
        self._party_keys: dict[str, dict[bytes, tuple[str, bytes]]] = {}
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
            self._add_mac_columns()

    def _add_mac_columns(self) -> None:
        """Give tables made before rows carried MACs their ``mac`` column.

        Their rows have none then, so with a key they fail their check: a store
        written by other code is not used.
        """
        for table in _MAC_TABLES:
            info = self._conn.execute(f"PRAGMA table_info({table})").fetchall()
            if "mac" not in {str(column[1]) for column in info}:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN mac BLOB")

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

    # integrity ----------------------------------------------------------------

    def _mac(self, table: str, values: Sequence[object]) -> bytes | None:
        """The MAC to store with a row of *table* holding *values*; None without a key."""
        return None if self._key is None else _row_mac(self._key, table, values)

    def _intact(self, table: str, values: Sequence[object], mac: object) -> bool:
        """Whether *mac* authenticates the row; always, without a key."""
        if self._key is None:
            return True
        if not isinstance(mac, bytes):
            return False  # NULL: written by code that keeps no MACs
        try:
            expected = _row_mac(self._key, table, values)
        except (TypeError, ValueError, OverflowError):
            return False  # a value of a type or size this code never writes
        return hmac.compare_digest(expected, mac)

    # accounts -----------------------------------------------------------

    def add_user(self, email: str, password_hash: str) -> None:
        created = int(time.time())
        try:
            with self.transaction() as c:
                c.execute(
                    "INSERT INTO users (email, password_hash, created, mac) VALUES (?, ?, ?, ?)",
                    (
                        email,
                        password_hash,
                        created,
                        self._mac("users", (email, password_hash, created)),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"an account for {email} already exists") from exc

    def password_hash(self, email: str) -> str | None:
        """The account's password hash; None when there is none, or it fails its check."""
        with self._lock:
            row = self._conn.execute(
                "SELECT email, password_hash, created, mac FROM users WHERE email = ?", (email,)
            ).fetchone()
        if row is None:
            return None
        if not self._intact("users", row[:3], row[3]):
            _refused("users", email)
            return None
        return str(row[1])

    def set_password_hash(self, email: str, password_hash: str) -> None:
        with self.transaction() as c:
            row = c.execute(
                "SELECT email, password_hash, created, mac FROM users WHERE email = ?", (email,)
            ).fetchone()
            if row is None:
                return
            if not self._intact("users", row[:3], row[3]):
                _refused("users", email)  # left as it is: it never signs in
                return
            c.execute(
                "UPDATE users SET password_hash = ?, mac = ? WHERE email = ?",
                (password_hash, self._mac("users", (row[0], password_hash, row[2])), email),
            )

    def add_session(self, token_digest: bytes, email: str, expires: int) -> None:
        digest = bytes(token_digest)
        with self.transaction() as c:
            c.execute("DELETE FROM sessions WHERE expires < ?", (int(time.time()),))
            c.execute(
                "INSERT INTO sessions (token_digest, email, expires, mac) VALUES (?, ?, ?, ?)",
                (digest, email, expires, self._mac("sessions", (digest, email, expires))),
            )

    def session(self, token_digest: bytes) -> tuple[str, int] | None:
        """The session's (email, expiry); None when there is none, or it fails its check."""
        with self._lock:
            row = self._conn.execute(
                "SELECT token_digest, email, expires, mac FROM sessions WHERE token_digest = ?",
                (token_digest,),
            ).fetchone()
        if row is None:
            return None
        if not self._intact("sessions", row[:3], row[3]):
            _refused("sessions", "a session")
            return None
        return str(row[1]), int(row[2])

    # instances ------------------------------------------------------------

    # An instance row's columns, in the order its MAC covers them; the MAC covers
    # its sorted allow-list after them.
    _COLUMNS = (
        "id, name, owner, format, created, model_digest, model_size, model_signature, options"
    )
    _MODEL, _OPTIONS = slice(5, 8), 8  # positions in _COLUMNS

    def create_instance(
        self,
        instance_id: str,
        name: str,
        owner: str,
        fmt: str,
        users: list[str],
        options: dict[str, Any],
    ) -> InstanceRecord:
        created = int(time.time())
        options_json = json.dumps(options)
        columns = (instance_id, name, owner, fmt, created, None, None, None, options_json)
        with self.transaction() as c:
            c.execute(
                "INSERT INTO instances (id, name, owner, format, created, options, mac) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    instance_id,
                    name,
                    owner,
                    fmt,
                    created,
                    options_json,
                    self._instance_mac(columns, users),
                ),
            )
            c.executemany(
                "INSERT OR IGNORE INTO instance_users (instance_id, email) VALUES (?, ?)",
                [(instance_id, u) for u in users],
            )
        return self.instance(instance_id)

    def _instance_mac(self, columns: Sequence[object], users: Iterable[str]) -> bytes | None:
        return self._mac("instances", (*columns, tuple(sorted(set(users)))))

    @staticmethod
    def _users(c: sqlite3.Connection, instance_id: str) -> tuple[str, ...]:
        return tuple(
            str(r[0])
            for r in c.execute(
                "SELECT email FROM instance_users WHERE instance_id = ? ORDER BY email",
                (instance_id,),
            )
        )

    def _record(self, row: tuple[Any, ...]) -> InstanceRecord | None:
        """The record of an instances row (its ``_COLUMNS``, then its MAC).

        None, with a warning, when the row and its allow-list fail their check.
        """
        users = self._users(self._conn, row[0])
        if not self._intact("instances", (*row[:-1], tuple(sorted(users))), row[-1]):
            _refused("instances", f"instance {row[0]}")
            return None
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

    def instance(self, instance_id: str) -> InstanceRecord:
        """The instance's record: :class:`NotFound` if there is none,
        :class:`StateTampered` if it fails its integrity check."""
        with self._lock:
            cached = self._records.get(instance_id)
            if cached is not None:
                return cached
            row = self._conn.execute(
                f"SELECT {self._COLUMNS}, mac FROM instances WHERE id = ?",  # noqa: S608
                (instance_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no instance {instance_id}")
            record = self._record(row)
            if record is None:
                raise _tampered(instance_id)
            self._records[instance_id] = record
            return record

    def _changed(self, instance_id: str) -> None:
        with self._lock:
            self._records.pop(instance_id, None)
            self._party_keys.pop(instance_id, None)

    def instances(self) -> list[InstanceRecord]:
        """Every instance that passes its integrity check; the others are left out."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {self._COLUMNS}, mac FROM instances ORDER BY created, id"  # noqa: S608
            ).fetchall()
            return [r for r in map(self._record, rows) if r is not None]

    def instances_visible_to(self, email: str) -> list[InstanceRecord]:
        """The instances *email* owns or is named on; those failing their check are left out."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {self._COLUMNS}, mac FROM instances WHERE owner = ? OR id IN "  # noqa: S608
                "(SELECT instance_id FROM instance_users WHERE email = ?) ORDER BY created, id",
                (email, email),
            ).fetchall()
            return [r for r in map(self._record, rows) if r is not None]

    def _verified(
        self, c: sqlite3.Connection, instance_id: str
    ) -> tuple[list[Any], tuple[str, ...]] | None:
        """The instance's columns and allow-list, read in the transaction *c* and checked.

        Read before a change, so a change never authenticates what was altered
        outside the clean room: :class:`StateTampered` if they fail their check.
        None without a key (nothing to keep up to date) or without the instance.
        """
        if self._key is None:
            return None
        row = c.execute(
            f"SELECT {self._COLUMNS}, mac FROM instances WHERE id = ?",  # noqa: S608
            (instance_id,),
        ).fetchone()
        if row is None:
            return None
        users = self._users(c, instance_id)
        if not self._intact("instances", (*row[:-1], tuple(sorted(users))), row[-1]):
            _refused("instances", f"instance {instance_id}")
            raise _tampered(instance_id)
        return list(row[:-1]), users

    def _reseal(
        self, c: sqlite3.Connection, columns: Sequence[object], users: Iterable[str]
    ) -> None:
        c.execute(
            "UPDATE instances SET mac = ? WHERE id = ?",
            (self._instance_mac(columns, users), columns[0]),
        )

    def delete_instance(self, instance_id: str) -> None:
        self._changed(instance_id)
        with self.transaction() as c:
            c.execute("DELETE FROM instances WHERE id = ?", (instance_id,))
        self._changed(instance_id)

    def grant(self, instance_id: str, email: str) -> None:
        self._changed(instance_id)
        with self.transaction() as c:
            state = self._verified(c, instance_id)
            c.execute(
                "INSERT OR IGNORE INTO instance_users (instance_id, email) VALUES (?, ?)",
                (instance_id, email),
            )
            if state is not None:
                columns, users = state
                self._reseal(c, columns, {*users, email})
        self._changed(instance_id)

    def revoke(self, instance_id: str, email: str) -> None:
        self._changed(instance_id)
        with self.transaction() as c:
            state = self._verified(c, instance_id)
            c.execute(
                "DELETE FROM instance_users WHERE instance_id = ? AND email = ?",
                (instance_id, email),
            )
            c.execute(
                "DELETE FROM party_keys WHERE instance_id = ? AND email = ?", (instance_id, email)
            )
            if state is not None:
                columns, users = state
                self._reseal(c, columns, set(users) - {email})
        self._changed(instance_id)

    def set_model(
        self, instance_id: str, digest: str, size: int, signature: dict[str, Any]
    ) -> None:
        signature_json = json.dumps(signature)
        self._changed(instance_id)
        with self.transaction() as c:
            state = self._verified(c, instance_id)
            c.execute(
                "UPDATE instances SET model_digest = ?, model_size = ?, model_signature = ? "
                "WHERE id = ?",
                (digest, size, signature_json, instance_id),
            )
            if state is not None:
                columns, users = state
                columns[self._MODEL] = [digest, size, signature_json]
                self._reseal(c, columns, users)
        self._changed(instance_id)

    def set_options(self, instance_id: str, options: dict[str, Any]) -> None:
        options_json = json.dumps(options)
        self._changed(instance_id)
        with self.transaction() as c:
            state = self._verified(c, instance_id)
            c.execute("UPDATE instances SET options = ? WHERE id = ?", (options_json, instance_id))
            if state is not None:
                columns, users = state
                columns[self._OPTIONS] = options_json
                self._reseal(c, columns, users)
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
        transaction. A binding that fails its integrity check counts as another
        party's: the key id is then nobody's to register.
        """
        key_id, public_key = bytes(key_id), bytes(public_key)
        created = int(time.time())
        with self.transaction() as c:
            row = c.execute(
                "SELECT instance_id, key_id, email, mac FROM party_key_bindings "
                "WHERE instance_id = ? AND key_id = ?",
                (instance_id, key_id),
            ).fetchone()
            if row is not None:
                if not self._intact("party_key_bindings", row[:3], row[3]):
                    _refused("party_key_bindings", f"instance {instance_id}")
                    raise _key_taken()
                if str(row[2]) != email:
                    raise _key_taken()
            c.execute(
                "INSERT OR IGNORE INTO party_key_bindings (instance_id, key_id, email, mac) "
                "VALUES (?, ?, ?, ?)",
                (
                    instance_id,
                    key_id,
                    email,
                    self._mac("party_key_bindings", (instance_id, key_id, email)),
                ),
            )
            c.execute(
                "INSERT OR REPLACE INTO party_keys "
                "(instance_id, email, key_id, public_key, created, mac) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    instance_id,
                    email,
                    key_id,
                    public_key,
                    created,
                    self._mac("party_keys", (instance_id, email, key_id, public_key, created)),
                ),
            )
            self._party_keys.pop(instance_id, None)

    def party_key(self, instance_id: str, key_id: bytes) -> tuple[str, bytes] | None:
        """The (email, public key) registered under *key_id* on the instance, if any.

        A row that fails its integrity check is not registered.
        """
        with self._lock:
            cached = self._party_keys.get(instance_id, {}).get(key_id)
            if cached is not None:
                return cached
            row = self._conn.execute(
                "SELECT instance_id, email, key_id, public_key, created, mac FROM party_keys "
                "WHERE instance_id = ? AND key_id = ?",
                (instance_id, key_id),
            ).fetchone()
            if row is None:
                return None
            if not self._intact("party_keys", row[:5], row[5]):
                _refused("party_keys", f"instance {instance_id}")
                return None
            found = (str(row[1]), bytes(row[3]))
            self._party_keys.setdefault(instance_id, {})[bytes(key_id)] = found
            return found
