"""``cleanroom log verify``: check an exported decision log or a receipt offline.

The log key is given directly (``--key``, a PEM public key) or taken from an
attestation document saved from ``GET /v1/instances/{id}/attestation``
(``--evidence``). With ``--evidence`` the document is verified first, against
``--attestation-policy``: the TEE report's signature and claims, and that its
REPORT_DATA commits to the configuration that names the key
(``config.keys.signing``). Only a key that passed that check is used.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cleanroom.errors import ConfigurationError, LogIntegrityError
from cleanroom.policy import (
    LogVerification,
    load_public_key,
    verify_log,
    verify_receipt,
)
from cleanroom.policy.records import RECEIPT_FORMAT
from cleanroom.policy.signing import LogPublicKey, key_id

__all__ = ["register", "run_verify"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "log",
        help="work with decision logs and receipts",
        description="Decision logs and receipts of a clean room.",
    )
    commands = parser.add_subparsers(dest="log_command", metavar="COMMAND", required=True)
    verify = commands.add_parser(
        "verify",
        help="verify an exported log or a receipt offline",
        description="Verify an exported decision log or a receipt against the clean room's log "
        "key: the signed checkpoint, and every entry's place in the log. Names a removed, "
        "altered, reordered or inserted entry and exits 1 if anything is wrong.",
    )
    verify.add_argument("file", type=Path, metavar="FILE", help="exported log or receipt (JSON)")
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("--key", type=Path, metavar="PEM", help="the log public key, PEM")
    source.add_argument(
        "--evidence",
        type=Path,
        metavar="EVIDENCE_JSON",
        help="an attestation document of the clean room; its configuration names the log key",
    )
    verify.add_argument(
        "--attestation-policy",
        type=Path,
        metavar="FILE",
        help="the attestation policy the evidence must satisfy (required with --evidence)",
    )
    verify.add_argument(
        "--receipt",
        type=Path,
        action="append",
        default=[],
        metavar="RECEIPT_JSON",
        help="a receipt kept from an earlier request; the exported log must still hold its "
        "entry and history (repeatable; exported logs only)",
    )
    verify.set_defaults(handler=run_verify)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} {str(path)!r}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise ConfigurationError(f"the {what} {str(path)!r} is not JSON") from None


def key_from_attestation(doc: Any, policy_path: Path) -> LogPublicKey:
    """The log key named by a verified attestation document.

    Verifies the evidence against the policy with REPORT_DATA recomputed
    from the document's HPKE key, nonce and configuration (the binding of
    :mod:`cleanroom.crypto.binding`), then reads ``config.keys.signing``.
    """
    from cleanroom.attestation import AttestationPolicy, Evidence, verify_evidence
    from cleanroom.crypto.binding import config_digest, report_data
    from cleanroom.errors import AttestationError

    policy = AttestationPolicy.from_file(policy_path)
    try:
        if not isinstance(doc, Mapping):
            raise TypeError("not a JSON object")
        evidence = Evidence.from_json(doc["evidence"])
        config = doc["config"]
        if not isinstance(config, dict):
            raise TypeError("config is not an object")
        hpke_raw = base64.b64decode(doc["hpke_public_key"], validate=True)
        nonce = bytes.fromhex(doc["nonce"])
        keys = config["keys"]
        signing_pem = keys["signing"]
        if not isinstance(signing_pem, str):
            raise TypeError("config.keys.signing is not a string")
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise AttestationError(f"the attestation document is malformed: {exc}") from None
    expected = report_data(
        hpke_public_key=hpke_raw, nonce=nonce, config_digest=config_digest(config)
    )
    verify_evidence(evidence, policy, report_data=expected)
    if keys.get("hpke") != base64.b64encode(hpke_raw).decode():
        raise AttestationError("the attested configuration names another HPKE key than served")
    try:
        return load_public_key(signing_pem)
    except ConfigurationError as exc:
        raise AttestationError(f"config.keys.signing: {exc.message}") from None


def _describe_log(result: LogVerification) -> str:
    cp = result.checkpoint
    lines = [
        f"OK: log export verified: {len(result.entries)} entries, "
        f"checkpoint of {cp.tree_size} entries signed {cp.time} by log {cp.log_id}",
        f"root hash {cp.root_hash}",
    ]
    if result.complete:
        lines.append("complete: no entry is missing, altered, reordered or inserted")
    else:
        flt = result.filter or {}
        shown = ", ".join(f"{k}={v}" for k, v in flt.items() if v is not None)
        lines.append(
            f"filtered ({shown}): each entry is in the signed log; a filtered export "
            "cannot show that none of its entries was left out"
        )
    allowed = sum(1 for e in result.entries if e.allowed)
    lines.append(f"decisions: {allowed} allowed, {len(result.entries) - allowed} denied")
    return "\n".join(lines)


def run_verify(args: argparse.Namespace) -> int:
    if args.evidence is not None:
        if args.attestation_policy is None:
            raise ConfigurationError(
                "--evidence needs --attestation-policy",
                remedy="name the attestation policy the evidence must satisfy",
            )
        key = key_from_attestation(_read_json(args.evidence, "evidence"), args.attestation_policy)
    else:
        try:
            pem = args.key.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the key {str(args.key)!r}: {exc.strerror}"
            ) from None
        key = load_public_key(pem)
    doc = _read_json(args.file, "file")
    kind = doc.get("format") if isinstance(doc, Mapping) else None
    if kind == RECEIPT_FORMAT:
        if args.receipt:
            raise ConfigurationError("--receipt checks an exported log, not a receipt")
        entry = verify_receipt(doc, key)
        print(
            f"OK: receipt verified: entry {entry.seq} ({entry.decision} {entry.action} by "
            f"{entry.party} on instance {entry.instance_id} at {entry.time}) is in the log "
            f"signed by {key_id(key)}"
        )
        if entry.reason:
            print(f"reason: {entry.reason}")
        return 0
    if isinstance(doc, Mapping) and "entries" in doc:
        receipts = [_read_json(path, "receipt") for path in args.receipt]
        print(_describe_log(verify_log(doc, key, receipts=receipts)))
        if receipts:
            print(f"consistent with {len(receipts)} receipt(s)")
        return 0
    raise LogIntegrityError(f"{str(args.file)!r} is neither an exported log nor a receipt")
