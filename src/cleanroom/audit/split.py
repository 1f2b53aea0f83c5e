"""A record pool split at random into members and non-members, fixed by the pool itself.

A membership audit compares the model on its training records (members) and
on records it never saw (non-members). Its bounds hold only if which records
trained the model was decided at random: any other difference between the
two sets (a later hold-out set, another label mix) reads as leakage, or hides
it. An audit spec that names a pool (``datasets.pool``) fixes the split
before training: the model owner trains on :func:`split_pool`'s members, and
the clean room, given the pool, derives the same two sets and checks them
against the spec's commitments.

The split depends on nothing but the pool: record *i* gets the key
SHA-256(domain || pool commitment || i as 8 bytes, big-endian), and the
⌈n/2⌉ records with the smallest keys are the members, in pool order. No
seed anyone could choose, and the same split with any numpy version.
Grinding for a convenient split means changing the pool, and each try gives
an independent random split.
"""

from __future__ import annotations

import hashlib

import numpy as np

from cleanroom.audit.data import LabelledRecords
from cleanroom.errors import AuditError

__all__ = ["split_pool"]

_SPLIT_DOMAIN = b"cleanroom-audit-pool-split/v1\n"


def split_pool(pool: LabelledRecords) -> tuple[LabelledRecords, LabelledRecords]:
    """(members, non-members) of *pool*: ⌈n/2⌉ and ⌊n/2⌋ records, each in pool order."""
    n = len(pool)
    if n < 2:
        raise AuditError("a pool needs at least two records to split")
    prefix = hashlib.sha256(_SPLIT_DOMAIN + pool.commitment().encode("ascii"))
    keys = []
    for index in range(n):
        h = prefix.copy()
        h.update(index.to_bytes(8, "big"))
        keys.append(h.digest())
    order = sorted(range(n), key=keys.__getitem__)
    chosen = np.zeros(n, dtype=np.bool_)
    chosen[order[: (n + 1) // 2]] = True
    members = np.flatnonzero(chosen)
    nonmembers = np.flatnonzero(~chosen)
    return pool.subset(members), pool.subset(nonmembers)
