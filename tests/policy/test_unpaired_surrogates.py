"""Lone UTF-16 surrogates: refused as errors of this package, never a stray UnicodeEncodeError.

JSON's ``\\u`` escapes can write ``"\\ud800"``, a string with no UTF-8 form.
In a policy input it denies as an evaluation error; in a deny reason it is
replaced so the deny is still logged; in a receipt or an export it is
``LogIntegrityError``.
"""

from __future__ import annotations

import copy
import functools
import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.errors import InvalidRequest, LogIntegrityError
from cleanroom.policy import (
    DecisionLog,
    PolicyBundle,
    content_digest,
    engine,
    verify_log,
    verify_receipt,
)
from cleanroom.policy._canonical import canonical_json
from cleanroom.policy._rego_input import to_input

LONE = "\ud800"
Doc = dict[str, Any]

# Reads context.n only: the other mutations are in fields it never reads.
READS_N = 'package cleanroom\nallow_ingress if { input.context.n != "" }\n'


def _ingress() -> Doc:
    return {"user": "bank-a@example.com", "context": {"n": "x", "other": "y"}}


@pytest.mark.parametrize(
    ("name", "mutation"),
    [
        ("in a field the policy reads", lambda d: d["context"].update(n=LONE)),
        ("low surrogate after text", lambda d: d["context"].update(n="a\udc80b")),
        ("in a field it does not read", lambda d: d["context"].update(other=LONE)),
        ("in a key", lambda d: d["context"].update({LONE: 1})),
        ("in a list", lambda d: d["context"].update(other=["ok", LONE])),
        ("with a NUL", lambda d: d["context"].update(n=LONE + "\x00")),
    ],
)
@pytest.mark.parametrize("fast", [True, False], ids=["direct", "regopy-converter"])
def test_a_surrogate_in_the_input_denies_as_an_evaluation_error(
    name: str, mutation: Callable[[Doc], None], fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "to_input", functools.partial(to_input, fast=fast))
    bundle = PolicyBundle.compile(READS_N)
    doc = _ingress()
    assert bundle.evaluate_ingress(doc).allowed
    mutation(doc)
    decision = bundle.evaluate_ingress(doc)
    assert not decision.allowed
    assert decision.evaluation_error
    assert decision.reason is not None
    assert decision.reason.startswith("policy evaluation error")


def test_a_surrogate_from_a_json_context_denies() -> None:
    """As a sealed request's context arrives: JSON text with a ``\\u`` escape."""
    context = json.loads('{"n": "\\ud800"}')
    decision = PolicyBundle.compile(READS_N).evaluate_ingress({"user": "a", "context": context})
    assert (decision.allowed, decision.evaluation_error) == (False, True)


def _log(conn: sqlite3.Connection, key: ed25519.Ed25519PrivateKey) -> DecisionLog:
    return DecisionLog(conn, key)


def _append(log: DecisionLog, reason: str | None = None, party: str = "bank-a@example.com") -> Any:
    return log.append(
        "inst-0",
        "predict",
        party,
        reason is None,
        reason,
        content_digest(b"policy"),
        None,
        content_digest(b"request"),
        None,
    )


@pytest.mark.parametrize(
    ("name", "deny_reason", "logged"),
    [
        ("a string", '"over \\ud800 budget"', "over ? budget"),
        ("a set", '{"b \\udfff", "a"}', "a; b ?"),
    ],
)
def test_a_deny_reason_with_a_surrogate_is_logged(
    conn: sqlite3.Connection,
    log_key: ed25519.Ed25519PrivateKey,
    name: str,
    deny_reason: str,
    logged: str,
) -> None:
    bundle = PolicyBundle.compile(
        f"package cleanroom\nallow_ingress := false\ndeny_reason := {deny_reason}\n"
    )
    decision = bundle.evaluate_ingress({"user": "a"})
    assert (decision.allowed, decision.reason) == (False, logged)
    log = _log(conn, log_key)
    entry = log.append(
        "inst-0",
        "predict",
        "bank-a@example.com",
        decision,
        None,
        bundle.digest,
        None,
        content_digest(b"request"),
        None,
    )
    assert entry.reason == logged
    assert verify_receipt(log.receipt_for(entry).to_json(), log_key.public_key()) == entry


def test_a_reason_given_with_a_surrogate_is_logged_replaced(
    conn: sqlite3.Connection, log_key: ed25519.Ed25519PrivateKey
) -> None:
    log = _log(conn, log_key)
    entry = _append(log, reason=f"denied {LONE}")
    assert entry.reason == "denied ?"
    assert log.size == 1
    verify_log(log.export(), log_key.public_key())


def test_a_name_with_a_surrogate_is_an_invalid_request(
    conn: sqlite3.Connection, log_key: ed25519.Ed25519PrivateKey
) -> None:
    log = _log(conn, log_key)
    with pytest.raises(InvalidRequest, match="unpaired surrogate"):
        _append(log, party=f"bank-a{LONE}@example.com")
    assert log.size == 0
    with pytest.raises(InvalidRequest, match="unpaired surrogate"):
        canonical_json({"a": [LONE]})


def _in_entry(field: str) -> Callable[[Doc], None]:
    return lambda d: d["entry"].update({field: f"x{LONE}"})


@pytest.mark.parametrize(
    ("name", "mutate", "message"),
    [
        ("party", _in_entry("party"), "party holds an unpaired surrogate"),
        ("instance", _in_entry("instance_id"), "instance_id holds an unpaired surrogate"),
        ("reason", _in_entry("reason"), "reason holds an unpaired surrogate"),
        ("action", _in_entry("action"), "action holds an unpaired surrogate"),
        (
            "checkpoint algorithm",
            lambda d: d["checkpoint"].update(algorithm=LONE),
            "algorithm holds an unpaired surrogate",
        ),
    ],
)
@pytest.mark.parametrize("as_text", [True, False], ids=["json-text", "mapping"])
def test_a_receipt_with_a_surrogate_is_a_log_integrity_error(
    conn: sqlite3.Connection,
    log_key: ed25519.Ed25519PrivateKey,
    name: str,
    mutate: Callable[[Doc], None],
    message: str,
    as_text: bool,
) -> None:
    log = _log(conn, log_key)
    receipt = log.receipt_for(_append(log, reason="denied")).to_json()
    doctored = copy.deepcopy(receipt)
    mutate(doctored)
    sent: Doc | str = json.dumps(doctored) if as_text else doctored
    with pytest.raises(LogIntegrityError, match=message):
        verify_receipt(sent, log_key.public_key())
    # As a receipt kept for a log check too.
    with pytest.raises(LogIntegrityError, match=message):
        verify_log(log.export(), log_key.public_key(), receipts=[sent])


@pytest.mark.parametrize("filtered", [False, True], ids=["complete", "filtered"])
def test_an_export_with_a_surrogate_is_a_log_integrity_error(
    conn: sqlite3.Connection, log_key: ed25519.Ed25519PrivateKey, filtered: bool
) -> None:
    log = _log(conn, log_key)
    _append(log)
    export = log.export(party="bank-a@example.com") if filtered else log.export()
    export["entries"][0]["party"] = f"bank-a{LONE}@example.com"
    with pytest.raises(LogIntegrityError, match="party holds an unpaired surrogate"):
        verify_log(json.dumps(export), log_key.public_key())
