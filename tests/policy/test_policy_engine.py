"""PolicyBundle: compile once, evaluate per request, fail closed."""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np
import pytest

from cleanroom.errors import PolicyError
from cleanroom.policy import (
    DEFAULT_POLICY,
    InstanceInfo,
    PolicyBundle,
    egress_input,
    engine,
    ingress_input,
    policy_digest,
)
from cleanroom.policy._rego_input import to_input

INSTANCE = InstanceInfo(id="inst-1", owner="lender@example.com", users=["bank-a@example.com"])

# Allow-list, query budget, input schema and output minimisation in one module.
LENDING_POLICY = """
package cleanroom

banks := {"bank-a@example.com", "bank-b@example.com"}

max_queries := 3

default allow_ingress := false

allow_ingress if {
	input.user in banks
	input.action == "predict"
	input.usage.queries < max_queries
	schema_ok
}

schema_ok if {
	input.request.names == ["features"]
	input.request.inputs.features.dtype == "float32"
	input.request.inputs.features.shape == [1, 8]
}

default allow_egress := false

allow_egress if {
	input.user in banks
	only_permitted_outputs
	score_in_range
}

only_permitted_outputs if {
	every name in input.response.names { name in {"decision", "score"} }
}

score_in_range if {
	every v in input.response.outputs.score.values { is_number(v); v >= 0; v <= 1 }
}

deny_reason contains "the caller is not a named bank" if not input.user in banks

deny_reason contains "the query budget is exhausted" if {
	input.direction == "ingress"
	input.usage.queries >= max_queries
}

deny_reason contains "the input does not match the schema" if {
	input.direction == "ingress"
	not schema_ok
}

deny_reason contains "an output is not permitted to leave" if {
	input.direction == "egress"
	not only_permitted_outputs
}

deny_reason contains "the score is out of range" if {
	input.direction == "egress"
	not score_in_range
}
"""

FEATURES = np.zeros((1, 8), dtype=np.float32)


@pytest.fixture(scope="module")
def lending() -> PolicyBundle:
    return PolicyBundle.compile(LENDING_POLICY)


def _ingress(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "action": "predict",
        "user": "bank-a@example.com",
        "instance": INSTANCE,
        "queries": 0,
        "inputs": {"features": FEATURES},
        "now_ns": 1,
    }
    args.update(changes)
    return ingress_input(**args)


def _egress(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "action": "predict",
        "user": "bank-a@example.com",
        "instance": INSTANCE,
        "queries": 0,
        "inputs": {"features": FEATURES},
        "outputs": {
            "decision": np.array([1], dtype=np.int64),
            "score": np.array([0.75], dtype=np.float32),
        },
        "now_ns": 1,
    }
    args.update(changes)
    return egress_input(**args)


# ---------------------------------------------------------------- compile


def test_compile_gives_the_documented_digest() -> None:
    bundle = PolicyBundle.compile(LENDING_POLICY)
    assert bundle.digest == policy_digest(LENDING_POLICY)
    assert bundle.digest.startswith("sha256:")
    assert len(bundle.digest) == len("sha256:") + 64
    assert bundle.source == LENDING_POLICY


def test_digest_changes_with_any_byte_of_the_module() -> None:
    changed = LENDING_POLICY.replace("max_queries := 3", "max_queries := 4")
    assert PolicyBundle.compile(changed).digest != PolicyBundle.compile(LENDING_POLICY).digest


def test_digest_is_sha256_over_the_format_marker_and_the_text() -> None:
    import hashlib

    expected = hashlib.sha256(b"cleanroom-policy-bundle/1\n" + DEFAULT_POLICY.encode()).hexdigest()
    assert PolicyBundle.compile(DEFAULT_POLICY).digest == "sha256:" + expected


@pytest.mark.parametrize(
    ("name", "source", "message"),
    [
        ("syntax error", "package cleanroom\n\nallow_ingress if {\n", "does not compile"),
        (
            "bad assignment",
            "package cleanroom\n\nallow_ingress if {\n  x := \n}\n",
            "policy.rego:4",
        ),
        ("other package", "package other\n\nallow_ingress := true\n", "package cleanroom"),
        ("no package", "allow_ingress := true\n", "package cleanroom"),
        ("empty", "", "package cleanroom"),
        ("sub-package", "package cleanroom.extra\n\nallow_ingress := true\n", "package cleanroom"),
        ("too large", "package cleanroom\n" + "# x\n" * 100_000, "larger than"),
        ("shaping not an object", 'package cleanroom\nshaping := "round"\n', "shaping"),
        (
            "shaping unknown operation",
            'package cleanroom\nshaping := {"score": {"rund": 2}}\n',
            "unknown operation",
        ),
        (
            "shaping depends on input",
            'package cleanroom\nshaping := {"score": {"round": 2}} if input.x\n',
            "constant",
        ),
        (
            "shaping errors",
            'package cleanroom\nshaping := {"score": {"round": 1 / 0}}\n',
            "shaping",
        ),
    ],
)
def test_compile_refuses(name: str, source: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        PolicyBundle.compile(source)


def test_compile_refuses_non_text() -> None:
    with pytest.raises(PolicyError):
        PolicyBundle.compile(b"package cleanroom")  # type: ignore[arg-type]


def test_compile_error_carries_the_engine_message() -> None:
    with pytest.raises(PolicyError) as info:
        PolicyBundle.compile("package cleanroom\n\nallow_ingress if {\n  x := \n}\n")
    assert "Invalid assignment operator" in info.value.message


def test_comments_and_blank_lines_may_precede_the_package() -> None:
    bundle = PolicyBundle.compile("# a policy\n\n  # more\npackage cleanroom  # here\n")
    assert not bundle.evaluate_ingress(_ingress()).allowed


# ---------------------------------------------------------------- the matrix


@pytest.mark.parametrize(
    ("name", "changes", "reason"),
    [
        ("allowed", {}, None),
        ("not a bank", {"user": "eve@example.com"}, "the caller is not a named bank"),
        ("budget exhausted", {"queries": 3}, "the query budget is exhausted"),
        (
            "wrong action",
            {"action": "upload_model"},
            "denied by policy: data.cleanroom.allow_ingress is not true",
        ),
        (
            "wrong dtype",
            {"inputs": {"features": FEATURES.astype(np.float64)}},
            "the input does not match the schema",
        ),
        (
            "wrong shape",
            {"inputs": {"features": np.zeros((2, 8), np.float32)}},
            "the input does not match the schema",
        ),
        (
            "extra input",
            {"inputs": {"features": FEATURES, "extra": FEATURES}},
            "the input does not match the schema",
        ),
        (
            "every reason at once",
            {"user": "eve@example.com", "queries": 9},
            "the caller is not a named bank; the query budget is exhausted",
        ),
    ],
)
def test_ingress_matrix(
    lending: PolicyBundle, name: str, changes: dict[str, Any], reason: str | None
) -> None:
    decision = lending.evaluate_ingress(_ingress(**changes))
    assert decision.allowed is (reason is None)
    assert decision.reason == reason
    assert not decision.evaluation_error
    assert decision.elapsed_ms >= 0


def test_query_budget_is_exhausted_after_max_queries(lending: PolicyBundle) -> None:
    answers = [lending.evaluate_ingress(_ingress(queries=q)).allowed for q in range(6)]
    assert answers == [True, True, True, False, False, False]


@pytest.mark.parametrize(
    ("name", "outputs", "reason"),
    [
        ("allowed", None, None),
        (
            "an extra output",
            {"score": np.array([0.5]), "logits": np.array([3.2, -1.0])},
            "an output is not permitted to leave",
        ),
        ("score too high", {"score": np.array([1.5])}, "the score is out of range"),
        ("score negative", {"score": np.array([-0.1])}, "the score is out of range"),
        ("score is NaN", {"score": np.array([np.nan])}, "the score is out of range"),
        ("score is infinite", {"score": np.array([np.inf])}, "the score is out of range"),
        ("score is -infinite", {"score": np.array([-np.inf])}, "the score is out of range"),
    ],
)
def test_egress_minimisation(
    lending: PolicyBundle, name: str, outputs: dict[str, Any] | None, reason: str | None
) -> None:
    changes = {} if outputs is None else {"outputs": outputs}
    decision = lending.evaluate_egress(_egress(**changes))
    assert decision.allowed is (reason is None)
    assert decision.reason == reason


def test_large_outputs_reach_the_policy_as_metadata_only(lending: PolicyBundle) -> None:
    # 65 elements: above the cutoff, so the policy gets no values, and an
    # `every` over the missing values is undefined: the range check fails
    # closed instead of passing vacuously.
    doc = _egress(outputs={"score": np.full(65, 0.5)})
    assert "values" not in doc["response"]["outputs"]["score"]
    assert doc["response"]["outputs"]["score"]["shape"] == [65]
    decision = lending.evaluate_egress(doc)
    assert not decision.allowed
    assert decision.reason == "the score is out of range"


# ---------------------------------------------------------------- fail closed


@pytest.mark.parametrize(
    ("name", "source"),
    [
        (
            "conflicting values",
            "package cleanroom\nallow_ingress := true if input.user\n"
            "allow_ingress := false if input.action\n",
        ),
        ("divide by zero", "package cleanroom\nallow_ingress if 1 / input.usage.queries > 0\n"),
        (
            "built-in on the wrong type",
            "package cleanroom\nallow_ingress if count(input.usage.queries) > 0\n",
        ),
    ],
)
def test_evaluation_error_denies(name: str, source: str) -> None:
    bundle = PolicyBundle.compile(source)
    decision = bundle.evaluate_ingress(_ingress())
    assert not decision.allowed
    assert decision.evaluation_error
    assert decision.reason is not None
    assert decision.reason.startswith("policy evaluation error in data.cleanroom.allow_ingress")


def test_evaluation_error_is_logged_without_input_values(caplog: pytest.LogCaptureFixture) -> None:
    bundle = PolicyBundle.compile(
        "package cleanroom\nallow_ingress if 1 / input.usage.queries > 0\n"
    )
    with caplog.at_level("WARNING", logger="cleanroom.policy"):
        bundle.evaluate_ingress(_ingress(user="secret-user@example.com"))
    assert "failed to evaluate" in caplog.text
    assert "secret-user" not in caplog.text


@pytest.mark.parametrize(
    ("name", "rule", "reason"),
    [
        ("a string", 'allow_ingress := "true"', "is not true"),
        ("a number", "allow_ingress := 1", "is not true"),
        ("a set holding true", "allow_ingress := {true}", "is not true"),
        ("undefined", "allow_egress := true", "is undefined"),
        ("false", "allow_ingress := false", "is not true"),
    ],
)
def test_anything_but_true_denies(name: str, rule: str, reason: str) -> None:
    bundle = PolicyBundle.compile(f"package cleanroom\n{rule}\n")
    decision = bundle.evaluate_ingress(_ingress())
    assert not decision.allowed
    assert decision.reason is not None
    assert reason in decision.reason
    assert not decision.evaluation_error


@pytest.mark.parametrize(
    ("name", "mutation"),
    [
        ("NaN", lambda d: d["context"].update(x=float("nan"))),
        ("bytes", lambda d: d["context"].update(x=b"raw")),
        ("non-string key", lambda d: d["context"].update({1: "x"})),
        ("an object", lambda d: d["context"].update(x=object())),
        ("too deep", lambda d: d["context"].update(x=_nested(40))),
        # The engine's C API reads NUL-terminated strings: "owner\0..." would
        # otherwise reach the policy as the owner's name.
        ("NUL in the user", lambda d: d.update(user="lender@example.com\x00evil")),
        ("NUL in a key", lambda d: d["context"].update({"a\x00b": 1})),
        ("integer beyond int64", lambda d: d["usage"].update(queries=2**63)),
        ("a set", lambda d: d["context"].update(x={1, 2})),
    ],
)
@pytest.mark.parametrize("fast", [True, False], ids=["direct", "regopy-converter"])
def test_an_input_that_is_not_json_denies(
    name: str, mutation: Any, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "to_input", functools.partial(to_input, fast=fast))
    bundle = PolicyBundle.compile(DEFAULT_POLICY)
    doc = _ingress(user="lender@example.com")
    assert bundle.evaluate_ingress(doc).allowed
    mutation(doc)
    decision = bundle.evaluate_ingress(doc)
    assert not decision.allowed
    assert decision.evaluation_error


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("name", "rules", "reason"),
    [
        ("a string", 'deny_reason := "nope"', "nope"),
        ("a set, sorted", 'deny_reason := {"b", "a"}', "a; b"),
        ("whitespace folded", 'deny_reason := "two\\n  lines"', "two lines"),
        ("a number is ignored", "deny_reason := 7", "is not true"),
        ("an erroring reason is ignored", "deny_reason := 1 / 0", "is not true"),
    ],
)
def test_deny_reason_forms(name: str, rules: str, reason: str) -> None:
    bundle = PolicyBundle.compile(f"package cleanroom\nallow_ingress := false\n{rules}\n")
    decision = bundle.evaluate_ingress(_ingress())
    assert decision.reason is not None
    assert reason in decision.reason


def test_long_deny_reason_is_truncated() -> None:
    bundle = PolicyBundle.compile(f'package cleanroom\ndeny_reason := "{"x" * 5000}"\n')
    reason = bundle.evaluate_ingress(_ingress()).reason
    assert reason is not None
    assert len(reason) == 512


def test_deny_reason_is_not_consulted_when_allowed() -> None:
    bundle = PolicyBundle.compile('package cleanroom\nallow_ingress := true\ndeny_reason := "x"\n')
    decision = bundle.evaluate_ingress(_ingress())
    assert decision.allowed
    assert decision.reason is None


def test_context_reaches_the_policy() -> None:
    bundle = PolicyBundle.compile(
        'package cleanroom\nallow_ingress if input.context.consent.purpose == "lending"\n'
    )
    assert bundle.evaluate_ingress(_ingress(context={"consent": {"purpose": "lending"}})).allowed
    assert not bundle.evaluate_ingress(_ingress(context={"consent": {"purpose": "ads"}})).allowed
    assert not bundle.evaluate_ingress(_ingress()).allowed


def test_concurrent_evaluations_get_their_own_answers(lending: PolicyBundle) -> None:
    failures: list[str] = []

    def worker(k: int) -> None:
        for i in range(40):
            queries = (i + k) % 6
            decision = lending.evaluate_ingress(_ingress(queries=queries))
            if decision.allowed is not (queries < 3):
                failures.append(f"worker {k} query {queries}: {decision}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@pytest.mark.parametrize("fast", [True, False], ids=["direct", "regopy-converter"])
def test_both_input_converters_give_the_same_decisions(
    lending: PolicyBundle, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "to_input", functools.partial(to_input, fast=fast))
    docs = [_ingress(queries=q, user=u) for q in (0, 5) for u in ("bank-a@example.com", "x")]
    answers = [(d.allowed, d.reason) for d in map(lending.evaluate_ingress, docs)]
    assert answers == [
        (True, None),
        (False, "the caller is not a named bank"),
        (False, "the query budget is exhausted"),
        (False, "the caller is not a named bank; the query budget is exhausted"),
    ]
    egress = _egress(context={"nested": {"list": [1, 2.5, "x", None, True, [], {}]}})
    assert lending.evaluate_egress(egress).allowed


@pytest.mark.parametrize("doc", [["not", "an", "object"], "text", 7])
def test_a_document_that_is_not_an_object_denies(lending: PolicyBundle, doc: Any) -> None:
    decision = lending.evaluate_ingress(doc)
    assert not decision.allowed
    assert decision.evaluation_error
