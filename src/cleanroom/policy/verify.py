"""Offline verification of receipts and exported logs.

This module and what it imports (records, merkle, signing) do not use the
Rego engine.

Both functions raise :class:`LogIntegrityError` naming what is wrong (a bad
signature, a removed, altered, reordered or inserted entry) and return what
they verified. The public key is the log key committed in the clean room's
attestation evidence; a PEM string or bytes is accepted too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cleanroom.errors import LogIntegrityError
from cleanroom.policy._chain import chain_problems, sequence_problems
from cleanroom.policy.merkle import MerkleTree, verify_consistency, verify_inclusion
from cleanroom.policy.records import (
    EXPORT_FORMAT,
    Checkpoint,
    LogEntry,
    Receipt,
    proof_from_json,
)
from cleanroom.policy.signing import LogPublicKey, key_id, load_public_key, verify_signature

__all__ = [
    "LogVerification",
    "verify_checkpoint",
    "verify_log",
    "verify_log_consistency",
    "verify_receipt",
]

_MAX_PROBLEMS_IN_MESSAGE = 5


@dataclass(frozen=True)
class LogVerification:
    """What :func:`verify_log` established.

    ``complete`` is true for an unfiltered export: then the entries are
    exactly the log up to the checkpoint, none missing. A filtered export
    proves each entry is in the signed log but cannot prove that none of
    the filter's entries was left out. ``next_after`` is set when the export
    is a page with more after it: ask for the page after that ``seq``.
    """

    checkpoint: Checkpoint
    entries: tuple[LogEntry, ...]
    complete: bool
    filter: Mapping[str, str | None] | None
    next_after: int | None = None


def _key(public_key: LogPublicKey | bytes | str) -> LogPublicKey:
    if isinstance(public_key, bytes | str):
        return load_public_key(public_key)
    return public_key


def _document(doc: str | bytes | Mapping[str, Any], what: str) -> Mapping[str, Any]:
    if isinstance(doc, Mapping):
        return doc
    try:
        parsed = json.loads(doc)
    except (ValueError, UnicodeDecodeError):
        raise LogIntegrityError(f"the {what} is not JSON") from None
    if not isinstance(parsed, Mapping):
        raise LogIntegrityError(f"the {what} is not a JSON object")
    return parsed


def _fail(problems: list[str]) -> LogIntegrityError:
    shown = problems[:_MAX_PROBLEMS_IN_MESSAGE]
    more = len(problems) - len(shown)
    message = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    return LogIntegrityError(message, problems=list(problems))


def verify_checkpoint(checkpoint: Checkpoint, public_key: LogPublicKey | bytes | str) -> None:
    """Check that *checkpoint* was signed by *public_key*'s log."""
    key = _key(public_key)
    if checkpoint.log_id != key_id(key):
        raise LogIntegrityError(
            f"bad signature: the checkpoint names log {checkpoint.log_id}, "
            f"not the given key's {key_id(key)}"
        )
    verify_signature(
        key, checkpoint.algorithm, checkpoint.signed_message(), checkpoint.signature_bytes()
    )


def verify_receipt(
    receipt_json: str | bytes | Mapping[str, Any], public_key: LogPublicKey | bytes | str
) -> LogEntry:
    """Verify a receipt offline and return its entry.

    Checks, in order: the checkpoint's signature under *public_key*; that
    the entry's RFC 9162 inclusion proof leads from the entry's leaf hash to
    the signed root.
    """
    receipt = Receipt.from_json(_document(receipt_json, "receipt"))
    verify_checkpoint(receipt.checkpoint, public_key)
    checkpoint = receipt.checkpoint
    if receipt.entry.seq >= checkpoint.tree_size:
        raise LogIntegrityError(
            f"inserted entry: seq {receipt.entry.seq} is beyond the signed checkpoint "
            f"(tree size {checkpoint.tree_size})"
        )
    proof = [bytes.fromhex(p) for p in receipt.inclusion_proof]
    if not verify_inclusion(
        receipt.entry.leaf_hash(),
        receipt.entry.seq,
        checkpoint.tree_size,
        proof,
        bytes.fromhex(checkpoint.root_hash),
    ):
        raise LogIntegrityError(
            f"altered entry: seq {receipt.entry.seq} is not in the signed log "
            "(its inclusion proof does not lead to the checkpoint's root)"
        )
    return receipt.entry


def verify_log(
    export_json: str | bytes | Mapping[str, Any],
    public_key: LogPublicKey | bytes | str,
    *,
    receipts: Sequence[str | bytes | Mapping[str, Any]] = (),
) -> LogVerification:
    """Verify an exported log offline (see :meth:`DecisionLog.export`).

    *receipts* the verifier kept from earlier requests (signed by the same
    key) are checked against the export: each must verify, its checkpoint
    must not be larger than the export's (a rolled-back log), its entry must
    be in the export unchanged when the export should hold it (it matches
    the filter and, for a page, lies in the page's window), and, for a
    complete export, the export's first entries must lead to the receipt's
    root (no rewritten history).
    """
    doc = _document(export_json, "log export")
    result, after = _verify_export(doc, public_key)
    problems: list[str] = []
    for raw in receipts:
        verify_receipt(raw, public_key)
        receipt = Receipt.from_json(_document(raw, "receipt"))
        problems.extend(_receipt_problems(result, receipt, after))
    if problems:
        raise _fail(problems)
    return result


def _receipt_problems(result: LogVerification, receipt: Receipt, after: int) -> list[str]:
    """What *receipt* shows wrong with the export; *after* is a page's ``after`` (else -1).

    A page holds the filter's entries with ``after < seq <= next_after`` (no
    upper bound on the last page): a receipt outside that window is another
    page's, so its entry is not expected here.
    """
    held, seq = receipt.checkpoint, receipt.entry.seq
    if held.tree_size > result.checkpoint.tree_size:
        return [
            f"rolled-back log: a receipt shows {held.tree_size} entries, "
            f"the export only {result.checkpoint.tree_size}"
        ]
    by_seq = {e.seq: e for e in result.entries}
    flt = result.filter or {}
    in_window = after < seq and (result.next_after is None or seq <= result.next_after)
    expected_here = result.complete or (
        flt.get("instance_id") in (None, receipt.entry.instance_id)
        and flt.get("party") in (None, receipt.entry.party)
        and in_window
    )
    if seq not in by_seq:
        return [f"removed entry: seq {seq}, held in a receipt, is missing"] if expected_here else []
    if by_seq[seq] != receipt.entry:
        return [f"altered entry: seq {seq} differs from the receipt's"]
    if result.complete:
        tree = MerkleTree([e.leaf_hash() for e in result.entries])
        if tree.root(held.tree_size).hex() != held.root_hash:
            return [
                f"rewritten history: the first {held.tree_size} entries do not lead to "
                "the root a receipt holds"
            ]
    return []


def _verify_export(
    doc: Mapping[str, Any], public_key: LogPublicKey | bytes | str
) -> tuple[LogVerification, int]:
    """What the export proves, and its page's ``after`` (-1 when it is not a page)."""
    if doc.get("format") != EXPORT_FORMAT:
        raise LogIntegrityError(f"the log export's format is not {EXPORT_FORMAT!r}")
    checkpoint = Checkpoint.from_json(doc.get("checkpoint"))
    verify_checkpoint(checkpoint, public_key)
    raw_entries = doc.get("entries")
    if not isinstance(raw_entries, list):
        raise LogIntegrityError("malformed log export: entries must be a list")
    entries = [LogEntry.from_json(e) for e in raw_entries]
    flt = doc.get("filter")
    if flt is None:
        _verify_complete(entries, checkpoint)
        ordered = tuple(sorted(entries, key=lambda e: e.seq))
        return LogVerification(checkpoint, ordered, complete=True, filter=None), -1
    return _verify_filtered(doc, flt, entries, checkpoint)


def _verify_complete(entries: list[LogEntry], checkpoint: Checkpoint) -> None:
    problems = sequence_problems(entries, checkpoint.tree_size)
    if problems:
        raise _fail(problems)
    problems = chain_problems(entries, head_hash=checkpoint.head_hash)
    if problems:
        raise _fail(problems)
    tree = MerkleTree([e.leaf_hash() for e in entries])
    if tree.root().hex() != checkpoint.root_hash:
        raise _fail(["altered log: the entries do not lead to the signed root hash"])


def _verify_filtered(
    doc: Mapping[str, Any], flt: Any, entries: list[LogEntry], checkpoint: Checkpoint
) -> tuple[LogVerification, int]:
    if not isinstance(flt, Mapping) or set(flt) != {"instance_id", "party"}:
        raise LogIntegrityError("malformed log export: filter must name instance_id and party")
    instance_id, party = flt["instance_id"], flt["party"]
    if instance_id is None and party is None:
        raise LogIntegrityError("malformed log export: a filter that selects nothing")
    proofs = doc.get("inclusion_proofs")
    if not isinstance(proofs, list) or len(proofs) != len(entries):
        raise LogIntegrityError("malformed log export: one inclusion proof per entry is required")
    after, next_after = _page(doc.get("page"), entries)
    problems: list[str] = []
    root = bytes.fromhex(checkpoint.root_hash)
    previous: int | None = None
    for entry, raw_proof in zip(entries, proofs, strict=True):
        if previous is not None and entry.seq == previous:
            problems.append(f"inserted entry: seq {entry.seq} appears twice")
        elif previous is not None and entry.seq < previous:
            problems.append(f"reordered entries: seq {entry.seq} comes after seq {previous}")
        previous = entry.seq
        if entry.seq <= after:
            problems.append(f"inserted entry: seq {entry.seq} is before the page (after {after})")
        if (instance_id is not None and entry.instance_id != instance_id) or (
            party is not None and entry.party != party
        ):
            problems.append(f"inserted entry: seq {entry.seq} is outside the export's filter")
        if entry.seq >= checkpoint.tree_size:
            problems.append(
                f"inserted entry: seq {entry.seq} is beyond the signed checkpoint "
                f"(tree size {checkpoint.tree_size})"
            )
            continue
        proof = [bytes.fromhex(p) for p in proof_from_json(raw_proof, "log export")]
        if not verify_inclusion(entry.leaf_hash(), entry.seq, checkpoint.tree_size, proof, root):
            problems.append(
                f"altered or inserted entry: seq {entry.seq} is not in the signed log "
                "(its inclusion proof does not lead to the checkpoint's root)"
            )
    if problems:
        raise _fail(problems)
    verified = LogVerification(
        checkpoint,
        tuple(entries),
        complete=False,
        filter={"instance_id": instance_id, "party": party},
        next_after=next_after,
    )
    return verified, after


def _page(page: Any, entries: list[LogEntry]) -> tuple[int, int | None]:
    """(after, next_after) of a paged export; (-1, None) for a whole one."""
    if page is None:
        return -1, None
    if not isinstance(page, Mapping) or set(page) != {"after", "limit", "next_after"}:
        raise LogIntegrityError("malformed log export: page must name after, limit, next_after")
    after, limit, next_after = page["after"], page["limit"], page["next_after"]
    if type(after) is not int or type(limit) is not int or limit < 1 or after < -1:
        raise LogIntegrityError("malformed log export: a page's after and limit are integers")
    if len(entries) > limit:
        raise LogIntegrityError(f"malformed log export: more than {limit} entries in a page")
    if next_after is not None and (
        type(next_after) is not int or not entries or next_after != entries[-1].seq
    ):
        raise LogIntegrityError("malformed log export: next_after is not the page's last entry")
    return after, next_after


def verify_log_consistency(
    older: Checkpoint | Mapping[str, Any],
    newer: Checkpoint | Mapping[str, Any],
    proof: Sequence[str],
    public_key: LogPublicKey | bytes | str,
) -> None:
    """Check that the log *newer* signs extends the log *older* signs.

    Both checkpoints must verify under *public_key*; *proof* is
    :meth:`DecisionLog.consistency_proof` (RFC 9162 §2.1.4). Raises
    :class:`LogIntegrityError` on a rolled-back or forked log.
    """
    old = older if isinstance(older, Checkpoint) else Checkpoint.from_json(older)
    new = newer if isinstance(newer, Checkpoint) else Checkpoint.from_json(newer)
    verify_checkpoint(old, public_key)
    verify_checkpoint(new, public_key)
    if old.tree_size > new.tree_size:
        raise LogIntegrityError(
            f"rolled-back log: a checkpoint of {old.tree_size} entries is followed by one "
            f"of {new.tree_size}"
        )
    hashes = [bytes.fromhex(p) for p in proof_from_json(list(proof), "consistency proof")]
    if not verify_consistency(
        old.tree_size,
        new.tree_size,
        bytes.fromhex(old.root_hash),
        bytes.fromhex(new.root_hash),
        hashes,
    ):
        raise LogIntegrityError(
            f"rewritten history: the log of {new.tree_size} entries does not extend the log "
            f"of {old.tree_size} entries (the consistency proof fails)"
        )
