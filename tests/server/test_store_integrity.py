"""Rows the host edits in the store are refused, not used.

The SQLite database is in the host's data directory. With an integrity key,
every row of ``users``, ``sessions``, ``instances``, ``party_keys`` and
``party_key_bindings`` carries an HMAC-SHA256 over its table's name and all of
its columns (an instance's also over its allow-list). Each case below writes
through the store, edits the file with a connection of its own (as the host
would), and checks that a store opened with the same key refuses what was
edited: an account does not sign in, a session or key does not exist, a key id
is nobody's to register, an instance is :class:`StateTampered`.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from tests.server.fast_setup import fast_hasher

from cleanroom.attestation import Evidence
from cleanroom.crypto.keys import KeyPair
from cleanroom.errors import Conflict, StateTampered
from cleanroom.server.runner import ServerThread
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings
from cleanroom.server.store import Store
from cleanroom.server.tee import Tee

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
OWNER = "alice@lender.example"
BOB = "bob@bank.example"
EVE = "eve@host.example"
INSTANCE = "a" * 24
OTHER_INSTANCE = "b" * 24
PASSWORD = "correct horse battery staple"
HOST_PASSWORD = "the host knows this one"
BOB_SESSION = hashlib.sha256(b"bob's token").digest()
HOST_SESSION = hashlib.sha256(b"the host's token").digest()
FAR_FUTURE = 2**40
MAC_TABLES = ("users", "sessions", "instances", "party_keys", "party_key_bindings")


@dataclass(frozen=True)
class Written:
    """A store with one of every row, written through the API, then closed."""

    path: Path
    bob_key: KeyPair
    other_key: KeyPair  # bob's key on OTHER_INSTANCE
    host_key: KeyPair


def _hash(password: str) -> str:
    return fast_hasher().hash(password)


@pytest.fixture(scope="module")
def host_hash() -> str:
    return _hash(HOST_PASSWORD)


@pytest.fixture
def written(tmp_path: Path) -> Written:
    path = tmp_path / "db.sqlite3"
    bob_key, other_key = KeyPair(), KeyPair()
    store = Store(path, integrity_key=KEY)
    store.add_user(OWNER, "$argon2id$alice")
    store.add_user(BOB, "$argon2id$bob")
    store.add_session(BOB_SESSION, BOB, FAR_FUTURE)
    store.create_instance(INSTANCE, "scoring", OWNER, "onnx", [BOB], {"policy": "p"})
    store.set_model(INSTANCE, "sha256:" + "0" * 64, 123, {"inputs": []})
    store.create_instance(OTHER_INSTANCE, "other", OWNER, "onnx", [BOB, EVE], {})
    store.add_party_key(INSTANCE, BOB, bob_key.public.key_id, bob_key.public.raw)
    store.add_party_key(OTHER_INSTANCE, BOB, other_key.public.key_id, other_key.public.raw)
    store.close()
    return Written(path, bob_key, other_key, KeyPair())


@pytest.fixture
def host(written: Written) -> Iterator[sqlite3.Connection]:
    """The host's own connection to the database file."""
    conn = sqlite3.connect(written.path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def reopened(written: Written) -> Iterator[Store]:
    store = Store(written.path, integrity_key=KEY)
    try:
        yield store
    finally:
        store.close()


# A mutation edits the file; its check runs against a store reopened with KEY.
Mutation = Callable[[sqlite3.Connection, Written, str], None]
Check = Callable[[Store, Written], None]


def _sql(statement: str, *params: Any) -> Mutation:
    def mutate(conn: sqlite3.Connection, _: Written, __: str) -> None:
        conn.execute(statement, params)

    return mutate


def _password_refused(email: str) -> Check:
    def check(store: Store, _: Written) -> None:
        assert store.password_hash(email) is None

    return check


def _session_refused(digest: bytes) -> Check:
    def check(store: Store, _: Written) -> None:
        assert store.session(digest) is None

    return check


def _key_not_registered(instance_id: str, which: str) -> Check:
    def check(store: Store, written: Written) -> None:
        key: KeyPair = getattr(written, which)
        assert store.party_key(instance_id, key.public.key_id) is None

    return check


def _key_nobodys(instance_id: str, which: str) -> Check:
    """Nobody may register the key id: a binding that fails counts as someone else's."""

    def check(store: Store, written: Written) -> None:
        key: KeyPair = getattr(written, which)
        before = store.party_key(instance_id, key.public.key_id)
        for email in (BOB, EVE, OWNER):
            with pytest.raises(Conflict, match="another party"):
                store.add_party_key(instance_id, email, key.public.key_id, key.public.raw)
        assert store.party_key(instance_id, key.public.key_id) == before

    return check


def _instance_refused(instance_id: str) -> Check:
    def check(store: Store, _: Written) -> None:
        with pytest.raises(StateTampered) as refused:
            store.instance(instance_id)
        assert refused.value.status == 500
        assert refused.value.code == "state-tampered"
        assert f"instance {instance_id} failed its integrity check" in refused.value.message
        assert instance_id not in [r.id for r in store.instances()]
        for email in (OWNER, BOB, EVE):
            assert instance_id not in [r.id for r in store.instances_visible_to(email)]

    return check


def _host_password(conn: sqlite3.Connection, _: Written, host_hash: str) -> None:
    conn.execute("UPDATE users SET password_hash = ? WHERE email = ?", (host_hash, OWNER))


def _host_account(conn: sqlite3.Connection, _: Written, host_hash: str) -> None:
    conn.execute(
        "INSERT INTO users (email, password_hash, created, mac) "
        "SELECT ?, ?, created, mac FROM users WHERE email = ?",
        (EVE, host_hash, BOB),
    )


def _host_key(conn: sqlite3.Connection, written: Written, _: str) -> None:
    """The host's public key in bob's key row (its key id too), MAC kept."""
    public = written.host_key.public
    conn.execute(
        "UPDATE party_keys SET key_id = ?, public_key = ? WHERE instance_id = ? AND email = ?",
        (public.key_id, public.raw, INSTANCE, BOB),
    )


def _host_key_added(conn: sqlite3.Connection, written: Written, _: str) -> None:
    """A new key row for the host's key, with bob's row's MAC, and a binding for it."""
    public = written.host_key.public
    conn.execute(
        "INSERT INTO party_keys (instance_id, email, key_id, public_key, created, mac) "
        "SELECT instance_id, email, ?, ?, created, mac FROM party_keys WHERE instance_id = ?",
        (public.key_id, public.raw, INSTANCE),
    )
    conn.execute(
        "INSERT INTO party_key_bindings (instance_id, key_id, email, mac) "
        "SELECT instance_id, ?, email, mac FROM party_key_bindings WHERE instance_id = ?",
        (public.key_id, INSTANCE),
    )


def _host_binding(conn: sqlite3.Connection, written: Written, _: str) -> None:
    """The host binds a key id to itself before anyone registers it."""
    conn.execute(
        "INSERT INTO party_key_bindings (instance_id, key_id, email) VALUES (?, ?, ?)",
        (INSTANCE, written.host_key.public.key_id, EVE),
    )


def _binding_given_to_eve(conn: sqlite3.Connection, written: Written, _: str) -> None:
    conn.execute(
        "UPDATE party_key_bindings SET email = ? WHERE instance_id = ? AND key_id = ?",
        (EVE, INSTANCE, written.bob_key.public.key_id),
    )
    conn.execute("DELETE FROM party_keys WHERE instance_id = ?", (INSTANCE,))


def _key_moved(conn: sqlite3.Connection, written: Written, _: str) -> None:
    """Bob's key row (and its binding) moved from INSTANCE to OTHER_INSTANCE."""
    key_id = written.bob_key.public.key_id
    for table in ("party_keys", "party_key_bindings"):
        conn.execute(
            f"UPDATE {table} SET instance_id = ? WHERE instance_id = ? AND key_id = ?",
            (OTHER_INSTANCE, INSTANCE, key_id),
        )


def _mac_copied(table: str, key_column: str, source: Any, target: Any) -> Mutation:
    return _sql(
        f"UPDATE {table} SET mac = (SELECT mac FROM {table} WHERE {key_column} = ?) "
        f"WHERE {key_column} = ?",
        source,
        target,
    )


CASES: list[tuple[str, Mutation, Check]] = [
    # accounts
    ("users: the host's password hash", _host_password, _password_refused(OWNER)),
    ("users: an account of the host's, with a copied MAC", _host_account, _password_refused(EVE)),
    (
        "users: bob's hash and MAC copied onto alice's row",
        _sql(
            "UPDATE users SET (password_hash, mac) = "
            "(SELECT password_hash, mac FROM users WHERE email = ?) WHERE email = ?",
            BOB,
            OWNER,
        ),
        _password_refused(OWNER),
    ),
    ("users: MAC set NULL", _sql("UPDATE users SET mac = NULL"), _password_refused(BOB)),
    # sessions
    (
        "sessions: a session with the host's digest",
        _sql(
            "INSERT INTO sessions (token_digest, email, expires) VALUES (?, ?, ?)",
            HOST_SESSION,
            OWNER,
            FAR_FUTURE,
        ),
        _session_refused(HOST_SESSION),
    ),
    (
        "sessions: the host's digest with bob's session's MAC",
        _sql(
            "INSERT INTO sessions (token_digest, email, expires, mac) "
            "SELECT ?, email, expires, mac FROM sessions",
            HOST_SESSION,
        ),
        _session_refused(HOST_SESSION),
    ),
    (
        "sessions: bob's session moved to alice",
        _sql("UPDATE sessions SET email = ?", OWNER),
        _session_refused(BOB_SESSION),
    ),
    (
        "sessions: bob's session extended",
        _sql("UPDATE sessions SET expires = expires + 1"),
        _session_refused(BOB_SESSION),
    ),
    (
        "sessions: MAC set NULL",
        _sql("UPDATE sessions SET mac = NULL"),
        _session_refused(BOB_SESSION),
    ),
    # party keys and bindings
    (
        "party_keys: the host's public key under bob's key id",
        _sql("UPDATE party_keys SET public_key = ? WHERE instance_id = ?", b"\x04" * 65, INSTANCE),
        _key_not_registered(INSTANCE, "bob_key"),
    ),
    (
        "party_keys: the host's key in bob's row",
        _host_key,
        _key_not_registered(INSTANCE, "host_key"),
    ),
    (
        "party_keys: a new row and binding for the host's key, with bob's MACs",
        _host_key_added,
        _key_not_registered(INSTANCE, "host_key"),
    ),
    (
        "party_keys: bob's key given to eve",
        _sql("UPDATE party_keys SET email = ? WHERE instance_id = ?", EVE, INSTANCE),
        _key_not_registered(INSTANCE, "bob_key"),
    ),
    (
        "party_keys: bob's key moved to another instance",
        _key_moved,
        _key_not_registered(OTHER_INSTANCE, "bob_key"),
    ),
    (
        "party_keys: MAC set NULL",
        _sql("UPDATE party_keys SET mac = NULL"),
        _key_not_registered(INSTANCE, "bob_key"),
    ),
    (
        "party_key_bindings: a binding of the host's, before anyone registered the key",
        _host_binding,
        _key_nobodys(INSTANCE, "host_key"),
    ),
    (
        "party_key_bindings: the host's key bound with bob's binding's MAC",
        _host_key_added,
        _key_nobodys(INSTANCE, "host_key"),
    ),
    (
        "party_key_bindings: bob's binding given to eve",
        _binding_given_to_eve,
        _key_nobodys(INSTANCE, "bob_key"),
    ),
    (
        "party_key_bindings: bob's binding moved to another instance",
        _key_moved,
        _key_nobodys(OTHER_INSTANCE, "bob_key"),
    ),
    (
        "party_key_bindings: MAC set NULL",
        _sql("UPDATE party_key_bindings SET mac = NULL"),
        _key_nobodys(INSTANCE, "bob_key"),
    ),
    # instances and their allow-lists
    (
        "instance_users: the host added to the allow-list",
        _sql("INSERT INTO instance_users (instance_id, email) VALUES (?, ?)", INSTANCE, EVE),
        _instance_refused(INSTANCE),
    ),
    (
        "instance_users: bob dropped from the allow-list",
        _sql("DELETE FROM instance_users WHERE instance_id = ?", INSTANCE),
        _instance_refused(INSTANCE),
    ),
    (
        "instances: another owner",
        _sql("UPDATE instances SET owner = ? WHERE id = ?", EVE, INSTANCE),
        _instance_refused(INSTANCE),
    ),
    (
        "instances: other options (policy, limits, upstreams, audit spec)",
        _sql("UPDATE instances SET options = ? WHERE id = ?", '{"policy": "allow"}', INSTANCE),
        _instance_refused(INSTANCE),
    ),
    (
        "instances: another model digest",
        _sql("UPDATE instances SET model_digest = ? WHERE id = ?", "sha256:" + "1" * 64, INSTANCE),
        _instance_refused(INSTANCE),
    ),
    (
        "instances: a MAC copied from another instance",
        _mac_copied("instances", "id", OTHER_INSTANCE, INSTANCE),
        _instance_refused(INSTANCE),
    ),
    (
        "instances: the row moved to another id",
        _sql("UPDATE instances SET id = ? WHERE id = ?", "c" * 24, INSTANCE),
        _instance_refused("c" * 24),
    ),
    (
        "instances: the signature of another model",
        _sql("UPDATE instances SET model_signature = '{}' WHERE id = ?", INSTANCE),
        _instance_refused(INSTANCE),
    ),
    (
        "instances: MAC set NULL",
        _sql("UPDATE instances SET mac = NULL WHERE id = ?", INSTANCE),
        _instance_refused(INSTANCE),
    ),
]


@pytest.mark.parametrize(
    ("mutation", "check"), [pytest.param(m, c, id=name) for name, m, c in CASES]
)
def test_rows_edited_outside_the_store_are_refused(
    written: Written,
    host: sqlite3.Connection,
    host_hash: str,
    mutation: Mutation,
    check: Check,
) -> None:
    mutation(host, written, host_hash)
    store = Store(written.path, integrity_key=KEY)
    try:
        check(store, written)
    finally:
        store.close()


def test_a_refused_account_is_logged_by_table_and_email_only(
    written: Written, host: sqlite3.Connection, host_hash: str, caplog: pytest.LogCaptureFixture
) -> None:
    _host_password(host, written, host_hash)
    store = Store(written.path, integrity_key=KEY)
    with caplog.at_level(logging.WARNING, logger="cleanroom.server"):
        assert store.password_hash(OWNER) is None
    store.close()
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = record.getMessage()
    assert "users" in text
    assert OWNER in text
    assert "integrity check" in text
    assert host_hash not in text
    assert "argon2" not in text


def test_instances_lists_leave_out_a_refused_instance_and_log_it(
    written: Written, host: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    host.execute("UPDATE instances SET owner = ? WHERE id = ?", (EVE, INSTANCE))
    store = Store(written.path, integrity_key=KEY)
    with caplog.at_level(logging.WARNING, logger="cleanroom.server"):
        assert [r.id for r in store.instances()] == [OTHER_INSTANCE]
        assert [r.id for r in store.instances_visible_to(EVE)] == [OTHER_INSTANCE]
    store.close()
    assert any(f"instance {INSTANCE}" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: s.grant(INSTANCE, EVE), id="grant"),
        pytest.param(lambda s: s.revoke(INSTANCE, BOB), id="revoke"),
        pytest.param(lambda s: s.set_options(INSTANCE, {}), id="set_options"),
        pytest.param(lambda s: s.set_model(INSTANCE, "sha256:" + "2" * 64, 1, {}), id="set_model"),
    ],
)
def test_a_change_never_authenticates_what_the_host_edited(
    written: Written, host: sqlite3.Connection, change: Callable[[Store], None]
) -> None:
    host.execute("UPDATE instances SET owner = ? WHERE id = ?", (EVE, INSTANCE))
    store = Store(written.path, integrity_key=KEY)
    try:
        with pytest.raises(StateTampered):
            change(store)
        with pytest.raises(StateTampered):
            store.instance(INSTANCE)
        assert store.connection.execute(
            "SELECT email FROM instance_users WHERE instance_id = ? ORDER BY email", (INSTANCE,)
        ).fetchall() == [(BOB,)]  # the change was rolled back
    finally:
        store.close()


def test_set_password_hash_leaves_a_refused_account_refused(
    written: Written, host: sqlite3.Connection, host_hash: str
) -> None:
    _host_password(host, written, host_hash)
    store = Store(written.path, integrity_key=KEY)
    try:
        store.set_password_hash(OWNER, "$argon2id$new")
        assert store.password_hash(OWNER) is None
    finally:
        store.close()


# positive ---------------------------------------------------------------------


def _everything_reads(store: Store, written: Written) -> None:
    assert store.password_hash(OWNER) == "$argon2id$alice"
    assert store.password_hash(BOB) == "$argon2id$bob"
    assert store.session(BOB_SESSION) == (BOB, FAR_FUTURE)
    record = store.instance(INSTANCE)
    assert (record.owner, record.users, record.options) == (OWNER, (BOB,), {"policy": "p"})
    assert (record.model_digest, record.model_size) == ("sha256:" + "0" * 64, 123)
    assert record.model_signature == {"inputs": []}
    assert store.instance(OTHER_INSTANCE).users == (BOB, EVE)
    assert [r.id for r in store.instances()] == [INSTANCE, OTHER_INSTANCE]
    assert [r.id for r in store.instances_visible_to(BOB)] == [INSTANCE, OTHER_INSTANCE]
    assert [r.id for r in store.instances_visible_to(EVE)] == [OTHER_INSTANCE]
    bob = written.bob_key.public
    assert store.party_key(INSTANCE, bob.key_id) == (BOB, bob.raw)
    other = written.other_key.public
    assert store.party_key(OTHER_INSTANCE, other.key_id) == (BOB, other.raw)
    store.add_party_key(INSTANCE, BOB, bob.key_id, bob.raw)  # bob's binding still verifies


def test_a_store_reopened_with_the_same_key_reads_everything(
    reopened: Store, written: Written
) -> None:
    _everything_reads(reopened, written)


def test_every_row_carries_a_mac(written: Written, host: sqlite3.Connection) -> None:
    for table in MAC_TABLES:
        macs = [row[0] for row in host.execute(f"SELECT mac FROM {table}")]
        assert macs
        assert all(isinstance(mac, bytes) and len(mac) == 32 for mac in macs)
    assert len({row[0] for row in host.execute("SELECT mac FROM users")}) == 2


def test_round_trips_and_changes_keep_rows_readable(written: Written) -> None:
    store = Store(written.path, integrity_key=KEY)
    store.set_password_hash(OWNER, "$argon2id$alice-rehashed")
    store.add_session(HOST_SESSION, OWNER, FAR_FUTURE - 1)
    store.set_options(INSTANCE, {"policy": "q", "limits": {"workers": 1}})
    store.set_model(INSTANCE, "sha256:" + "3" * 64, 456, {"outputs": []})
    eve = KeyPair().public
    store.add_party_key(OTHER_INSTANCE, EVE, eve.key_id, eve.raw)
    store.close()
    for key in (KEY, KEY):  # twice: the second open reads what the first left
        store = Store(written.path, integrity_key=key)
        assert store.password_hash(OWNER) == "$argon2id$alice-rehashed"
        assert store.session(HOST_SESSION) == (OWNER, FAR_FUTURE - 1)
        record = store.instance(INSTANCE)
        assert record.options == {"policy": "q", "limits": {"workers": 1}}
        assert (record.model_digest, record.model_size) == ("sha256:" + "3" * 64, 456)
        assert store.party_key(OTHER_INSTANCE, eve.key_id) == (EVE, eve.raw)
        store.close()


def test_grant_and_revoke_keep_the_instance_readable(written: Written) -> None:
    store = Store(written.path, integrity_key=KEY)
    store.grant(INSTANCE, EVE)
    assert store.instance(INSTANCE).users == (BOB, EVE)
    store.grant(INSTANCE, EVE)  # again: no change
    store.revoke(INSTANCE, BOB)
    assert store.instance(INSTANCE).users == (EVE,)
    assert store.party_key(INSTANCE, written.bob_key.public.key_id) is None
    store.close()
    reopened = Store(written.path, integrity_key=KEY)
    try:
        assert reopened.instance(INSTANCE).users == (EVE,)
        assert [r.id for r in reopened.instances_visible_to(EVE)] == [INSTANCE, OTHER_INSTANCE]
        assert [r.id for r in reopened.instances_visible_to(BOB)] == [OTHER_INSTANCE]
        reopened.grant(INSTANCE, BOB)
        assert reopened.instance(INSTANCE).users == (BOB, EVE)
        bob = written.bob_key.public
        reopened.add_party_key(INSTANCE, BOB, bob.key_id, bob.raw)  # his binding was kept
        assert reopened.party_key(INSTANCE, bob.key_id) == (BOB, bob.raw)
    finally:
        reopened.close()


def test_a_store_opened_with_another_key_refuses_everything(written: Written) -> None:
    store = Store(written.path, integrity_key=OTHER_KEY)
    try:
        assert store.password_hash(OWNER) is None
        assert store.password_hash(BOB) is None
        assert store.session(BOB_SESSION) is None
        for instance_id in (INSTANCE, OTHER_INSTANCE):
            with pytest.raises(StateTampered):
                store.instance(instance_id)
        assert store.instances() == []
        assert store.instances_visible_to(BOB) == []
        bob = written.bob_key.public
        assert store.party_key(INSTANCE, bob.key_id) is None
        with pytest.raises(Conflict):
            store.add_party_key(INSTANCE, BOB, bob.key_id, bob.raw)
    finally:
        store.close()


def test_without_a_key_no_macs_are_written_or_checked(tmp_path: Path, written: Written) -> None:
    # A keyless store reads what a keyed one wrote, and writes no MACs itself.
    plain = Store(written.path)
    _everything_reads(plain, written)
    plain.connection.execute("UPDATE instances SET owner = ? WHERE id = ?", (EVE, INSTANCE))
    plain.connection.execute("UPDATE users SET mac = NULL")
    plain._changed(INSTANCE)  # drop the cached record
    assert plain.instance(INSTANCE).owner == EVE
    assert plain.password_hash(BOB) == "$argon2id$bob"
    plain.close()

    path = tmp_path / "plain.sqlite3"
    plain = Store(path)
    plain.add_user(OWNER, "$argon2id$alice")
    plain.add_session(BOB_SESSION, OWNER, FAR_FUTURE)
    plain.create_instance(INSTANCE, "scoring", OWNER, "onnx", [BOB], {})
    plain.grant(INSTANCE, EVE)
    plain.set_options(INSTANCE, {"policy": "p"})
    plain.add_party_key(INSTANCE, BOB, b"k" * 8, b"p" * 32)
    for table in MAC_TABLES:
        macs = plain.connection.execute(f"SELECT mac FROM {table}").fetchall()
        assert macs
        assert macs == [(None,)] * len(macs)
    plain.connection.execute(
        "INSERT INTO instance_users (instance_id, email) VALUES (?, ?)", (INSTANCE, "x@y.z")
    )
    plain._changed(INSTANCE)
    assert plain.instance(INSTANCE).users == (BOB, EVE, "x@y.z")
    plain.close()
    # Rows written without a key are refused by a store with one.
    keyed = Store(path, integrity_key=KEY)
    try:
        assert keyed.password_hash(OWNER) is None
        assert keyed.session(BOB_SESSION) is None
        with pytest.raises(StateTampered):
            keyed.instance(INSTANCE)
        assert keyed.party_key(INSTANCE, b"k" * 8) is None
    finally:
        keyed.close()


def test_a_database_made_before_macs_gets_the_column_and_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(
        """
        CREATE TABLE users (email TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
            created INTEGER NOT NULL);
        CREATE TABLE sessions (token_digest BLOB PRIMARY KEY, email TEXT NOT NULL,
            expires INTEGER NOT NULL);
        CREATE TABLE instances (id TEXT PRIMARY KEY, name TEXT NOT NULL, owner TEXT NOT NULL,
            format TEXT NOT NULL, created INTEGER NOT NULL, model_digest TEXT,
            model_size INTEGER, model_signature TEXT, options TEXT NOT NULL DEFAULT '{}');
        CREATE TABLE instance_users (instance_id TEXT NOT NULL, email TEXT NOT NULL,
            PRIMARY KEY (instance_id, email));
        CREATE TABLE party_keys (instance_id TEXT NOT NULL, email TEXT NOT NULL,
            key_id BLOB NOT NULL, public_key BLOB NOT NULL, created INTEGER NOT NULL,
            PRIMARY KEY (instance_id, key_id));
        """
    )
    old.execute("INSERT INTO users VALUES (?, ?, 1)", (OWNER, "$argon2id$alice"))
    old.execute("INSERT INTO sessions VALUES (?, ?, ?)", (BOB_SESSION, OWNER, FAR_FUTURE))
    old.execute(
        "INSERT INTO instances (id, name, owner, format, created) VALUES (?, 'n', ?, 'onnx', 1)",
        (INSTANCE, OWNER),
    )
    old.execute("INSERT INTO party_keys VALUES (?, ?, ?, ?, 1)", (INSTANCE, BOB, b"k", b"p"))
    old.close()

    keyed = Store(path, integrity_key=KEY)
    try:
        for table in MAC_TABLES:
            columns = [r[1] for r in keyed.connection.execute(f"PRAGMA table_info({table})")]
            assert "mac" in columns
        assert keyed.password_hash(OWNER) is None
        assert keyed.session(BOB_SESSION) is None
        with pytest.raises(StateTampered):
            keyed.instance(INSTANCE)
        assert keyed.party_key(INSTANCE, b"k") is None
        with pytest.raises(Conflict):  # the migrated binding has no MAC
            keyed.add_party_key(INSTANCE, BOB, b"k", b"p")
        # New rows are written with MACs and read back.
        keyed.add_user(BOB, "$argon2id$bob")
        assert keyed.password_hash(BOB) == "$argon2id$bob"
    finally:
        keyed.close()
    plain = Store(path)  # and without a key, as before
    try:
        assert plain.password_hash(OWNER) == "$argon2id$alice"
        assert plain.instance(INSTANCE).owner == OWNER
        assert plain.party_key(INSTANCE, b"k") == (BOB, b"p")
    finally:
        plain.close()


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Store(tmp_path / "db.sqlite3", integrity_key=b"short")


# the service ------------------------------------------------------------------


def _sign_in(url: str, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/sessions", json={"email": email, "password": password})


def test_the_service_refuses_what_the_host_edited(tmp_path: Path, host_hash: str) -> None:
    settings = ServerSettings(data_dir=tmp_path)
    service = CleanRoomService(settings)
    try:
        assert service.tee.store_integrity_key is not None
        for email in (OWNER, BOB):
            service.accounts.sign_up(email, PASSWORD)
        tampered = service.create_instance(OWNER, "tampered", "onnx", [BOB]).id
        intact = service.create_instance(OWNER, "intact", "onnx", [BOB]).id
    finally:
        service.close()

    host = sqlite3.connect(settings.db_path, isolation_level=None)
    try:
        host.execute("UPDATE users SET password_hash = ? WHERE email = ?", (host_hash, OWNER))
        host.execute(
            "INSERT INTO sessions (token_digest, email, expires) VALUES (?, ?, ?)",
            (hashlib.sha256(b"the host's token").digest(), BOB, FAR_FUTURE),
        )
        host.execute(
            "INSERT INTO instance_users (instance_id, email) VALUES (?, ?)", (tampered, EVE)
        )
    finally:
        host.close()

    with ServerThread(settings) as server:
        url = server.url
        for password in (HOST_PASSWORD, PASSWORD):  # the row is refused, whichever password
            refused = _sign_in(url, OWNER, password)
            assert refused.status_code == 401
            assert refused.json()["code"] == "authentication-failed"
        forged = httpx.get(
            f"{url}/v1/instances", headers={"authorization": "Bearer the host's token"}
        )
        assert forged.status_code == 401

        signed_in = _sign_in(url, BOB, PASSWORD)
        assert signed_in.status_code == 201
        headers = {"authorization": f"Bearer {signed_in.json()['token']}"}
        answer = httpx.get(f"{url}/v1/instances/{tampered}", headers=headers)
        assert answer.status_code == 500
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["code"] == "state-tampered"
        assert problem["status"] == 500
        assert f"instance {tampered} failed its integrity check" in problem["detail"]
        assert httpx.get(f"{url}/v1/instances/{intact}", headers=headers).status_code == 200
        listed = httpx.get(f"{url}/v1/instances", headers=headers).json()["instances"]
        assert [i["id"] for i in listed] == [intact]
        with pytest.raises(StateTampered):
            server.service.visible_instance(BOB, tampered)
        assert server.service.visible_instance(BOB, intact).id == intact


def test_the_store_key_is_derived_from_the_sealing_key(tmp_path: Path) -> None:
    tee = Tee("simulated", tmp_path)
    assert tee.sealing_key is not None
    expected = HKDF(hashes.SHA256(), 32, salt=b"", info=b"cleanroom/v1 store integrity key").derive(
        tee.sealing_key
    )
    assert tee.store_integrity_key == expected
    assert expected != tee.sealing_key
    assert Tee("simulated", tmp_path).store_integrity_key == expected  # same code, same key


class _NoKeyProvider:
    """A TEE whose firmware derives no key (TDX without a key broker)."""

    platform = "tdx"
    simulated = False

    def evidence(self, report_data: bytes) -> Evidence:  # pragma: no cover - not asked
        raise AssertionError("no evidence is needed here")


def test_without_a_sealing_key_the_service_warns_and_keeps_no_macs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tee = Tee("tdx", tmp_path, provider=_NoKeyProvider())
    assert tee.store_integrity_key is None
    with caplog.at_level(logging.WARNING, logger="cleanroom.server"):
        service = CleanRoomService(ServerSettings(data_dir=tmp_path, tee="tdx"), tee=tee)
    try:
        warnings = [
            r.getMessage() for r in caplog.records if "integrity-protected" in r.getMessage()
        ]
        assert len(warnings) == 1
        assert "accounts, sessions" in warnings[0]
        service.accounts.sign_up(OWNER, PASSWORD)
        assert service.accounts.sign_in(OWNER, PASSWORD).email == OWNER
        rows = service.store.connection.execute("SELECT mac FROM users").fetchall()
        assert rows == [(None,)]
    finally:
        service.close()
