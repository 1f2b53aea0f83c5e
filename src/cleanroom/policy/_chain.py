"""Diagnosis of a sequence of log entries against its hash chain.

Used both when the log reloads its own storage and when an exported log is
verified offline, so the two name problems the same way.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

from cleanroom.policy.records import GENESIS_HASH, LogEntry

__all__ = ["chain_problems", "sequence_problems"]


def sequence_problems(entries: Sequence[LogEntry], tree_size: int) -> list[str]:
    """What is wrong with the seq numbers of a complete log of *tree_size* entries.

    Names inserted entries (a seq seen twice, or beyond the signed size),
    removed entries (a seq missing) and reordered entries (out of order).
    """
    problems: list[str] = []
    seqs = [e.seq for e in entries]
    counts = Counter(seqs)
    for seq in sorted(s for s, n in counts.items() if n > 1):
        problems.append(f"inserted entry: seq {seq} appears {counts[seq]} times")
    for seq in sorted(s for s in counts if s >= tree_size):
        problems.append(
            f"inserted entry: seq {seq} is beyond the signed checkpoint (tree size {tree_size})"
        )
    missing = sorted(set(range(tree_size)) - set(counts))
    for seq in missing[:20]:
        problems.append(f"removed entry: seq {seq} is missing")
    if len(missing) > 20:
        problems.append(f"removed entries: {len(missing) - 20} more seq numbers are missing")
    if not problems:
        for before, after in itertools.pairwise(seqs):
            if after < before:
                problems.append(f"reordered entries: seq {after} comes after seq {before}")
                break
    return problems


def chain_problems(
    entries: Sequence[LogEntry],
    *,
    first_seq: int = 0,
    prev_hash: str = GENESIS_HASH,
    head_hash: str | None = None,
) -> list[str]:
    """What is wrong with the hash chain of *entries*, given in seq order.

    Entry i must have seq ``first_seq + i`` and a ``prev_hash`` equal to the
    leaf hash of entry i - 1 (*prev_hash* for the first). *head_hash*, when
    given, is what the last entry must hash to (the signed checkpoint's
    head). A broken link at i alone means entry i - 1 changed; a broken link
    at i and at i + 1 means entry i's own ``prev_hash`` changed.
    """
    problems: list[str] = []
    hashes = [e.leaf_hash().hex() for e in entries]
    position = {h: e.seq for h, e in zip(hashes, entries, strict=True)}
    links = [prev_hash, *hashes]
    # expected[i] is what entries[i].prev_hash must be; the head comes last.
    found = [e.prev_hash for e in entries]
    if head_hash is not None:
        found.append(head_hash)
    broken = [links[i] != found[i] for i in range(len(found))]
    for i, entry in enumerate(entries):
        if entry.seq != first_seq + i:
            problems.append(f"entry at position {i} has seq {entry.seq}, expected {first_seq + i}")
    i = 0
    while i < len(found):
        if not broken[i]:
            i += 1
            continue
        own_link_changed = i < len(entries) and i + 1 < len(found) and broken[i + 1]
        if own_link_changed:
            target = position.get(found[i])
            if target is not None:
                problems.append(
                    f"reordered entries: seq {entries[i].seq} is chained after seq {target}"
                )
            else:
                problems.append(f"altered entry: the prev_hash of seq {entries[i].seq} was changed")
            i += 2
            continue
        if i == 0:
            problems.append(f"altered entry: seq {entries[0].seq} does not start the chain")
        elif i == len(entries):
            problems.append(
                f"altered entry: seq {entries[i - 1].seq} does not hash to the signed head"
            )
        else:
            problems.append(
                f"altered entry: seq {entries[i - 1].seq} does not hash to the prev_hash "
                f"recorded in seq {entries[i].seq}"
            )
        i += 1
    return problems
