"""DecisionLog: append-only, hash-chained, signed; survives restarts; refuses tampering."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from tests.policy.documents import entry_args

from cleanroom.errors import (
    ConfigurationError,
    InvalidRequest,
    LogIntegrityError,
    ServiceUnavailable,
)
from cleanroom.policy import (
    Decision,
    DecisionLog,
    content_digest,
    key_id,
    verify_checkpoint,
    verify_log,
    verify_receipt,
)
from cleanroom.policy.decision_log import ContentHasher
from cleanroom.policy.records import GENESIS_HASH

D = content_digest(b"x")
Fill = Callable[[DecisionLog, int], None]


def test_entries_are_numbered_chained_and_timed(filled_log: DecisionLog) -> None:
    entries = verify_log(filled_log.export(), filled_log.public_key).entries
    assert [e.seq for e in entries] == list(range(9))
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.leaf_hash().hex()
        assert after.time > before.time
    assert entries[0].time == "2026-01-31T12:00:01.000Z"
    assert [e.decision for e in entries[:3]] == ["allow", "allow", "deny"]
    assert entries[2].reason == "query budget exhausted"
    assert entries[2].response_digest is None


def test_append_takes_the_reason_from_a_decision(conn: sqlite3.Connection, log_key: Any) -> None:
    log = DecisionLog(conn, log_key)
    entry = log.append(
        "i", "predict", "p", Decision(False, "over budget", 0.1), None, D, None, D, None
    )
    assert entry.decision == "deny"
    assert entry.reason == "over budget"
    assert entry.model_digest is None


def test_checkpoint_is_signed_and_reused_until_the_log_grows(
    filled_log: DecisionLog, fill: Fill
) -> None:
    first = filled_log.checkpoint()
    verify_checkpoint(first, filled_log.public_key)
    assert first.tree_size == 9
    assert first.log_id == key_id(filled_log.public_key)
    assert filled_log.checkpoint() is first
    fill(filled_log, 1)
    second = filled_log.checkpoint()
    assert second.tree_size == 10
    assert second.root_hash != first.root_hash


def test_every_receipt_verifies_offline(filled_log: DecisionLog) -> None:
    for seq in range(filled_log.size):
        receipt = json.dumps(filled_log.receipt(seq).to_json())
        entry = verify_receipt(receipt, filled_log.public_key)
        assert entry == filled_log.entry(seq)


def test_an_old_receipt_still_verifies_after_the_log_grows(
    filled_log: DecisionLog, fill: Fill
) -> None:
    receipt = filled_log.receipt(3).to_json()
    fill(filled_log, 20)
    assert verify_receipt(receipt, filled_log.public_key).seq == 3
    assert verify_receipt(filled_log.receipt(3).to_json(), filled_log.public_key).seq == 3


def test_the_receipt_of_a_fresh_entry_is_built_from_it(filled_log: DecisionLog) -> None:
    entry = filled_log.append("inst-0", "predict", "a@example.com", True, None, D, D, D, D)
    receipt = filled_log.receipt_for(entry)
    assert receipt == filled_log.receipt(entry.seq)
    assert verify_receipt(json.dumps(receipt.to_json()), filled_log.public_key) == entry
    assert receipt.checkpoint.tree_size == entry.seq + 1


@pytest.mark.parametrize(
    "change",
    [{"party": "b@example.com"}, {"seq": 3}, {"seq": 10}, {"decision": "deny"}],
    ids=["another party", "another seq", "beyond the log", "another decision"],
)
def test_no_receipt_for_an_entry_the_log_does_not_hold(
    filled_log: DecisionLog, change: dict[str, Any]
) -> None:
    entry = filled_log.append("inst-0", "predict", "a@example.com", True, None, D, D, D, D)
    with pytest.raises(LogIntegrityError, match="does not hold"):
        filled_log.receipt_for(dataclasses.replace(entry, **change))


@pytest.mark.parametrize("seq", [-1, 9, 100])
def test_receipt_for_a_missing_entry_is_refused(filled_log: DecisionLog, seq: int) -> None:
    with pytest.raises(LogIntegrityError, match="no entry"):
        filled_log.receipt(seq)


@pytest.mark.parametrize(
    "make_key",
    [
        ed25519.Ed25519PrivateKey.generate,
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
    ],
    ids=["ed25519", "p256", "p384"],
)
def test_supported_signing_keys(
    conn: sqlite3.Connection, make_key: Callable[[], Any], fill: Fill
) -> None:
    log = DecisionLog(conn, make_key())
    fill(log, 3)
    verify_log(log.export(), log.public_key)
    verify_receipt(log.receipt(1).to_json(), log.public_key)


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP521R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["p521", "rsa"],
)
def test_other_signing_keys_are_refused(
    conn: sqlite3.Connection, make_key: Callable[[], Any]
) -> None:
    with pytest.raises(ConfigurationError):
        DecisionLog(conn, make_key())


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        ("empty instance", {"instance_id": ""}, "instance_id"),
        ("instance not text", {"instance_id": 7}, "instance_id"),
        ("long party", {"party": "p" * 300}, "party"),
        ("empty action", {"action": ""}, "action"),
        ("decision as text", {"decision": "allow"}, "decision"),
        ("reason not text", {"reason": 5}, "reason"),
        ("reason too long", {"reason": "r" * 2000}, "reason"),
        ("policy digest plain hex", {"policy_digest": "ab" * 32}, "policy_digest"),
        ("policy digest missing", {"policy_digest": None}, "policy_digest"),
        ("request digest short", {"request_digest": "sha256:abcd"}, "request_digest"),
        ("model digest upper case", {"model_digest": "sha256:" + "AB" * 32}, "model_digest"),
        ("response digest text", {"response_digest": "none"}, "response_digest"),
    ],
)
def test_append_refuses_bad_arguments(
    filled_log: DecisionLog, name: str, changes: dict[str, Any], message: str
) -> None:
    args = entry_args(**changes)
    with pytest.raises(InvalidRequest, match=message):
        filled_log.append(**args)
    assert filled_log.size == 9


def test_the_log_survives_a_restart(tmp_path: Path, log_key: Any, clock: Any, fill: Fill) -> None:
    path = tmp_path / "log.db"
    first = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key, clock=clock)
    fill(first, 5)
    before = first.checkpoint()
    receipt = first.receipt(2).to_json()

    reopened = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key, clock=clock)
    assert reopened.size == 5
    assert reopened.checkpoint().root_hash == before.root_hash
    fill(reopened, 2)
    result = verify_log(reopened.export(), reopened.public_key)
    assert len(result.entries) == 7
    assert verify_receipt(receipt, log_key.public_key()).seq == 2


def test_a_new_key_after_restart_signs_the_whole_history(
    tmp_path: Path, log_key: Any, other_key: Any, fill: Fill
) -> None:
    path = tmp_path / "log.db"
    old = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)
    fill(old, 4)
    old_receipt = old.receipt(1).to_json()
    new = DecisionLog(sqlite3.connect(path, check_same_thread=False), other_key)
    fill(new, 1)
    assert len(verify_log(new.export(), other_key.public_key()).entries) == 5
    assert verify_receipt(old_receipt, log_key.public_key()).seq == 1
    with pytest.raises(LogIntegrityError, match="bad signature"):
        verify_receipt(old_receipt, other_key.public_key())


def _tamper(path: Path, sql: str, *params: Any) -> None:
    with sqlite3.connect(path) as c:
        c.execute(sql, params)


def _altered_blob(path: Path, row: int, **changes: Any) -> bytes:
    with sqlite3.connect(path) as c:
        (blob,) = c.execute(
            "SELECT entry FROM cleanroom_decision_log WHERE seq = ?", (row,)
        ).fetchone()
    doc = json.loads(blob)
    doc.update(changes)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("name", "tamper", "message"),
    [
        (
            "altered entry",
            lambda p: _tamper(
                p,
                "UPDATE cleanroom_decision_log SET entry = ? WHERE seq = 2",
                _altered_blob(p, 2, decision="allow", reason=None),
            ),
            "altered entry: seq 2",
        ),
        (
            "removed entry",
            lambda p: _tamper(p, "DELETE FROM cleanroom_decision_log WHERE seq = 3"),
            "seq 4, expected 3",
        ),
        (
            "renumbered entry",
            lambda p: _tamper(
                p,
                "UPDATE cleanroom_decision_log SET entry = ? WHERE seq = 1",
                _altered_blob(p, 1, seq=7),
            ),
            "entry 1 was altered",
        ),
        (
            "not JSON",
            lambda p: _tamper(p, "UPDATE cleanroom_decision_log SET entry = x'00ff' WHERE seq = 0"),
            "not JSON",
        ),
        (
            "not canonical",
            lambda p: _tamper(
                p,
                "UPDATE cleanroom_decision_log SET entry = ? WHERE seq = 0",
                json.dumps(json.loads(_altered_blob(p, 0)), indent=1).encode(),
            ),
            "entry 0 was altered",
        ),
    ],
)
def test_a_tampered_store_is_refused_on_restart(
    tmp_path: Path,
    log_key: Any,
    name: str,
    tamper: Callable[[Path], None],
    message: str,
    fill: Fill,
) -> None:
    path = tmp_path / "log.db"
    fill(DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key), 6)
    tamper(path)
    with pytest.raises(LogIntegrityError, match=message):
        DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)


def test_tampering_while_running_is_caught_when_read(
    tmp_path: Path, log_key: Any, fill: Fill
) -> None:
    path = tmp_path / "log.db"
    log = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)
    fill(log, 4)
    _tamper(
        path,
        "UPDATE cleanroom_decision_log SET entry = ? WHERE seq = 1",
        _altered_blob(path, 1, party="someone-else@example.com"),
    )
    with pytest.raises(LogIntegrityError, match="altered"):
        log.receipt(1)
    with pytest.raises(LogIntegrityError, match="altered"):
        log.export()


def test_concurrent_appends_form_one_chain(filled_log: DecisionLog, fill: Fill) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            fill(filled_log, 25)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(verify_log(filled_log.export(), filled_log.public_key).entries) == 109


def test_two_processes_sharing_the_database_keep_one_chain(
    tmp_path: Path, log_key: Any, fill: Fill
) -> None:
    path = tmp_path / "log.db"
    a = DecisionLog(sqlite3.connect(path, check_same_thread=False, timeout=10), log_key)
    b = DecisionLog(sqlite3.connect(path, check_same_thread=False, timeout=10), log_key)
    for _ in range(3):
        fill(a, 2)
        fill(b, 1)
    assert a.checkpoint().root_hash == b.checkpoint().root_hash
    assert len(verify_log(b.export(), log_key.public_key()).entries) == 9


def test_a_broken_database_is_a_service_error(log_key: Any) -> None:
    c = sqlite3.connect(":memory:", check_same_thread=False)
    log = DecisionLog(c, log_key)
    c.close()
    with pytest.raises(ServiceUnavailable):
        log.append("i", "predict", "p", True, None, D, D, D, D)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"party": "bank-a@example.com"}, [0, 3, 6]),
        ({"instance_id": "inst-1"}, [1, 3, 5, 7]),
        ({"instance_id": "inst-1", "party": "bank-a@example.com"}, [3]),
        ({"party": "nobody@example.com"}, []),
    ],
)
def test_filtered_exports(
    filled_log: DecisionLog, flt: dict[str, str], expected: list[int]
) -> None:
    export = filled_log.export(**flt)
    result = verify_log(json.dumps(export), filled_log.public_key)
    assert [e.seq for e in result.entries] == expected
    assert result.complete is False
    assert result.checkpoint.tree_size == 9


def test_export_is_json_and_complete(filled_log: DecisionLog) -> None:
    export = filled_log.export()
    assert json.loads(json.dumps(export)) == export
    assert export["filter"] is None
    assert "inclusion_proofs" not in export
    assert verify_log(export, filled_log.public_key).complete


def test_usage_counts_come_from_the_log(tmp_path: Path, log_key: Any, fill: Fill) -> None:
    path = tmp_path / "log.db"
    log = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)
    fill(log, 12)
    # fill: party i % 3, instance i % 2, every third (party 2) denied.
    assert log.count("inst-0", "bank-a@example.com") == 2
    assert log.count("inst-1", "bank-a@example.com") == 2
    assert log.count("inst-1", "bank-b@example.com") == 2
    assert log.count("inst-0", "owner@example.com") == 0
    assert log.count("inst-0", "owner@example.com", allowed=False) == 2
    assert log.count("inst-0", "bank-a@example.com", action="upload_model") == 0
    assert log.count("inst-9", "nobody@example.com") == 0
    reopened = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)
    assert reopened.count("inst-0", "bank-a@example.com") == 2
    reopened.append("inst-0", "predict", "bank-a@example.com", True, None, D, D, D, D)
    assert reopened.count("inst-0", "bank-a@example.com") == 3
    # Another writer's entries are counted too.
    assert log.count("inst-0", "bank-a@example.com") == 3


@pytest.mark.parametrize(
    ("name", "sql"),
    [
        ("entry hidden", "UPDATE cleanroom_decision_log SET party = 'x@example.com' WHERE seq = 3"),
        (
            "entry added",
            "UPDATE cleanroom_decision_log SET party = 'bank-a@example.com' WHERE seq = 4",
        ),
    ],
)
def test_an_edited_index_column_is_caught_by_filtered_exports(
    tmp_path: Path, log_key: Any, fill: Fill, name: str, sql: str
) -> None:
    path = tmp_path / "log.db"
    log = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)
    fill(log, 6)
    assert [e["seq"] for e in log.export(party="bank-a@example.com")["entries"]] == [0, 3]
    _tamper(path, sql)
    with pytest.raises(LogIntegrityError, match="index was altered"):
        log.export(party="bank-a@example.com")
    for after in (-1, 0, 3):  # every page, even one that does not hold the edited row
        with pytest.raises(LogIntegrityError, match="index was altered"):
            log.export(party="bank-a@example.com", after=after, limit=1)


def test_an_unreadable_database_is_a_service_error(log_key: Any) -> None:
    c = sqlite3.connect(":memory:", check_same_thread=False)
    log = DecisionLog(c, log_key)
    c.close()
    for call in (log.checkpoint, lambda: log.receipt(0), log.export, lambda: log.count("i", "p")):
        with pytest.raises(ServiceUnavailable):
            call()


@pytest.mark.parametrize(
    "isolation_level", [None, "", "DEFERRED"], ids=["autocommit", "default", "deferred"]
)
def test_connection_modes(tmp_path: Path, log_key: Any, fill: Fill, isolation_level: Any) -> None:
    path = tmp_path / "log.db"
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=isolation_level)
    conn.execute("PRAGMA journal_mode=WAL")
    log = DecisionLog(conn, log_key)
    fill(log, 5)
    assert not conn.in_transaction
    reopened = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)
    assert reopened.size == 5
    assert verify_log(reopened.export(), log_key.public_key()).complete


def test_content_digest_of_parts_is_that_of_their_concatenation() -> None:
    parts = (b"prefix", memoryview(b"cipher"), b"text")
    assert content_digest(parts) == content_digest(b"prefixciphertext")
    assert content_digest([]) == content_digest(b"")


def test_a_content_hasher_fed_in_pieces_names_the_whole() -> None:
    data = os.urandom(300_000)
    hasher = ContentHasher()
    for start in range(0, len(data), 65_536):
        hasher.update(data[start : start + 65_536])
    assert hasher.digest == content_digest(data)
    assert hasher.digest.startswith("sha256:")
    assert ContentHasher().digest == content_digest(b"")
    assert hasher.digest != content_digest(data[:-1])
