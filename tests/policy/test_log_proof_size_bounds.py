"""Tree sizes outside the log are refused, never answered with another tree's hashes.

``DecisionLog.consistency_proof(first, second)`` needs
``0 <= first <= second <= size`` and says so with :class:`InvalidRequest`
(a caller's mistake, not a broken log). ``MerkleTree.root`` and
``MerkleTree.consistency_proof`` refuse sizes the tree does not have with
``ValueError`` rather than indexing past their levels or wrapping a negative
size around. ``verify_consistency`` refuses a first size larger than the
second even with a genuine proof and the genuine roots: the sizes are part
of what the proof shows.
"""

from __future__ import annotations

import pytest

from cleanroom.errors import InvalidRequest
from cleanroom.policy import DecisionLog
from cleanroom.policy.merkle import MerkleTree, leaf_hash, verify_consistency

TREE = MerkleTree([leaf_hash(bytes([i])) for i in range(11)])


@pytest.mark.parametrize(
    ("first", "second"),
    [(-1, None), (-1, 5), (0, 10), (9, 10), (10, None), (5, 3), (5, -1)],
)
def test_a_consistency_proof_outside_the_log_is_an_invalid_request(
    filled_log: DecisionLog, first: int, second: int | None
) -> None:
    with pytest.raises(InvalidRequest, match="no consistency proof"):
        filled_log.consistency_proof(first, second)


@pytest.mark.parametrize(("first", "second"), [(0, 9), (3, 9), (9, 9), (4, None)])
def test_consistency_proofs_inside_the_log_are_given(
    filled_log: DecisionLog, first: int, second: int | None
) -> None:
    proof = filled_log.consistency_proof(first, second)
    assert all(len(p) == 64 for p in proof)


@pytest.mark.parametrize("size", [-1, -11, 12, 16])
def test_the_root_of_a_size_the_tree_does_not_have_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="no such tree size"):
        TREE.root(size)


@pytest.mark.parametrize(("first", "second"), [(-1, 5), (3, 12), (0, 12), (12, 12), (6, 5)])
def test_a_tree_consistency_proof_for_sizes_it_does_not_have_is_refused(
    first: int, second: int
) -> None:
    with pytest.raises(ValueError, match="no such pair of tree sizes"):
        TREE.consistency_proof(first, second)


def test_a_genuine_proof_does_not_show_the_sizes_swapped() -> None:
    proof = TREE.consistency_proof(6, 11)
    r6, r11 = TREE.root(6), TREE.root(11)
    assert verify_consistency(6, 11, r6, r11, proof)
    assert not verify_consistency(11, 6, r6, r11, proof)
    assert not verify_consistency(11, 6, r11, r6, proof)
