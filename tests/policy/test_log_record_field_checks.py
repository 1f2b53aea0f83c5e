"""Receipts with a malformed field are refused by the record parser, naming the field.

A receipt comes from the host being audited. ``Receipt.from_json`` checks the
structure of the entry, the checkpoint and the proof before anything is
verified (``docs/receipts.md``): every hash is 32 bytes of lowercase hex,
every digest ``<alg>:<hex>`` with an algorithm name and 32 to 128 hex digits,
every time RFC 3339 UTC ending in ``Z``, sequence numbers and tree sizes are
not negative, text fields hold at most 1024 characters, and a proof holds at
most 128 hashes. Each row breaks one of these rules and expects the parser's
own message; a later check (the signature, the inclusion proof) failing
instead would mean the rule is not enforced: a non-canonical encoding of the
same proof, for one, would otherwise verify.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from cleanroom.errors import LogIntegrityError
from cleanroom.policy import DecisionLog, LogEntry, verify_receipt

Doc = dict[str, Any]


@pytest.fixture
def receipt(filled_log: DecisionLog) -> Doc:
    doc: Doc = json.loads(json.dumps(filled_log.receipt(4).to_json()))
    assert len(doc["inclusion_proof"]) == 4
    return doc


def _entry(**changes: Any) -> Callable[[Doc], None]:
    return lambda d: d["entry"].update(changes)


def _checkpoint(**changes: Any) -> Callable[[Doc], None]:
    return lambda d: d["checkpoint"].update(changes)


def _proof_item(transform: Callable[[str], str]) -> Callable[[Doc], None]:
    def mutate(d: Doc) -> None:
        d["inclusion_proof"][0] = transform(d["inclusion_proof"][0])

    return mutate


def _negative_seq(d: Doc) -> None:
    d["entry"]["seq"] = d["leaf_index"] = -1


def _long_proof(d: Doc) -> None:
    d["inclusion_proof"] = d["inclusion_proof"] * 33  # 132 hashes


MALFORMED: list[tuple[str, Callable[[Doc], None], str]] = [
    ("proof hash in upper case", _proof_item(str.upper), "inclusion_proof holds a non-hash"),
    (
        "proof hash one byte long",
        _proof_item(lambda h: h + "00"),
        "inclusion_proof holds a non-hash",
    ),
    ("proof of more than 128 hashes", _long_proof, "inclusion_proof must be a list of hashes"),
    (
        "prev_hash in upper case",
        lambda d: d["entry"].update(prev_hash=d["entry"]["prev_hash"].upper()),
        "prev_hash is not 32 bytes of lowercase hex",
    ),
    (
        "prev_hash one byte long",
        lambda d: d["entry"].update(prev_hash=d["entry"]["prev_hash"] + "00"),
        "prev_hash is not 32 bytes of lowercase hex",
    ),
    (
        "checkpoint root in upper case",
        lambda d: d["checkpoint"].update(root_hash=d["checkpoint"]["root_hash"].upper()),
        "root_hash is not 32 bytes of lowercase hex",
    ),
    ("negative seq", _negative_seq, "seq is negative"),
    ("entry time without Z", _entry(time="2026-01-31T12:00:05.000"), "time is not RFC 3339 UTC"),
    ("entry time with an offset", _entry(time="2026-01-31T12:00:05+00:00"), "RFC 3339 UTC"),
    ("request digest null", _entry(request_digest=None), "policy and request digests"),
    ("policy digest null", _entry(policy_digest=None), "policy and request digests"),
    (
        "digest without an algorithm",
        _entry(request_digest=":" + "ab" * 32),
        "request_digest is not an '<alg>:<hex>' digest",
    ),
    (
        "digest of 130 hex digits",
        _entry(model_digest="sha256:" + "a" * 130),
        "model_digest is not an '<alg>:<hex>' digest",
    ),
    ("reason over 1024 characters", _entry(reason="r" * 1025), "reason is too long"),
    ("party over 1024 characters", _entry(party="p" * 1025), "party is too long"),
    ("negative tree size", _checkpoint(tree_size=-1), "tree_size is negative"),
    (
        "checkpoint time without Z",
        _checkpoint(time="2026-01-31T12:00:10.000"),
        "time is not RFC 3339 UTC",
    ),
    ("log_id not a digest", _checkpoint(log_id="66eb" * 16), "log_id is not a digest"),
]


@pytest.mark.parametrize(("name", "mutate", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_receipt_field_is_named(
    filled_log: DecisionLog,
    receipt: Doc,
    name: str,
    mutate: Callable[[Doc], None],
    message: str,
) -> None:
    verify_receipt(receipt, filled_log.public_key)
    broken = copy.deepcopy(receipt)
    mutate(broken)
    with pytest.raises(LogIntegrityError, match=f"^malformed [a-z ]+: .*{message}") as refused:
        verify_receipt(broken, filled_log.public_key)
    assert "bad signature" not in str(refused.value)


def _entry_doc(**changes: Any) -> Doc:
    doc: Doc = {
        "seq": 0,
        "time": "2026-01-31T12:00:01.000Z",
        "instance_id": "inst-0",
        "action": "predict",
        "party": "bank-a@example.com",
        "decision": "allow",
        "reason": None,
        "policy_digest": "sha256:" + "ab" * 32,
        "model_digest": None,
        "request_digest": "sha256:" + "cd" * 32,
        "response_digest": None,
        "prev_hash": "0" * 64,
    }
    doc.update(changes)
    return doc


# The largest accepted value of each bounded field, so the bound is exactly where
# the format puts it (one more is refused above or below).
AT_THE_BOUND = [
    ("digest of 128 hex digits", {"model_digest": "sha256:" + "a" * 128}),
    ("digest of 32 hex digits", {"model_digest": "md5:" + "a" * 32}),
    ("algorithm of 16 characters", {"model_digest": "a" * 16 + ":" + "a" * 64}),
    ("reason of 1024 characters", {"reason": "r" * 1024}),
    ("time with nanoseconds", {"time": "2026-01-31T12:00:01.123456789Z"}),
    ("time without fraction", {"time": "2026-01-31T12:00:01Z"}),
]


@pytest.mark.parametrize(("name", "changes"), AT_THE_BOUND, ids=[a[0] for a in AT_THE_BOUND])
def test_values_at_the_bounds_parse(name: str, changes: Doc) -> None:
    doc = _entry_doc(**changes)
    assert LogEntry.from_json(doc).to_json() == doc


BEYOND_THE_BOUND = [
    ("digest of 31 hex digits", {"model_digest": "md5:" + "a" * 31}, "model_digest"),
    ("digest of 129 hex digits", {"model_digest": "sha256:" + "a" * 129}, "model_digest"),
    ("algorithm of 17 characters", {"model_digest": "a" * 17 + ":" + "a" * 64}, "model_digest"),
    ("reason of 1025 characters", {"reason": "r" * 1025}, "reason is too long"),
    ("seq of -1", {"seq": -1}, "seq is negative"),
    ("time with ten fraction digits", {"time": "2026-01-31T12:00:01.1234567890Z"}, "time"),
]


@pytest.mark.parametrize(
    ("name", "changes", "message"), BEYOND_THE_BOUND, ids=[b[0] for b in BEYOND_THE_BOUND]
)
def test_values_beyond_the_bounds_are_refused(name: str, changes: Doc, message: str) -> None:
    with pytest.raises(LogIntegrityError, match=f"malformed log entry: .*{message}"):
        LogEntry.from_json(_entry_doc(**changes))
