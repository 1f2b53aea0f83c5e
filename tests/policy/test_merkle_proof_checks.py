"""RFC 9162 proof verification: each length and index check refuses on its own.

In ``verify_inclusion`` (§2.1.3.2) and ``verify_consistency`` (§2.1.4.2)
the final root comparison is not enough: a genuine proof can lead to the
right root for a leaf index or a tree size it does not prove. Every refused
row below is built so that the root comparison alone would accept it (a test
folds each one with no length or index check and reaches the claimed root),
so the only thing that refuses it is the check its name gives:

- inclusion: ``0 <= index < size``; ``sn == 0`` before each proof element
  (the proof is too long); ``sn == 0`` after the last one (too short);
- consistency: ``first == 0`` takes an empty proof only; ``sn == 0``
  before each proof element; ``sn == 0`` after the last one.

Each refused row follows an accepted one with the same proof and roots, at
the index or sizes they really prove.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from cleanroom.policy.merkle import (
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

L = [leaf_hash(bytes([i])) for i in range(8)]
TREE = MerkleTree(L)
R = [TREE.root(n) for n in range(9)]  # R[n]: the root of the first n leaves
N01, N23, N45 = node_hash(L[0], L[1]), node_hash(L[2], L[3]), node_hash(L[4], L[5])
EMPTY_ROOT = hashlib.sha256(b"").digest()


def test_the_tables_use_genuine_proofs_and_roots() -> None:
    assert (R[0], R[1], R[2], R[4]) == (EMPTY_ROOT, L[0], N01, node_hash(N01, N23))
    assert TREE.inclusion_proof(0, 2) == [L[1]]
    assert TREE.inclusion_proof(1, 2) == [L[0]]
    assert TREE.inclusion_proof(0, 4) == [L[1], N23]
    assert TREE.inclusion_proof(2, 4) == [L[3], N01]
    assert TREE.consistency_proof(2, 4) == [N23]
    assert TREE.consistency_proof(7, 8) == [L[6], L[7], N45, R[4]]


def _fold_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root RFC 9162 §2.1.3.2 computes, with no length or index check."""
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r


def _fold_consistency(
    first: int, second: int, first_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """The two roots RFC 9162 §2.1.4.2 computes, with no length check (first > 0)."""
    path = [first_root, *proof] if first & (first - 1) == 0 else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr, sr


# (leaf, index, size, proof, root) -> accepted
INCLUSION_CASES = [
    pytest.param(L[0], 0, 2, [L[1]], R[2], True, id="leaf 0 of 2"),
    pytest.param(L[0], 2, 2, [L[1]], R[2], False, id="index range: leaf 0 claimed at 2 of 2"),
    pytest.param(L[0], -2, 2, [L[1]], R[2], False, id="index range: leaf 0 claimed at -2 of 2"),
    pytest.param(L[0], 0, 1, [], R[1], True, id="the leaf of a 1-leaf tree"),
    pytest.param(L[0], 1, 1, [], R[1], False, id="index range: the only leaf claimed at 1 of 1"),
    pytest.param(L[0], -1, 1, [], R[1], False, id="index range: the only leaf claimed at -1 of 1"),
    pytest.param(L[2], 2, 4, [L[3], N01], R[4], True, id="leaf 2 of 4"),
    # The path of index 0 in 2 leaves has one element; the second one (N01)
    # would be folded in as a left sibling, giving the root of 4 leaves.
    pytest.param(
        L[2], 0, 2, [L[3], N01], R[4], False, id="sn == 0 in the loop: leaf 2 claimed at 0 of 2"
    ),
    pytest.param(L[1], 1, 2, [L[0]], R[2], True, id="leaf 1 of 2"),
    pytest.param(
        L[1], 0, 1, [L[0]], R[2], False, id="sn == 0 in the loop: leaf 1 claimed at 0 of 1"
    ),
    pytest.param(L[0], 0, 4, [L[1], N23], R[4], True, id="leaf 0 of 4"),
    pytest.param(
        L[0], 0, 8, [L[1], N23], R[4], False, id="sn == 0 after the loop: 4 leaves claimed as 8"
    ),
    pytest.param(
        L[0], 0, 2, [], L[0], False, id="sn == 0 after the loop: the leaf claimed as the root of 2"
    ),
]


@pytest.mark.parametrize(("leaf", "index", "size", "proof", "root", "accepted"), INCLUSION_CASES)
def test_inclusion_proof_checks(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes, accepted: bool
) -> None:
    assert verify_inclusion(leaf, index, size, proof, root) is accepted
    if not accepted:
        assert root_from_inclusion_proof(leaf, index, size, proof) is None


@pytest.mark.parametrize(
    ("leaf", "index", "size", "proof", "root"),
    [pytest.param(*c.values[:-1], id=c.id) for c in INCLUSION_CASES if not c.values[-1]],
)
def test_only_the_named_check_refuses_an_inclusion_row(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    assert _fold_inclusion(leaf, index, size, proof) == root


# (first, second, first root, second root, proof) -> accepted
CONSISTENCY_CASES = [
    pytest.param(0, 4, EMPTY_ROOT, R[4], [], True, id="the empty tree is a prefix of 4 leaves"),
    # With first == 0 no proof element is ever read: only the check refuses one.
    pytest.param(0, 4, EMPTY_ROOT, R[4], [N23], False, id="first == 0: a proof for the empty tree"),
    pytest.param(0, 4, EMPTY_ROOT, R[4], [R[4]], False, id="first == 0: the root as the proof"),
    pytest.param(7, 8, R[7], R[8], [L[6], L[7], N45, R[4]], True, id="7 leaves are a prefix of 8"),
    # The path from 3 to 4 leaves ends after three elements; the fourth (the
    # root of leaves 0-3) would be folded into both roots as a left sibling,
    # giving the roots of 7 and 8 leaves.
    pytest.param(
        3, 4, R[7], R[8], [L[6], L[7], N45, R[4]], False, id="sn == 0 in the loop: 7-to-8 as 3-to-4"
    ),
    pytest.param(2, 4, R[2], R[4], [N23], True, id="2 leaves are a prefix of 4"),
    pytest.param(2, 8, R[2], R[4], [N23], False, id="sn == 0 after the loop: 2-to-4 as 2-to-8"),
    pytest.param(1, 2, L[0], L[0], [], False, id="sn == 0 after the loop: one root for 1 and 2"),
]


# Without the first == 0 check the loop over fn = first - 1 = -1 never ends;
# the timeout turns that into a failure too.
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("first", "second", "first_root", "second_root", "proof", "accepted"), CONSISTENCY_CASES
)
def test_consistency_proof_checks(
    first: int,
    second: int,
    first_root: bytes,
    second_root: bytes,
    proof: list[bytes],
    accepted: bool,
) -> None:
    assert verify_consistency(first, second, first_root, second_root, proof) is accepted


@pytest.mark.parametrize(
    ("first", "second", "first_root", "second_root", "proof"),
    [
        pytest.param(*c.values[:-1], id=c.id)
        for c in CONSISTENCY_CASES
        if not c.values[-1] and c.values[0] > 0
    ],
)
def test_only_the_named_check_refuses_a_consistency_row(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]
) -> None:
    assert _fold_consistency(first, second, first_root, proof) == (first_root, second_root)
