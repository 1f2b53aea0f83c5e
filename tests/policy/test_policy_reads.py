"""What a compiled plan can read of ``input``, and the cut-down document it is given."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.policy.documents import INSTANCE, ingress_doc

from cleanroom.policy import DEFAULT_POLICY, PolicyBundle, ingress_input
from cleanroom.policy._plan import InputReads, input_reads
from cleanroom.policy._saved_plan import saved_plan


def _reads(body: str) -> InputReads:
    return PolicyBundle.compile(f"package cleanroom\n{body}\n").ingress_reads


def _paths(*dotted: str) -> frozenset[tuple[str, ...]]:
    return frozenset(tuple(p.split(".")) for p in dotted)


def test_the_default_policy_reads_only_names_sizes_and_the_direction() -> None:
    bundle = PolicyBundle.compile(DEFAULT_POLICY)
    expected = _paths(
        "action", "user", "direction", "instance.owner", "instance.users", "request.nbytes"
    )
    assert bundle.ingress_reads == InputReads(expected, deterministic=True)
    assert bundle.egress_reads == InputReads(expected, deterministic=True)


@pytest.mark.parametrize(
    ("name", "body", "paths"),
    [
        ("a field", 'allow_ingress if input.user == "a"', ("user",)),
        ("a nested field", "allow_ingress if input.usage.queries < 3", ("usage.queries",)),
        ("an alias", 'allow_ingress if { q := input; q.user == "a" }', ("user",)),
        (
            "through a function argument",
            "f(r) := r.inputs\nallow_ingress if count(f(input.request)) == 1",
            ("request.inputs",),
        ),
        (
            "an iteration reads the whole collection",
            'allow_ingress if { some n in input.request.names; n == "x" }',
            ("request.names",),
        ),
        (
            "a built-in reads its whole argument",
            'allow_ingress if json.marshal(input.context) != ""',
            ("context",),
        ),
        (
            "an import",
            "import input.usage as u\nallow_ingress if u.queries < 3",
            ("usage.queries",),
        ),
        (
            "a dynamic key reads the whole object",
            'allow_ingress if { k := "user"; input.instance[k] == "a" }',
            ("instance",),
        ),
        ("the rule's value itself", "allow_ingress := input.audit.current", ("audit.current",)),
    ],
)
def test_paths_read(name: str, body: str, paths: tuple[str, ...]) -> None:
    reads = _reads(body)
    assert reads.paths == _paths(*paths)
    assert reads.deterministic


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("the whole document to a built-in", 'allow_ingress if json.marshal(input) != ""'),
        ("a dynamic key at the top", 'allow_ingress if { k := "user"; input[k] == "a" }'),
        ("an iteration over the document", 'allow_ingress if { some k, _ in input; k == "x" }'),
        ("the document as a value", "allow_ingress if count(input) > 0"),
    ],
)
def test_reading_the_whole_document(name: str, body: str) -> None:
    assert _reads(body).paths is None


@pytest.mark.parametrize(
    "body",
    [
        "allow_ingress if time.now_ns() > 0",
        'allow_ingress if rand.intn("x", 10) >= 0',
        'allow_ingress if uuid.rfc4122("x") != ""',
    ],
)
def test_non_deterministic_built_ins_are_noticed(body: str) -> None:
    bundle = PolicyBundle.compile(f"package cleanroom\n{body}\n")
    assert not bundle.ingress_reads.deterministic


def test_with_on_the_input_gives_up() -> None:
    reads = _reads(
        "ok if input.usage.queries < 1\nallow_ingress if ok with input.usage.queries as 0"
    )
    assert reads == InputReads(None, deterministic=False)


def test_an_unknown_statement_gives_up() -> None:
    plan = saved_plan("policy.rego", DEFAULT_POLICY, ("cleanroom/allow_ingress",))
    assert plan is not None
    assert input_reads(plan, ["cleanroom/allow_ingress"]).paths is not None
    broken = copy.deepcopy(plan)
    broken["funcs"]["funcs"][0]["blocks"][0]["stmts"].append({"type": "FutureStmt", "stmt": {}})
    assert input_reads(broken, ["cleanroom/allow_ingress"]) == InputReads(None, False)
    assert input_reads(None, ["cleanroom/allow_ingress"]) == InputReads(None, False)


def test_a_plan_with_a_dynamic_call_gives_up() -> None:
    plan = saved_plan("policy.rego", DEFAULT_POLICY, ("cleanroom/allow_ingress",))
    assert plan is not None
    stmt = {"type": "CallDynamicStmt", "stmt": {"args": [0, 1], "result": 9, "path": []}}
    plan["plans"]["plans"][0]["blocks"][0]["stmts"].insert(0, stmt)
    assert input_reads(plan, ["cleanroom/allow_ingress"]) == InputReads(None, False)


def test_projection_keeps_read_values_whole_and_drops_the_rest() -> None:
    reads = InputReads(_paths("user", "instance.users", "request.inputs.x", "missing.x"), True)
    doc = ingress_input(
        action="predict", user="u", instance=INSTANCE, queries=4, payload_nbytes=9, now_ns=1
    )
    doc["request"]["inputs"] = {"x": {"shape": [1, 2]}, "y": {"shape": [3]}}
    assert reads.project(doc) == {
        "user": "u",
        "instance": {"users": ["user@example.com"]},
        "request": {"inputs": {"x": {"shape": [1, 2]}}},
    }
    # A non-object met on the way is kept whole: the plan reads it as it is.
    assert InputReads(_paths("user.first"), True).project({"user": "u"}) == {"user": "u"}
    assert InputReads(None, True).project(doc) == doc


QUOTA_POLICY = """
package cleanroom
default allow_ingress := false
allow_ingress if {
	input.user == "user@example.com"
	input.usage.queries < 2
	input.context.consent == true
}
deny_reason contains "quota" if input.usage.queries >= 2
deny_reason contains "no consent" if not input.context.consent
"""


def _doc(**changes: Any) -> dict[str, Any]:
    return ingress_doc(**{"context": {"consent": True}, **changes})


@pytest.mark.parametrize("plan", [True, False], ids=["cut-down", "whole document"])
def test_the_cut_down_document_decides_as_the_whole_one(plan: bool) -> None:
    compiled = PolicyBundle.compile(QUOTA_POLICY)
    bundle = compiled if plan else PolicyBundle(compiled.source, compiled._bundle, compiled.shaping)
    assert (bundle.ingress_reads.paths is None) is not plan
    answers = [
        (d.allowed, d.reason)
        for d in map(
            bundle.evaluate_ingress,
            [
                _doc(),
                _doc(queries=1, now_ns=5),
                _doc(queries=2),
                _doc(context={"consent": False}),
                _doc(context={}),
                _doc(user="eve@example.com"),
            ],
        )
    ]
    assert answers == [
        (True, None),
        (True, None),
        (False, "quota"),
        (False, "no consent"),
        (False, "no consent"),
        (False, "denied by policy: data.cleanroom.allow_ingress is not true"),
    ]
