"""RFC 9162 §2.1 Merkle tree hashes and inclusion proofs.

The reference vectors are the RFC 6962 test vectors of Google's
certificate-transparency implementation (merkle_tree_test.cc), reused by
transparency-dev/merkle: eight leaves and the tree head of every prefix.
"""

from __future__ import annotations

import hashlib

import pytest

from cleanroom.policy.merkle import (
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# PATH(0, D[0:8]) from the same vectors.
PATH_0_OF_8 = [
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
]


@pytest.fixture(scope="module")
def tree() -> MerkleTree:
    return MerkleTree([leaf_hash(x) for x in LEAVES])


def _reference_root(leaves: list[bytes]) -> bytes:
    """MTH straight from the RFC's recursive definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


@pytest.mark.parametrize("size", range(9))
def test_tree_heads_match_the_rfc6962_vectors(tree: MerkleTree, size: int) -> None:
    assert tree.root(size).hex() == ROOTS[size]


def test_inclusion_proof_matches_the_vector(tree: MerkleTree) -> None:
    assert [p.hex() for p in tree.inclusion_proof(0, 8)] == PATH_0_OF_8


def test_every_proof_of_every_prefix_verifies() -> None:
    data = [i.to_bytes(2, "big") for i in range(37)]
    tree = MerkleTree()
    for n, item in enumerate(data, start=1):
        tree.append(leaf_hash(item))
        assert tree.root() == _reference_root(data[:n])
    for size in range(1, 38):
        root = tree.root(size)
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert verify_inclusion(leaf_hash(data[index]), index, size, proof, root)


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("wrong leaf", lambda leaf, i, n, p: (leaf_hash(b"forged"), i, n, p)),
        ("wrong index", lambda leaf, i, n, p: (leaf, i + 1, n, p)),
        # Sizes with the same path shape (7 and 6 for leaf 2) give the same
        # root; the size is bound by the checkpoint's signature instead.
        ("wrong size", lambda leaf, i, n, p: (leaf, i, n - 4, p)),
        ("index beyond size", lambda leaf, i, n, p: (leaf, n, n, p)),
        ("truncated proof", lambda leaf, i, n, p: (leaf, i, n, p[:-1])),
        ("extended proof", lambda leaf, i, n, p: (leaf, i, n, [*p, p[0]])),
        ("altered proof", lambda leaf, i, n, p: (leaf, i, n, [bytes(32), *p[1:]])),
        ("reordered proof", lambda leaf, i, n, p: (leaf, i, n, p[::-1])),
    ],
)
def test_bad_inclusion_proofs_fail(tree: MerkleTree, name: str, mutate: object) -> None:
    index, size = 2, 7
    args = (leaf_hash(LEAVES[index]), index, size, tree.inclusion_proof(index, size))
    assert verify_inclusion(*args, tree.root(size))
    leaf, i, n, proof = mutate(*args)  # type: ignore[operator]
    assert not verify_inclusion(leaf, i, n, proof, tree.root(size))


def test_proof_for_a_single_leaf_tree_is_empty() -> None:
    tree = MerkleTree([leaf_hash(b"only")])
    assert tree.inclusion_proof(0) == []
    assert root_from_inclusion_proof(leaf_hash(b"only"), 0, 1, []) == tree.root()


@pytest.mark.parametrize(("index", "size"), [(-1, 3), (3, 3), (0, 0), (0, 9)])
def test_proofs_outside_the_tree_are_refused(tree: MerkleTree, index: int, size: int) -> None:
    with pytest.raises(ValueError, match="no such leaf"):
        tree.inclusion_proof(index, size)


def test_leaf_hashes_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleTree().append(b"short")


# PROOF(m, D[0:n]) from the same reference vectors.
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_vectors(
    tree: MerkleTree, first: int, second: int, proof: list[str]
) -> None:
    assert [p.hex() for p in tree.consistency_proof(first, second)] == proof
    raw = [bytes.fromhex(p) for p in proof]
    assert verify_consistency(first, second, tree.root(first), tree.root(second), raw)


def test_every_consistency_proof_verifies() -> None:
    tree = MerkleTree([leaf_hash(i.to_bytes(2, "big")) for i in range(33)])
    for second in range(34):
        for first in range(second + 1):
            proof = tree.consistency_proof(first, second)
            assert verify_consistency(first, second, tree.root(first), tree.root(second), proof)


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("other first root", lambda m, n, a, b, p: (m, n, leaf_hash(b"x"), b, p)),
        ("other second root", lambda m, n, a, b, p: (m, n, a, leaf_hash(b"x"), p)),
        ("sizes swapped", lambda m, n, a, b, p: (n, m, b, a, p)),
        ("wrong first size", lambda m, n, a, b, p: (m - 1, n, a, b, p)),
        ("truncated proof", lambda m, n, a, b, p: (m, n, a, b, p[:-1])),
        ("extended proof", lambda m, n, a, b, p: (m, n, a, b, [*p, p[0]])),
        ("altered proof", lambda m, n, a, b, p: (m, n, a, b, [bytes(32), *p[1:]])),
        ("empty proof", lambda m, n, a, b, p: (m, n, a, b, [])),
    ],
)
def test_bad_consistency_proofs_fail(tree: MerkleTree, name: str, mutate: object) -> None:
    args = (6, 8, tree.root(6), tree.root(8), tree.consistency_proof(6, 8))
    assert verify_consistency(*args)
    assert not verify_consistency(*mutate(*args))  # type: ignore[operator]


def test_equal_sizes_need_equal_roots_and_no_proof(tree: MerkleTree) -> None:
    assert verify_consistency(5, 5, tree.root(5), tree.root(5), [])
    assert not verify_consistency(5, 5, tree.root(5), tree.root(4), [])
    assert not verify_consistency(5, 5, tree.root(5), tree.root(5), [tree.root(5)])
