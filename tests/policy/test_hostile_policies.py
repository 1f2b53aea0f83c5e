"""Hostile policy texts are refused with PolicyError; none can take the server process down.

rego-cpp's compiler recurses without bound: deeply nested terms or a long
operator chain crash the process that compiles them (SIGSEGV), and some
shapes keep it busy for minutes. Every text here would crash or stall the
test process if it reached the engine in process, so a test that returns at
all shows the gate held; each then checks the refusal itself.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cleanroom import Client, ModelFormat
from cleanroom.errors import PolicyError, ServiceUnavailable
from cleanroom.policy import DEFAULT_POLICY, PolicyBundle, engine
from cleanroom.policy import _saved_plan as gate

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "package cleanroom\n"
DEPTH = f"more than {engine.MAX_POLICY_NESTING} levels deep"
LIMITS = re.escape(gate.LIMITS_MESSAGE)
VALID = PACKAGE + "default allow_ingress := false\nallow_egress := true\n"


@pytest.fixture(autouse=True)
def fresh_outcomes() -> Iterator[None]:
    """Every test starts children of its own: no outcome remembered from another."""
    gate._check.cache_clear()
    yield
    gate._check.cache_clear()


def nested(opening: str, closing: str, depth: int, inner: str = "1") -> str:
    return PACKAGE + "x := " + opening * depth + inner + closing * depth + "\n"


def chain(operator: str, term: str, count: int) -> str:
    return PACKAGE + "x := " + f" {operator} ".join([term] * count) + "\n"


# (name, text, the refusal's message). The first rows are refused by the
# linear nesting check before any child starts; the rest by the child, which
# dies on its small stack long before the parent's stack would run out.
HOSTILE = [
    ("the reviewer's crasher", nested("[", "]", 50_000), DEPTH + r" \(line 2\)"),
    ("deep arrays", nested("[", "]", engine.MAX_POLICY_NESTING + 1), DEPTH),
    ("deep parentheses", nested("(", ")", 100_000), DEPTH),
    ("deep objects", nested('{"a": ', "}", 20_000), DEPTH),
    ("deep sets", nested("{", "}", 50_000), DEPTH),
    ("deep calls", nested("abs(", ")", 20_000), DEPTH),
    ("deep comprehensions", nested("[y | y := ", "]", 10_000), DEPTH),
    ("deep mixed", nested('[{"k": (', ")}]", 10_000), DEPTH),
    (
        "deep nesting in a rule body, after comments",
        PACKAGE + "# one\n# two\nallow_ingress if {\n  x := " + "[" * 70 + "]" * 70 + "\n}\n",
        DEPTH + r" \(line 5\)",
    ),
    ("a long sum", chain("+", "1", 3_000), LIMITS),
    ("a long difference", chain("-", "1", 3_000), LIMITS),
    ("a long product", chain("*", "2", 3_000), LIMITS),
    ("a long union", chain("|", "{1}", 3_000), LIMITS),
    ("a long intersection", chain("&", "{1}", 3_000), LIMITS),
    ("a long comparison", PACKAGE + "x if { " + " == ".join(["1"] * 3_000) + " }\n", LIMITS),
    ("many unary minuses", PACKAGE + "x := " + "-" * 3_000 + "1\n", LIMITS),
]


@pytest.mark.parametrize(("name", "source", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_texts_are_refused(name: str, source: str, message: str) -> None:
    assert len(source.encode()) <= engine.MAX_POLICY_BYTES  # the size limit does not help
    with pytest.raises(PolicyError, match=message) as refused:
        PolicyBundle.compile(source)
    assert refused.value.remedy


def test_a_refused_text_is_remembered_and_the_next_policy_compiles() -> None:
    hostile = chain("+", "1", 3_000)
    for _ in range(2):
        with pytest.raises(PolicyError, match=LIMITS):
            PolicyBundle.compile(hostile)
    assert gate._check.cache_info().misses == 1
    assert PolicyBundle.compile(VALID).evaluate_egress({}).allowed


# Brackets the engine never parses as terms do not count; depth at the limit passes.
NOT_TOO_DEEP = [
    ("at the limit", nested("[", "]", engine.MAX_POLICY_NESTING)),
    ("comprehensions at the limit", nested("[y | y := ", "]", engine.MAX_POLICY_NESTING)),
    ("in a string", PACKAGE + 'x := "' + "[" * 1_000 + '"\n'),
    ("after an escaped quote", PACKAGE + 'x := "\\"' + "(" * 1_000 + '"\n'),
    ("after an escaped backslash", PACKAGE + 'x := "\\\\" # ' + "{" * 1_000 + "\n"),
    ("in a raw string over lines", PACKAGE + "x := `" + "[\n" * 1_000 + "`\n"),
    ("in a comment", PACKAGE + "# " + "(" * 1_000 + "\nx := 1\n"),
    ("a comment marker in a string", PACKAGE + 'x := "#"\ny := ["' + "[" * 1_000 + '"]\n'),
    ("many siblings", PACKAGE + "x := [" + ", ".join(["[[1]]"] * 1_000) + "]\n"),
]


@pytest.mark.parametrize(("name", "source"), NOT_TOO_DEEP, ids=[n[0] for n in NOT_TOO_DEEP])
def test_nesting_that_is_not_too_deep_compiles(name: str, source: str) -> None:
    PolicyBundle.compile(source)


def test_a_string_ends_at_its_line_as_the_engines_does() -> None:
    # An unterminated string does not hide the brackets on the lines after it.
    source = PACKAGE + 'x := "open\n' + nested("[", "]", 100).removeprefix(PACKAGE)
    with pytest.raises(PolicyError, match=DEPTH + r" \(line 3\)"):
        PolicyBundle.compile(source)


REALISTIC = [
    ROOT / "src/cleanroom/policy/default.rego",
    ROOT / "src/cleanroom/cli/loan/policy.rego",
    *sorted((ROOT / "examples").rglob("*.rego")),
]


@pytest.mark.parametrize("path", REALISTIC, ids=[p.name for p in REALISTIC])
def test_the_shipped_policies_pass_the_gate_with_a_plan(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    checked = gate.check_module("policy.rego", source, engine._ENTRYPOINTS)
    assert checked.compiles
    assert checked.plan_document() is not None
    PolicyBundle.compile(source)


def test_an_ordinary_compile_error_keeps_the_engines_message() -> None:
    source = PACKAGE + "\nallow_ingress if {\n  x := \n}\n"
    assert gate.check_module("policy.rego", source, engine._ENTRYPOINTS) == gate.Checked(False)
    with pytest.raises(PolicyError) as refused:
        PolicyBundle.compile(source)
    assert refused.value.message == (
        "the policy does not compile: policy.rego:4:5: Invalid assignment operator"
    )


# Texts the engine would read differently from what the digest covers.
MALFORMED = [
    ("a NUL hides what follows", VALID + "\x00\nallow_ingress := true\n", "NUL character"),
    ("an unpaired surrogate", PACKAGE + 'x := "\ud800"\n', "UTF-8"),
]


@pytest.mark.parametrize(("name", "source", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_text_is_refused(name: str, source: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        PolicyBundle.compile(source)


def test_without_the_nesting_check_the_child_still_stops_the_crasher(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cleanroom.policy")
    monkeypatch.setattr(engine, "MAX_POLICY_NESTING", 1_000_000)
    with pytest.raises(PolicyError, match=LIMITS):
        PolicyBundle.compile(nested("[", "]", 50_000))
    assert f"child status {-signal.SIGSEGV}" in caplog.text


def test_the_cpu_limit_stops_a_slow_compile(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cleanroom.policy")
    # A long chain of field reads compiles in quadratic time without deep recursion.
    monkeypatch.setattr(gate, "CPU_LIMIT_S", 1)
    with pytest.raises(PolicyError, match=LIMITS):
        PolicyBundle.compile(PACKAGE + "x := input" + ".a" * 20_000 + "\n")
    assert f"child status {-signal.SIGXCPU}" in caplog.text


def test_the_memory_limit_stops_a_greedy_compile(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cleanroom.policy")
    # A big literal needs tens of MiB to compile; the engine aborts on an allocation refused.
    monkeypatch.setattr(gate, "MEMORY_LIMIT_BYTES", 8 << 20)
    members = ", ".join(f'"user{i}@bank.example"' for i in range(10_000))
    with pytest.raises(PolicyError, match=LIMITS):
        PolicyBundle.compile(PACKAGE + "allowed := {" + members + "}\n")
    assert f"child status {-signal.SIGABRT}" in caplog.text


def test_the_shaping_is_evaluated_under_the_limits_too(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cleanroom.policy")
    # The shaping is evaluated at compile time; this one would take GiB in process.
    monkeypatch.setattr(gate, "MEMORY_LIMIT_BYTES", 64 << 20)
    with pytest.raises(PolicyError, match=LIMITS):
        PolicyBundle.compile(
            PACKAGE + 'shaping := {"y": {"round": count(numbers.range(1, 100000000))}}\n'
        )
    assert f"child status {-signal.SIGABRT}" in caplog.text


# What the child does → what compile raises. Each child stands in for a
# module that drove the real one there; the text compiled is valid, so a
# refusal shows the child's verdict decides and the parent compiled nothing.
_NO_CORE = "import os, resource, signal; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
CHILD_OUTCOMES = [
    ("killed by SIGSEGV", _NO_CORE + "os.kill(os.getpid(), signal.SIGSEGV)", PolicyError, LIMITS),
    ("killed by SIGABRT", _NO_CORE + "os.abort()", PolicyError, LIMITS),
    ("killed by SIGXCPU", _NO_CORE + "os.kill(os.getpid(), signal.SIGXCPU)", PolicyError, LIMITS),
    ("killed by SIGKILL", _NO_CORE + "os.kill(os.getpid(), signal.SIGKILL)", PolicyError, LIMITS),
    ("out of memory", "raise SystemExit(5)", PolicyError, LIMITS),
    ("no engine", "raise SystemExit(6)", ServiceUnavailable, "compiler failed"),
    ("an uncaught exception", "raise RuntimeError('x')", ServiceUnavailable, "compiler failed"),
    ("no outcome", "raise SystemExit(7)", ServiceUnavailable, "compiler failed"),
]


@pytest.mark.parametrize(
    ("name", "child", "error", "message"), CHILD_OUTCOMES, ids=[c[0] for c in CHILD_OUTCOMES]
)
def test_what_the_child_does_decides(
    monkeypatch: pytest.MonkeyPatch, name: str, child: str, error: type[Exception], message: str
) -> None:
    monkeypatch.setattr(gate, "_CHILD", child)
    with pytest.raises(error, match=message):
        PolicyBundle.compile(VALID)


def test_a_timeout_is_refused_and_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate, "_CHILD", "import time; time.sleep(30)")
    monkeypatch.setattr(gate, "TIMEOUT_S", 0.3)
    with pytest.raises(PolicyError, match=LIMITS):
        PolicyBundle.compile(VALID)
    monkeypatch.undo()
    assert PolicyBundle.compile(VALID).digest


def test_a_child_that_cannot_start_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(ROOT / "no-such-python"))
    with pytest.raises(ServiceUnavailable, match="could not be started") as refused:
        PolicyBundle.compile(DEFAULT_POLICY)
    assert "no-such-python" not in refused.value.message
    monkeypatch.undo()
    assert PolicyBundle.compile(DEFAULT_POLICY).digest  # not remembered


def test_over_http_hostile_policies_are_refused_and_the_server_carries_on(
    party: Callable[[str], Client],
) -> None:
    # The server runs in this process: a crash in its compiler would end the test run.
    mallory = party("mallory@example.com")
    crasher, chained = nested("[", "]", 50_000), chain("+", "1", 3_000)
    for source, message in [(crasher, DEPTH), (chained, LIMITS)]:
        with pytest.raises(PolicyError, match=message):
            mallory.create_instance("Hostile", ModelFormat.ONNX, policy=source)
    instance = mallory.create_instance("Benign", ModelFormat.ONNX, policy=VALID)
    for source, message in [(crasher, DEPTH), (chained, LIMITS)]:
        with pytest.raises(PolicyError, match=message):
            instance.set_policy(source)
    instance.set_policy(DEFAULT_POLICY)
    assert mallory.get_instance(instance.id).id == instance.id


def test_the_process_is_still_here() -> None:
    # After every hostile text above: the compiler in this process still works.
    bundle = PolicyBundle.compile(VALID)
    assert bundle.evaluate_egress({}).allowed
