"""Offline verification: every kind of tampering is named.

Each table row takes a genuine export or receipt of a 9-entry log, breaks
one thing, and expects verification to fail with a message naming it.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from cleanroom.errors import ConfigurationError, InvalidRequest, LogIntegrityError
from cleanroom.policy import (
    DecisionLog,
    LogEntry,
    key_id,
    verify_log,
    verify_log_consistency,
    verify_receipt,
)
from cleanroom.policy.signing import sign

Doc = dict[str, Any]


def _forged_entry(export: Doc, seq: int, prev: Doc) -> Doc:
    """An entry an attacker could write: well formed, correctly chained."""
    forged = copy.deepcopy(prev)
    forged.update(seq=seq, party="mallory@example.com", decision="allow", reason=None)
    forged["prev_hash"] = LogEntry.from_json(prev).leaf_hash().hex()
    return forged


def _remove(i: int) -> Callable[[Doc], None]:
    return lambda d: d["entries"].pop(i)


def _set(i: int, **changes: Any) -> Callable[[Doc], None]:
    return lambda d: d["entries"][i].update(changes)


def _swap(i: int, j: int) -> Callable[[Doc], None]:
    def mutate(d: Doc) -> None:
        e = d["entries"]
        e[i], e[j] = e[j], e[i]

    return mutate


def _insert_duplicate(d: Doc) -> None:
    d["entries"].insert(4, copy.deepcopy(d["entries"][3]))


def _append_forged(d: Doc) -> None:
    d["entries"].append(_forged_entry(d, 9, d["entries"][8]))


def _insert_forged_and_renumber(d: Doc) -> None:
    entries = d["entries"]
    entries.insert(5, _forged_entry(d, 5, entries[4]))
    for later in entries[6:]:
        later["seq"] += 1


def _checkpoint(**changes: Any) -> Callable[[Doc], None]:
    return lambda d: d["checkpoint"].update(changes)


def _flip_signature(d: Doc) -> None:
    raw = bytearray(base64.b64decode(d["checkpoint"]["signature"]))
    raw[0] ^= 1
    d["checkpoint"]["signature"] = base64.b64encode(bytes(raw)).decode()


COMPLETE_EXPORT_TAMPERING: list[tuple[str, Callable[[Doc], None], str]] = [
    ("removed first entry", _remove(0), "removed entry: seq 0 is missing"),
    ("removed middle entry", _remove(4), "removed entry: seq 4 is missing"),
    ("removed last entry", _remove(8), "removed entry: seq 8 is missing"),
    (
        "altered party",
        _set(4, party="mallory@example.com"),
        "altered entry: seq 4 does not hash to the prev_hash recorded in seq 5",
    ),
    (
        "denial turned into an allow",
        _set(2, decision="allow", reason=None),
        "altered entry: seq 2 does not hash",
    ),
    (
        "altered request digest",
        _set(0, request_digest="sha256:" + "00" * 32),
        "altered entry: seq 0 does not hash",
    ),
    ("altered last entry", _set(8, reason="edited"), "seq 8 does not hash to the signed head"),
    (
        "altered chain link",
        _set(4, prev_hash="11" * 32),
        "altered entry: the prev_hash of seq 4 was changed",
    ),
    ("reordered entries", _swap(3, 4), "reordered entries: seq 3 comes after seq 4"),
    ("reordered first and last", _swap(0, 8), "reordered entries"),
    ("duplicated entry", _insert_duplicate, "inserted entry: seq 3 appears 2 times"),
    (
        "forged entry appended",
        _append_forged,
        "inserted entry: seq 9 is beyond the signed checkpoint",
    ),
    (
        "forged entry inserted, later ones renumbered",
        _insert_forged_and_renumber,
        "inserted entry: seq 9 is beyond the signed checkpoint",
    ),
    ("checkpoint size changed", _checkpoint(tree_size=8), "bad signature"),
    ("checkpoint root changed", _checkpoint(root_hash="22" * 32), "bad signature"),
    ("checkpoint head changed", _checkpoint(head_hash="22" * 32), "bad signature"),
    ("checkpoint time changed", _checkpoint(time="2030-01-01T00:00:00.000Z"), "bad signature"),
    ("checkpoint algorithm changed", _checkpoint(algorithm="ecdsa-p256-sha256"), "bad signature"),
    ("signature flipped", _flip_signature, "bad signature"),
    ("checkpoint of another log", _checkpoint(log_id="sha256:" + "33" * 32), "bad signature"),
    ("signature not base64", _checkpoint(signature="***"), "not base64"),
    ("unknown format", lambda d: d.update(format="other/1"), "format"),
    ("entries not a list", lambda d: d.update(entries={}), "entries must be a list"),
    ("entry missing a field", lambda d: d["entries"][1].pop("party"), "party is missing"),
    ("entry with an extra field", _set(1, data="plaintext"), "unknown field"),
    ("seq as text", _set(1, seq="1"), "seq has the wrong type"),
    ("seq as boolean", _set(1, seq=True), "seq must be an integer"),
    ("decision neither", _set(1, decision="maybe"), "decision is not allow or deny"),
    ("time not UTC", _set(1, time="2026-01-31 12:00:00"), "RFC 3339"),
]


@pytest.fixture
def export(filled_log: DecisionLog) -> Doc:
    doc: Doc = json.loads(json.dumps(filled_log.export()))
    return doc


def test_the_genuine_export_verifies(filled_log: DecisionLog, export: Doc) -> None:
    result = verify_log(export, filled_log.public_key)
    assert result.complete
    assert len(result.entries) == 9


@pytest.mark.parametrize(
    ("name", "mutate", "message"),
    COMPLETE_EXPORT_TAMPERING,
    ids=[r[0] for r in COMPLETE_EXPORT_TAMPERING],
)
def test_tampered_export_is_refused(
    filled_log: DecisionLog, export: Doc, name: str, mutate: Callable[[Doc], None], message: str
) -> None:
    mutate(export)
    with pytest.raises(LogIntegrityError, match=message):
        verify_log(json.dumps(export), filled_log.public_key)


def test_an_export_checked_against_another_key_is_refused(export: Doc, other_key: Any) -> None:
    with pytest.raises(LogIntegrityError, match="bad signature"):
        verify_log(export, other_key.public_key())


def test_a_log_rewritten_and_resigned_by_another_key_is_refused(
    filled_log: DecisionLog, export: Doc, other_key: Any
) -> None:
    # The attacker rewrites a decision and signs a fresh checkpoint with its own key.
    forged_log = DecisionLog(sqlite3.connect(":memory:"), other_key)
    for entry in export["entries"]:
        forged_log.append(
            entry["instance_id"], entry["action"], "mallory@example.com", True, None,
            entry["policy_digest"], entry["model_digest"], entry["request_digest"],
            entry["response_digest"],
        )  # fmt: skip
    with pytest.raises(LogIntegrityError, match="bad signature"):
        verify_log(forged_log.export(), filled_log.public_key)


def test_all_problems_are_reported_together(filled_log: DecisionLog, export: Doc) -> None:
    export["entries"].pop(2)
    export["entries"].pop(5)
    with pytest.raises(LogIntegrityError) as info:
        verify_log(export, filled_log.public_key)
    assert info.value.details["problems"] == [
        "removed entry: seq 2 is missing",
        "removed entry: seq 6 is missing",
    ]


def test_an_empty_log_verifies(conn: Any, log_key: Any) -> None:
    log = DecisionLog(conn, log_key)
    result = verify_log(log.export(), log.public_key)
    assert result.entries == ()
    assert result.checkpoint.tree_size == 0


def test_public_key_as_pem(filled_log: DecisionLog, export: Doc) -> None:
    pem = filled_log.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verify_log(export, pem).complete
    assert verify_log(export, pem.decode()).complete
    with pytest.raises(ConfigurationError):
        verify_log(export, b"not a key")


@pytest.mark.parametrize("text", ["", "[]", "{", "null"])
def test_not_an_export(filled_log: DecisionLog, text: str) -> None:
    with pytest.raises(LogIntegrityError):
        verify_log(text, filled_log.public_key)


# ---------------------------------------------------------------- receipts


@pytest.fixture
def receipt(filled_log: DecisionLog) -> Doc:
    doc: Doc = json.loads(json.dumps(filled_log.receipt(4).to_json()))
    return doc


def _entry(**changes: Any) -> Callable[[Doc], None]:
    return lambda r: r["entry"].update(changes)


def _proof(mutate: Callable[[list[str]], None]) -> Callable[[Doc], None]:
    return lambda r: mutate(r["inclusion_proof"])


def _renumber(r: Doc) -> None:
    r["entry"]["seq"] = 3
    r["leaf_index"] = 3


def _beyond(r: Doc) -> None:
    r["entry"]["seq"] = 100
    r["leaf_index"] = 100


def _resign_other(r: Doc) -> None:
    # A checkpoint over a forged root, correctly signed, but by another key.
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from cleanroom.policy import Checkpoint

    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))
    body = {**r["checkpoint"], "root_hash": "44" * 32, "log_id": key_id(key.public_key())}
    unsigned = Checkpoint.from_json(body)
    body["signature"] = base64.b64encode(sign(key, unsigned.signed_message())).decode()
    r["checkpoint"] = body


RECEIPT_TAMPERING: list[tuple[str, Callable[[Doc], None], str]] = [
    (
        "altered party",
        _entry(party="mallory@example.com"),
        "altered entry: seq 4 is not in the signed log",
    ),
    ("altered decision", _entry(decision="deny", reason="x"), "not in the signed log"),
    ("altered response digest", _entry(response_digest=None), "not in the signed log"),
    ("altered time", _entry(time="2026-01-31T12:00:00.000Z"), "not in the signed log"),
    ("renumbered", _renumber, "not in the signed log"),
    ("leaf index differs", lambda r: r.update(leaf_index=3), "leaf_index differs"),
    ("beyond the checkpoint", _beyond, "beyond the signed checkpoint"),
    (
        "proof element altered",
        _proof(lambda p: p.__setitem__(0, "55" * 32)),
        "not in the signed log",
    ),
    ("proof truncated", _proof(lambda p: p.pop()), "not in the signed log"),
    ("proof extended", _proof(lambda p: p.append("55" * 32)), "not in the signed log"),
    ("proof not hex", _proof(lambda p: p.__setitem__(0, "zz")), "non-hash"),
    ("proof missing", lambda r: r.pop("inclusion_proof"), "inclusion_proof"),
    (
        "checkpoint root altered",
        lambda r: r["checkpoint"].update(root_hash="66" * 32),
        "bad signature",
    ),
    ("checkpoint size altered", lambda r: r["checkpoint"].update(tree_size=10), "bad signature"),
    ("signature flipped", _flip_signature, "bad signature"),
    ("re-signed by another key", _resign_other, "bad signature"),
    ("wrong format", lambda r: r.update(format="cleanroom-receipt/0"), "format"),
]


def test_the_genuine_receipt_verifies(filled_log: DecisionLog, receipt: Doc) -> None:
    entry = verify_receipt(receipt, filled_log.public_key)
    assert entry.seq == 4
    assert entry.party == "bank-b@example.com"


@pytest.mark.parametrize(
    ("name", "mutate", "message"), RECEIPT_TAMPERING, ids=[r[0] for r in RECEIPT_TAMPERING]
)
def test_tampered_receipt_is_refused(
    filled_log: DecisionLog, receipt: Doc, name: str, mutate: Callable[[Doc], None], message: str
) -> None:
    mutate(receipt)
    with pytest.raises(LogIntegrityError, match=message):
        verify_receipt(json.dumps(receipt), filled_log.public_key)


def test_receipt_checked_against_another_key_is_refused(receipt: Doc, other_key: Any) -> None:
    with pytest.raises(LogIntegrityError, match="bad signature"):
        verify_receipt(receipt, other_key.public_key())


# ---------------------------------------------------------------- filtered exports


@pytest.fixture
def party_export(filled_log: DecisionLog) -> Doc:
    doc: Doc = json.loads(json.dumps(filled_log.export(party="bank-a@example.com")))
    assert [e["seq"] for e in doc["entries"]] == [0, 3, 6]
    return doc


def _foreign_entry(log: DecisionLog) -> Callable[[Doc], None]:
    def mutate(d: Doc) -> None:
        other = log.receipt(4).to_json()
        d["entries"].insert(2, other["entry"])
        d["inclusion_proofs"].insert(2, other["inclusion_proof"])

    return mutate


def _swap_filtered(d: Doc) -> None:
    for key in ("entries", "inclusion_proofs"):
        d[key][0], d[key][1] = d[key][1], d[key][0]


def _duplicate_filtered(d: Doc) -> None:
    for key in ("entries", "inclusion_proofs"):
        d[key].insert(1, copy.deepcopy(d[key][0]))


def test_filtered_export_tampering(filled_log: DecisionLog, party_export: Doc) -> None:
    cases: list[tuple[str, Callable[[Doc], None], str]] = [
        ("altered entry", _set(1, decision="deny"), "seq 3 is not in the signed log"),
        ("foreign entry", _foreign_entry(filled_log), "seq 4 is outside the export's filter"),
        ("reordered", _swap_filtered, "reordered entries: seq 0 comes after seq 3"),
        ("duplicated", _duplicate_filtered, "inserted entry: seq 0 appears twice"),
        ("proof swapped", lambda d: d["inclusion_proofs"].reverse(), "not in the signed log"),
        ("proof dropped", lambda d: d["inclusion_proofs"].pop(), "one inclusion proof per entry"),
        (
            "filter emptied",
            lambda d: d.update(filter={"instance_id": None, "party": None}),
            "selects nothing",
        ),
        ("filter malformed", lambda d: d.update(filter={"party": "x"}), "filter must name"),
        # Claiming the filtered export is complete exposes every gap.
        ("filter removed", lambda d: d.update(filter=None), "removed entry: seq 1 is missing"),
    ]
    for name, mutate, message in cases:
        doc = copy.deepcopy(party_export)
        mutate(doc)
        with pytest.raises(LogIntegrityError, match=message):
            verify_log(doc, filled_log.public_key)
        assert name


def test_filtered_export_cannot_prove_completeness(
    filled_log: DecisionLog, party_export: Doc
) -> None:
    # Documented limitation: dropping an entry from a filtered export goes
    # unnoticed, and the result says so (complete is False).
    _remove(1)(party_export)
    party_export["inclusion_proofs"].pop(1)
    result = verify_log(party_export, filled_log.public_key)
    assert result.complete is False
    assert [e.seq for e in result.entries] == [0, 6]


# ---------------------------------------------------------------- exports against kept receipts


def test_receipts_from_earlier_agree_with_a_later_export(
    filled_log: DecisionLog, fill: Any
) -> None:
    kept = [filled_log.receipt(seq).to_json() for seq in (0, 4, 8)]
    fill(filled_log, 5)
    result = verify_log(filled_log.export(), filled_log.public_key, receipts=kept)
    assert len(result.entries) == 14
    filtered = filled_log.export(party="bank-b@example.com")
    assert verify_log(filtered, filled_log.public_key, receipts=kept).complete is False


def test_a_rolled_back_export_contradicts_a_receipt(filled_log: DecisionLog, fill: Any) -> None:
    old_export = filled_log.export()
    fill(filled_log, 3)
    receipt = filled_log.receipt(10).to_json()
    with pytest.raises(LogIntegrityError, match="rolled-back log: a receipt shows 12 entries"):
        verify_log(old_export, filled_log.public_key, receipts=[receipt])


def test_a_forked_history_contradicts_receipts(tmp_path: Path, log_key: Any, fill: Any) -> None:
    path, saved = tmp_path / "log.db", tmp_path / "saved.db"
    log = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)
    fill(log, 5)
    shutil.copy(path, saved)
    fill(log, 2)
    early, late = log.receipt(3).to_json(), log.receipt(6).to_json()
    # The store is restored from the copy and the log goes on differently.
    shutil.copy(saved, path)
    forked = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)
    forked.append(
        "inst-9", "predict", "other@example.com", True, None, *["sha256:" + "aa" * 32] * 4
    )
    fill(forked, 3)
    export = forked.export()
    assert verify_log(export, log_key.public_key()).complete
    with pytest.raises(LogIntegrityError, match="rewritten history: the first 7 entries"):
        verify_log(export, log_key.public_key(), receipts=[early])
    with pytest.raises(LogIntegrityError, match="altered entry: seq 6 differs from the receipt"):
        verify_log(export, log_key.public_key(), receipts=[late])


def test_a_filtered_export_missing_a_receipted_entry(
    filled_log: DecisionLog, party_export: Doc
) -> None:
    kept = filled_log.receipt(3).to_json()  # bank-a's entry
    other = filled_log.receipt(4).to_json()  # bank-b's: not expected in bank-a's export
    assert verify_log(party_export, filled_log.public_key, receipts=[kept, other])
    party_export["entries"].pop(1)
    party_export["inclusion_proofs"].pop(1)
    with pytest.raises(
        LogIntegrityError, match="removed entry: seq 3, held in a receipt, is missing"
    ):
        verify_log(party_export, filled_log.public_key, receipts=[kept, other])


def test_a_tampered_kept_receipt_is_itself_refused(filled_log: DecisionLog, export: Doc) -> None:
    kept = filled_log.receipt(2).to_json()
    kept["entry"]["decision"] = "allow"
    with pytest.raises(LogIntegrityError, match="altered entry: seq 2 is not in the signed log"):
        verify_log(export, filled_log.public_key, receipts=[kept])


# ---------------------------------------------------------------- consistency between checkpoints


def test_a_grown_log_is_consistent_with_its_past(filled_log: DecisionLog, fill: Any) -> None:
    older = filled_log.checkpoint().to_json()
    fill(filled_log, 7)
    newer = filled_log.checkpoint()
    proof = filled_log.consistency_proof(older["tree_size"])
    verify_log_consistency(older, newer, proof, filled_log.public_key)
    verify_log_consistency(newer, newer, [], filled_log.public_key)


def test_a_forked_log_is_inconsistent(tmp_path: Path, log_key: Any, fill: Any) -> None:
    path, saved = tmp_path / "log.db", tmp_path / "saved.db"
    log = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)
    fill(log, 4)
    shutil.copy(path, saved)
    fill(log, 2)
    seen = log.checkpoint()
    shutil.copy(saved, path)
    forked = DecisionLog(sqlite3.connect(path, check_same_thread=False), log_key)
    forked.append(
        "inst-9", "predict", "other@example.com", True, None, *["sha256:" + "aa" * 32] * 4
    )
    fill(forked, 3)
    with pytest.raises(LogIntegrityError, match="rewritten history"):
        verify_log_consistency(
            seen, forked.checkpoint(), forked.consistency_proof(6), log_key.public_key()
        )


def test_consistency_refusals(filled_log: DecisionLog, fill: Any, other_key: Any) -> None:
    older = filled_log.checkpoint()
    fill(filled_log, 3)
    newer = filled_log.checkpoint()
    proof = filled_log.consistency_proof(9)
    key = filled_log.public_key
    with pytest.raises(LogIntegrityError, match="rolled-back log"):
        verify_log_consistency(newer, older, proof, key)
    with pytest.raises(LogIntegrityError, match="consistency proof fails"):
        verify_log_consistency(older, newer, proof[:-1], key)
    with pytest.raises(LogIntegrityError, match="non-hash"):
        verify_log_consistency(older, newer, ["zz"], key)
    with pytest.raises(LogIntegrityError, match="bad signature"):
        verify_log_consistency(older, newer, proof, other_key.public_key())
    forged = {**newer.to_json(), "root_hash": "77" * 32}
    with pytest.raises(LogIntegrityError, match="bad signature"):
        verify_log_consistency(older, forged, proof, key)
    with pytest.raises(InvalidRequest):
        filled_log.consistency_proof(13)
