"""``verify_log_consistency`` checks the signature of BOTH checkpoints.

A consistency proof shows that one tree head extends another; it says
nothing about who produced them. A verifier that checked only the newer
checkpoint's signature would take an older tree head nobody signed: a
forged root (refused only later, and under the wrong name), or one that is
consistent with the signed log but was never signed by it (a prefix the log
never published, another timestamp, another head hash, a signature over
another body) and would be accepted outright.

Each row forges the older checkpoint, then (for symmetry) the newer one,
keeping the log's proof for the sizes claimed, and expects the refusal to
name the bad signature. Where the forgery stays consistent with the signed
log, the test also shows that the Merkle proof alone would accept it.
"""

from __future__ import annotations

import base64
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
    verify_log_consistency,
)
from cleanroom.policy.merkle import MerkleTree, verify_consistency
from cleanroom.policy.signing import sign

Doc = dict[str, Any]
Forgery = Callable[[Doc, DecisionLog], Doc]

ATTACKER = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))


def _replace(**changes: Any) -> Forgery:
    """The genuine checkpoint with *changes*, its signature kept."""
    return lambda doc, log: {**doc, **changes}


def _flip_signature(doc: Doc, log: DecisionLog) -> Doc:
    raw = bytearray(base64.b64decode(doc["signature"]))
    raw[-1] ^= 1
    return {**doc, "signature": base64.b64encode(raw).decode()}


def _signed_by(key: ed25519.Ed25519PrivateKey, *, own_log_id: bool) -> Forgery:
    """The genuine body signed by *key*, naming the log's id or the key's own."""

    def forge(doc: Doc, log: DecisionLog) -> Doc:
        body = {**doc, "log_id": key_id(key.public_key()) if own_log_id else doc["log_id"]}
        message = Checkpoint.from_json(body).signed_message()
        return {**body, "signature": base64.b64encode(sign(key, message)).decode()}

    return forge


def _unsigned_prefix(doc: Doc, log: DecisionLog) -> Doc:
    """A true tree head of the log three entries earlier, which the log never signed.

    Anyone can compute it from an export; the signature is the genuine one's.
    """
    size = doc["tree_size"] - 3
    leaves = [LogEntry.from_json(e).leaf_hash() for e in log.export()["entries"][:size]]
    return {
        **doc,
        "tree_size": size,
        "root_hash": MerkleTree(leaves).root().hex(),
        "head_hash": leaves[-1].hex(),
    }


# name -> forgery, whether the forged checkpoint is still consistent with the signed log
FORGERIES: list[tuple[str, Forgery, bool]] = [
    ("root_hash replaced, signature kept", _replace(root_hash="77" * 32), False),
    ("head_hash replaced, signature kept", _replace(head_hash="66" * 32), True),
    ("time replaced, signature kept", _replace(time="2020-01-01T00:00:00Z"), True),
    ("a true prefix the log never signed", _unsigned_prefix, True),
    ("one bit of the signature flipped", _flip_signature, True),
    ("signed by another key, this log's id", _signed_by(ATTACKER, own_log_id=False), True),
    ("signed by another key, its own log id", _signed_by(ATTACKER, own_log_id=True), True),
]


@pytest.fixture
def checkpoints(
    filled_log: DecisionLog, fill: Callable[[DecisionLog, int], None]
) -> tuple[Doc, Doc]:
    """Genuine checkpoints of the log at 9 and at 16 entries."""
    older = filled_log.checkpoint().to_json()
    fill(filled_log, 7)
    return older, filled_log.checkpoint().to_json()


def test_the_genuine_checkpoints_are_consistent(
    filled_log: DecisionLog, checkpoints: tuple[Doc, Doc]
) -> None:
    older, newer = checkpoints
    proof = filled_log.consistency_proof(older["tree_size"], newer["tree_size"])
    verify_log_consistency(older, newer, proof, filled_log.public_key)


@pytest.mark.parametrize("side", ["older", "newer"])
@pytest.mark.parametrize(("name", "forge", "consistent"), FORGERIES, ids=[f[0] for f in FORGERIES])
def test_a_forged_checkpoint_is_refused_for_its_signature(
    side: str,
    name: str,
    forge: Forgery,
    consistent: bool,
    filled_log: DecisionLog,
    checkpoints: tuple[Doc, Doc],
) -> None:
    older, newer = checkpoints
    if side == "older":
        older = forge(older, filled_log)
    else:
        newer = forge(newer, filled_log)
    proof = filled_log.consistency_proof(older["tree_size"], newer["tree_size"])
    # Consistent forgeries pass the Merkle proof: only the signature check can refuse them.
    assert consistent == verify_consistency(
        older["tree_size"],
        newer["tree_size"],
        bytes.fromhex(older["root_hash"]),
        bytes.fromhex(newer["root_hash"]),
        [bytes.fromhex(p) for p in proof],
    ), name
    with pytest.raises(LogIntegrityError, match="bad signature"):
        verify_log_consistency(older, newer, proof, filled_log.public_key)
