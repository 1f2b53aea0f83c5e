"""Remembered decisions: only for what the plan reads, never a stale allow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.policy.documents import INSTANCE, ingress_doc

from cleanroom.errors import PolicyDenied
from cleanroom.policy import DEFAULT_POLICY, PolicyBundle, egress_input
from cleanroom.policy._decisions import MAX_KEY_BYTES, DecisionCache, cache_key
from cleanroom.policy._plan import InputReads
from cleanroom.server.gate import Gate
from cleanroom.server.store import InstanceRecord


def _compile(body: str) -> PolicyBundle:
    return PolicyBundle.compile(f"package cleanroom\ndefault allow_ingress := false\n{body}\n")


class Counting:
    """Counts the evaluations that reach the engine."""

    def __init__(self, bundle: PolicyBundle, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs = 0
        run = bundle._run

        def counted(*args: Any) -> Any:
            self.runs += 1
            return run(*args)

        monkeypatch.setattr(bundle, "_run", counted)


def test_an_unchanged_document_is_answered_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = PolicyBundle.compile(DEFAULT_POLICY)
    engine = Counting(bundle, monkeypatch)
    first = bundle.evaluate_ingress(ingress_doc())
    # Fields the default policy cannot read change with every request.
    again = [
        bundle.evaluate_ingress(ingress_doc(queries=q, now_ns=q, context={"q": q}))
        for q in range(5)
    ]
    assert first.allowed
    assert not first.cached
    assert all(d.allowed and d.cached for d in again)
    assert engine.runs == 1


def test_the_request_after_the_quota_is_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _compile(
        'allow_ingress if { input.user == "user@example.com"; input.usage.queries < 3 }'
    )
    assert ("usage", "queries") in (bundle.ingress_reads.paths or ())
    engine = Counting(bundle, monkeypatch)
    answers = [bundle.evaluate_ingress(ingress_doc(queries=q)).allowed for q in (0, 1, 2, 3, 0, 3)]
    assert answers == [True, True, True, False, True, False]
    assert engine.runs == 4  # the repeated documents 0 and 3 were remembered


def test_a_different_context_gets_its_own_decision() -> None:
    bundle = _compile("allow_ingress if input.context.consent == true")
    assert bundle.evaluate_ingress(ingress_doc(context={"consent": True})).allowed
    refused = bundle.evaluate_ingress(ingress_doc(context={"consent": False}))
    assert not refused.allowed
    assert not refused.cached
    assert not bundle.evaluate_ingress(ingress_doc(context={})).allowed
    assert not bundle.evaluate_ingress(ingress_doc(context={"consent": "true"})).allowed
    assert bundle.evaluate_ingress(ingress_doc(context={"consent": True})).cached


def test_a_policy_reading_the_clock_of_the_request_sees_every_request() -> None:
    bundle = _compile("allow_ingress if input.now_ns < 100")
    assert bundle.evaluate_ingress(ingress_doc(now_ns=99)).allowed
    assert not bundle.evaluate_ingress(ingress_doc(now_ns=100)).allowed


def test_a_policy_reading_the_whole_document_sees_every_field() -> None:
    bundle = _compile('allow_ingress if { some k, v in input; k == "usage"; v.queries < 1 }')
    assert bundle.ingress_reads.paths is None
    assert bundle.evaluate_ingress(ingress_doc(queries=0)).allowed
    assert not bundle.evaluate_ingress(ingress_doc(queries=1)).allowed


def test_non_deterministic_policies_are_never_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _compile("allow_ingress if time.now_ns() > 0")
    engine = Counting(bundle, monkeypatch)
    decisions = [bundle.evaluate_ingress(ingress_doc()) for _ in range(3)]
    assert all(d.allowed and not d.cached for d in decisions)
    assert engine.runs == 3


def test_evaluation_errors_are_never_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _compile("allow_ingress if 1 / input.usage.queries > 0")
    engine = Counting(bundle, monkeypatch)
    for _ in range(2):
        decision = bundle.evaluate_ingress(ingress_doc(queries=0))
        assert decision.evaluation_error
        assert not decision.cached
    assert engine.runs == 2
    assert bundle.evaluate_ingress(ingress_doc(queries=1)).allowed


def test_an_invalid_document_denies_even_where_the_policy_does_not_read() -> None:
    bundle = PolicyBundle.compile(DEFAULT_POLICY)
    assert bundle.evaluate_ingress(ingress_doc()).allowed
    bad = ingress_doc(context={"x": float("nan")})
    decision = bundle.evaluate_ingress(bad)
    assert not decision.allowed
    assert decision.evaluation_error


def test_a_constant_egress_is_evaluated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """No egress rule reads the input: the default decides, whatever the outputs."""
    bundle = PolicyBundle.compile(
        "package cleanroom\ndefault allow_egress := true\n"
        'allow_ingress if input.user == "user@example.com"\n'
    )
    assert bundle.egress_reads == InputReads(frozenset(), deterministic=True)
    engine = Counting(bundle, monkeypatch)
    for i in range(4):
        doc = egress_input(
            action="predict",
            user=f"anyone-{i}@example.com",
            instance=INSTANCE,
            queries=i,
            outputs={"y": np.full((2,), i, dtype=np.float32)},
        )
        assert bundle.evaluate_egress(doc).allowed
    assert engine.runs == 1


def test_cache_keys_tell_apart_what_the_engine_tells_apart() -> None:
    keys = {cache_key(d) for d in ({"a": 1}, {"a": 1.0}, {"a": True}, {"a": "1"}, {"a": [1]})}
    assert len(keys) == 5
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})
    assert cache_key({"a": "x" * MAX_KEY_BYTES}) is None


def test_the_cache_is_bounded() -> None:
    cache: DecisionCache[int] = DecisionCache(max_entries=2)
    for i in range(3):
        cache.put(str(i), i)
    assert len(cache) == 2
    assert cache.get("0") is None
    assert cache.get("2") == 2


def test_a_policy_change_is_a_new_decision(tmp_path: Path) -> None:
    gate = Gate(tmp_path / "log.db", ed25519.Ed25519PrivateKey.generate())
    allow = 'package cleanroom\nallow_ingress if input.user == "user@example.com"\n'
    deny = 'package cleanroom\nallow_ingress if input.user == "someone-else@example.com"\n'

    def record(policy: str) -> InstanceRecord:
        return InstanceRecord(
            id="inst-1",
            name="n",
            owner="owner@example.com",
            format="onnx",
            users=("user@example.com",),
            created=0,
            model_digest=None,
            model_size=None,
            model_signature=None,
            options={"policy": policy},
        )

    digest = "sha256:" + "0" * 64
    gate.ingress(record(allow), "user@example.com", "predict", digest, payload_nbytes=1)
    with pytest.raises(PolicyDenied):
        gate.ingress(record(deny), "user@example.com", "predict", digest, payload_nbytes=1)
    assert [e["decision"] for e in gate.log.export()["entries"]] == ["deny"]
