"""Checkpoints that the log key did sign, but that still must not verify.

The tampering tables elsewhere break a signature, so the signature check
refuses them whatever else is wrong. These rows keep a valid signature by the
log's own key over a checkpoint that is wrong in another way, so only the
check named in each test can refuse it:

* a checkpoint naming another log (``log_id`` is not the verifying key's id);
* an export whose entries do not lead to the signed root (a log that signs
  one tree for its receipts and exports another);
* a receipt whose entry lies exactly at the signed tree size (the first
  sequence number the checkpoint does not cover).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.errors import LogIntegrityError
from cleanroom.policy import (
    Checkpoint,
    DecisionLog,
    LogEntry,
    key_id,
    verify_checkpoint,
    verify_log,
    verify_log_consistency,
    verify_receipt,
)
from cleanroom.policy.merkle import MerkleTree
from cleanroom.policy.signing import sign

Doc = dict[str, Any]


def _resigned(checkpoint: Doc, key: ed25519.Ed25519PrivateKey, **changes: Any) -> Doc:
    """*checkpoint* with *changes*, signed again by *key*."""
    body = {**checkpoint, **changes}
    message = Checkpoint.from_json(body).signed_message()
    return {**body, "signature": base64.b64encode(sign(key, message)).decode()}


def _copy(doc: Any) -> Doc:
    copied: Doc = json.loads(json.dumps(doc))
    return copied


# --- a checkpoint naming another log ----------------------------------------


def _verify_alone(log: DecisionLog, forged: Doc) -> None:
    verify_checkpoint(Checkpoint.from_json(forged), log.public_key)


def _verify_in_receipt(log: DecisionLog, forged: Doc) -> None:
    receipt = _copy(log.receipt(4).to_json())
    receipt["checkpoint"] = forged
    verify_receipt(receipt, log.public_key)


def _verify_in_export(log: DecisionLog, forged: Doc) -> None:
    export = _copy(log.export())
    export["checkpoint"] = forged
    verify_log(export, log.public_key)


def _verify_as_older(log: DecisionLog, forged: Doc) -> None:
    newer = log.checkpoint().to_json()
    verify_log_consistency(forged, newer, [], log.public_key)


def _verify_as_newer(log: DecisionLog, forged: Doc) -> None:
    older = log.checkpoint().to_json()
    verify_log_consistency(older, forged, [], log.public_key)


WHERE: list[tuple[str, Callable[[DecisionLog, Doc], None]]] = [
    ("the checkpoint alone", _verify_alone),
    ("in a receipt", _verify_in_receipt),
    ("in a complete export", _verify_in_export),
    ("as the older of two checkpoints", _verify_as_older),
    ("as the newer of two checkpoints", _verify_as_newer),
]


@pytest.mark.parametrize(("where", "verify"), WHERE, ids=[w[0] for w in WHERE])
def test_a_checkpoint_naming_another_log_is_refused_though_the_log_key_signed_it(
    filled_log: DecisionLog,
    log_key: ed25519.Ed25519PrivateKey,
    other_key: ed25519.Ed25519PrivateKey,
    where: str,
    verify: Callable[[DecisionLog, Doc], None],
) -> None:
    genuine = filled_log.checkpoint().to_json()
    other_log = key_id(other_key.public_key())
    forged = _resigned(genuine, log_key, log_id=other_log)
    # The signature itself is good: only the log id check can refuse it.
    assert Checkpoint.from_json(forged).log_id == other_log
    with pytest.raises(LogIntegrityError, match=f"names log {other_log}"):
        verify(filled_log, forged)


# --- an export whose entries do not lead to the signed root -------------------


def _root_of_first(n: int) -> Callable[[Doc], str]:
    """The true root of the log's first *n* entries (a tree the checkpoint's size is not)."""

    def root(export: Doc) -> str:
        leaves = [LogEntry.from_json(e).leaf_hash() for e in export["entries"][:n]]
        return MerkleTree(leaves).root().hex()

    return root


SIGNED_ROOTS: list[tuple[str, Callable[[Doc], str]]] = [
    ("an arbitrary root", lambda export: "77" * 32),
    ("the root of a shorter prefix", _root_of_first(8)),
    (
        "the root of the entries in another order",
        lambda export: _reordered_root(export),
    ),
]


def _reordered_root(export: Doc) -> str:
    leaves = [LogEntry.from_json(e).leaf_hash() for e in export["entries"]]
    leaves[3], leaves[4] = leaves[4], leaves[3]
    return MerkleTree(leaves).root().hex()


@pytest.mark.parametrize(("name", "signed_root"), SIGNED_ROOTS, ids=[r[0] for r in SIGNED_ROOTS])
def test_an_export_whose_entries_do_not_lead_to_the_signed_root_is_refused(
    filled_log: DecisionLog,
    log_key: ed25519.Ed25519PrivateKey,
    name: str,
    signed_root: Callable[[Doc], str],
) -> None:
    export = _copy(filled_log.export())
    verify_log(export, filled_log.public_key)
    # Size and head hash stay genuine, so the entries' sequence and hash chain
    # still verify: the Merkle root is the only thing that differs.
    root = signed_root(export)
    assert root != export["checkpoint"]["root_hash"]
    doctored = copy.deepcopy(export)
    doctored["checkpoint"] = _resigned(export["checkpoint"], log_key, root_hash=root)
    with pytest.raises(LogIntegrityError, match="entries do not lead to the signed root hash"):
        verify_log(doctored, filled_log.public_key)


# --- a receipt at the first sequence number the checkpoint does not cover -------


def test_a_receipt_for_the_seq_equal_to_the_tree_size_is_beyond_the_checkpoint(
    filled_log: DecisionLog,
) -> None:
    receipt = _copy(filled_log.receipt(4).to_json())
    size = receipt["checkpoint"]["tree_size"]
    receipt["entry"]["seq"] = size
    receipt["leaf_index"] = size
    with pytest.raises(LogIntegrityError, match=f"seq {size} is beyond the signed checkpoint"):
        verify_receipt(receipt, filled_log.public_key)
