"""The Merkle tree of the decision log, as defined in RFC 9162 §2.1.

Leaf and node hashes are domain-separated (§2.1.1): a leaf is
``SHA-256(0x00 || entry)`` and an interior node ``SHA-256(0x01 || left ||
right)``; the tree of n leaves splits at the largest power of two below n.
Inclusion proofs are generated as in §2.1.3.1 and verified with the
algorithm of §2.1.3.2; consistency proofs (one tree is a prefix of a later
one) as in §2.1.4.1 and §2.1.4.2.

:class:`MerkleTree` keeps the hash of every complete power-of-two subtree, so
appending a leaf, computing a root and producing an inclusion proof each
take O(log² n) hashes instead of rehashing the whole log.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = [
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

_EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of a leaf."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only RFC 9162 tree over leaf hashes."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        # _levels[k][i] is the hash of the complete subtree over the leaves
        # [i * 2**k, (i + 1) * 2**k).
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def append(self, leaf: bytes) -> None:
        if len(leaf) != 32:
            raise ValueError("a leaf hash is 32 bytes")
        self._levels[0].append(leaf)
        level, index = 0, self.size - 1
        # Each time the new leaf completes a pair, the parent subtree is complete.
        while index % 2 == 1:
            parent = node_hash(self._levels[level][index - 1], self._levels[level][index])
            level += 1
            index //= 2
            if len(self._levels) == level:
                self._levels.append([])
            self._levels[level].append(parent)

    def _subtree(self, start: int, size: int) -> bytes:
        if size & (size - 1) == 0 and start % size == 0:
            return self._levels[size.bit_length() - 1][start // size]
        k = _split(size)
        return node_hash(self._subtree(start, k), self._subtree(start + k, size - k))

    def root(self, size: int | None = None) -> bytes:
        """MTH(D[0:size]) of RFC 9162 §2.1.1; the whole tree by default."""
        n = self.size if size is None else size
        if not 0 <= n <= self.size:
            raise ValueError("no such tree size")
        if n == 0:
            return _EMPTY_ROOT
        # D[0:n] splits into complete subtrees, one per set bit of n, largest
        # first; MTH folds them from the right (RFC 9162 §2.1.1's recursion).
        complete: list[bytes] = []
        start = 0
        for level in range(n.bit_length() - 1, -1, -1):
            if n >> level & 1:
                complete.append(self._levels[level][start >> level])
                start += 1 << level
        root = complete.pop()
        while complete:
            root = node_hash(complete.pop(), root)
        return root

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1."""
        n = self.size if size is None else size
        if not 0 <= index < n <= self.size:
            raise ValueError("no such leaf in a tree of that size")
        return self._path(index, 0, n)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1 (empty when first is 0)."""
        n = self.size if second is None else second
        if not 0 <= first <= n <= self.size:
            raise ValueError("no such pair of tree sizes")
        if first in (0, n):
            return []
        return self._subproof(first, 0, n, True)

    def _subproof(self, m: int, start: int, n: int, complete: bool) -> list[bytes]:
        if m == n:
            return [] if complete else [self._subtree(start, n)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, k, complete), self._subtree(start + k, n - k)]
        return [*self._subproof(m - k, start + k, n - k, False), self._subtree(start, k)]

    def _path(self, index: int, start: int, size: int) -> list[bytes]:
        if size == 1:
            return []
        k = _split(size)
        if index < k:
            return [*self._path(index, start, k), self._subtree(start + k, size - k)]
        return [*self._path(index - k, start + k, size - k), self._subtree(start, k)]


def root_from_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or ``None``.

    ``None`` means the proof cannot be valid for that index and size (wrong
    length or index out of range), whatever the root.
    """
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether *proof* shows *leaf* at *index* in the tree of *size* with *root*."""
    computed = root_from_inclusion_proof(leaf, index, size, proof)
    return computed is not None and hmac.compare_digest(computed, root)


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether *proof* shows the tree of *first* leaves is a prefix of the tree
    of *second* leaves (RFC 9162 §2.1.4.2). An empty tree is a prefix of any."""
    if not 0 <= first <= second:
        return False
    if first == 0:
        return not proof
    if first == second:
        return not proof and hmac.compare_digest(first_root, second_root)
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, first_root) and hmac.compare_digest(sr, second_root)
