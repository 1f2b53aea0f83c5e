"""Rego policy bundles: compile once, evaluate per request, fail closed.

The engine is rego-cpp through its Python binding ``regopy``. A module is
compiled once into a bundle with four entrypoints
(``cleanroom/allow_ingress``, ``cleanroom/allow_egress``,
``cleanroom/deny_reason``, ``cleanroom/shaping``); each evaluation is then
``set_input`` + ``query_bundle_entrypoint`` on an interpreter kept with the
bundle, a fraction of a millisecond for small policies, against several
milliseconds for a fresh query.

At compile time the engine's plan (the bundle's ``plan.json``, see
:mod:`cleanroom.policy._saved_plan`) is read to learn which paths of
``input`` each direction can read (:mod:`cleanroom.policy._plan`). The
engine is handed only those paths, and when the plan calls no
non-deterministic built-in, decisions are remembered per document the engine
would see (:mod:`cleanroom.policy._decisions`).

A module is untrusted text (any signed-in account sends one). rego-cpp's
compiler recurses without bound, so before it compiles a module in process
the module must pass two gates: a linear scan refuses brackets, braces and
parentheses nested deeper than :data:`MAX_POLICY_NESTING`, and a child
process compiles it first under CPU, memory, stack and time limits
(:func:`cleanroom.policy._saved_plan.check_module`). A module that takes the
child past a limit is refused and never compiled here.

The contract a module follows is in ``docs/policies.md``: it is in package
``cleanroom``; only the value ``true`` of ``allow_ingress`` / ``allow_egress``
allows; ``deny_reason`` (a string, or a set of strings) is reported when the
request is denied; an evaluation error denies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regopy import Input, Interpreter, LogLevel, Output, RegoError
from regopy.rego_shared import (
    rego_bundle_query_entrypoint,
    rego_free_output,
    rego_output_ok,
    rego_output_string,
)

from cleanroom.errors import PolicyError
from cleanroom.policy._canonical import utf8_text
from cleanroom.policy._decisions import DecisionCache, cache_key
from cleanroom.policy._engine_errors import compile_error_message, evaluation_error_code
from cleanroom.policy._plan import InputReads, input_reads
from cleanroom.policy._rego_input import check_document, to_input
from cleanroom.policy._saved_plan import check_module
from cleanroom.policy.shaping import OutputShaping

__all__ = [
    "BUNDLE_FORMAT",
    "MAX_POLICY_BYTES",
    "MAX_POLICY_NESTING",
    "Decision",
    "PolicyBundle",
    "policy_digest",
]

_log = logging.getLogger("cleanroom.policy")

#: The version marker hashed in front of the module text (see :func:`policy_digest`).
BUNDLE_FORMAT = b"cleanroom-policy-bundle/1\n"
#: Larger modules are refused before they reach the engine.
MAX_POLICY_BYTES = 256 * 1024
#: Deeper nesting of brackets, braces and parentheses is refused before the engine sees it.
MAX_POLICY_NESTING = 64
_MAX_REASON_CHARS = 512

_MODULE_NAME = "policy.rego"
_ALLOW_INGRESS = "cleanroom/allow_ingress"
_ALLOW_EGRESS = "cleanroom/allow_egress"
_DENY_REASON = "cleanroom/deny_reason"
_SHAPING = "cleanroom/shaping"
_ENTRYPOINTS = (_ALLOW_INGRESS, _ALLOW_EGRESS, _DENY_REASON, _SHAPING)

_SHAPING_HEAD = re.compile(r"^[ \t]*(?:default[ \t]+)?shaping\b", re.M)
_PACKAGE_LINE = re.compile(r"package\s+([A-Za-z_][\w.]*)\s*(?:#.*)?")
# The lexemes that matter for nesting: a comment, a string ("..." with escapes,
# ending at its quote or the end of the line, as the engine's does), a raw
# string (`...`, may span lines), a bracket. Everything else is skipped.
_NESTING_LEXEME = re.compile(r'#[^\n]*|"[^"\\\n]*(?:\\.[^"\\\n]*)*"?|`[^`]*`?|[\[\](){}]')
_OPENERS = frozenset("[({")
_CLOSERS = frozenset("])}")


def _check_nesting(source: str) -> None:
    """Refuse *source* if brackets nest deeper than :data:`MAX_POLICY_NESTING`.

    Linear in the text; brackets in comments and strings do not count. An
    unbalanced text is left to the engine to report.
    """
    depth = 0
    for lexeme in _NESTING_LEXEME.finditer(source):
        char = lexeme.group()
        if char in _OPENERS:
            depth += 1
            if depth > MAX_POLICY_NESTING:
                line = source.count("\n", 0, lexeme.start()) + 1
                raise PolicyError(
                    f"the policy nests brackets, braces or parentheses more than "
                    f"{MAX_POLICY_NESTING} levels deep (line {line})",
                    remedy="flatten the expression: name inner terms in rules of their own",
                )
        elif char in _CLOSERS:
            depth = max(depth - 1, 0)


def _package_of(source: str) -> str | None:
    """The package the module declares in its first statement."""
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _PACKAGE_LINE.fullmatch(stripped)
        return match.group(1) if match else None
    return None


def policy_digest(source: str) -> str:
    """``"sha256:<hex>"`` of the policy bundle: SHA-256 over
    ``b"cleanroom-policy-bundle/1\\n" + source.encode("utf-8")``.

    The module text is the whole bundle: the output shaping is a rule in it,
    so the digest covers the rules and the shaping alike, and anyone holding
    the text can recompute it without a Rego engine.
    """
    return "sha256:" + hashlib.sha256(BUNDLE_FORMAT + source.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Decision:
    """The outcome of one evaluation.

    ``reason`` is ``None`` when allowed; when denied it is the policy's
    ``deny_reason`` or a fixed description (it never quotes the input).
    ``evaluation_error`` is true when the engine failed and the request was
    denied for that reason. ``cached`` is true when the engine already
    decided a document it sees identically (see :class:`PolicyBundle`).
    """

    allowed: bool
    reason: str | None
    elapsed_ms: float
    evaluation_error: bool = False
    cached: bool = False


def _reason_text(value: Any) -> str | None:
    """A deny_reason value as one line of UTF-8 text: a string, or sorted strings joined."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        text = "; ".join(sorted(set(value)))
    else:
        return None
    text = " ".join(utf8_text(text).split())
    if len(text) > _MAX_REASON_CHARS:
        text = text[: _MAX_REASON_CHARS - 1] + "…"
    return text or None


class _Direction:
    """One evaluated rule: what it reads of the input, and its remembered decisions."""

    def __init__(self, entrypoint: str, reads: InputReads) -> None:
        self.entrypoint = entrypoint
        self.rule = "data." + entrypoint.replace("/", ".")
        self.reads = reads
        self.cache: DecisionCache[Decision] | None = (
            DecisionCache() if reads.deterministic else None
        )


class PolicyBundle:
    """A compiled policy. Build with :meth:`compile`; safe to share across threads.

    *plan* is the engine's plan of *source*; without it every direction
    reads the whole document and nothing is remembered.

    Each direction is given only the paths of the input document its plan
    can read (``allow_*`` and ``deny_reason`` together); the rest of the
    document is checked (it must be plain JSON) but not converted. When the
    plan calls no non-deterministic built-in, a decision is remembered under
    the canonical JSON of what the engine was given, so a document it would
    see identically is answered without evaluating again. A field the plan
    reads (``usage.queries``, ``now_ns``, ``context``...) is part of that key.
    """

    def __init__(
        self,
        source: str,
        bundle: Any,
        shaping: OutputShaping,
        plan: Mapping[str, Any] | None = None,
    ) -> None:
        self._source = source
        self._bundle = bundle
        self._shaping = shaping
        self._digest = policy_digest(source)
        self._ingress = _Direction(
            _ALLOW_INGRESS, input_reads(plan, [_ALLOW_INGRESS, _DENY_REASON])
        )
        self._egress = _Direction(_ALLOW_EGRESS, input_reads(plan, [_ALLOW_EGRESS, _DENY_REASON]))
        self._runner = Interpreter()
        self._runner.log_level = LogLevel.NONE
        # Errors in built-ins (divide by zero, bad arguments) surface as
        # evaluation errors instead of quietly making a rule undefined, so
        # the log tells a broken policy from a denial.
        self._runner.strict_built_in_errors = True
        # One interpreter per bundle, one query at a time: rego-cpp
        # interpreters are not documented as thread-safe, and a query is
        # short enough that serialising is cheaper than a pool.
        self._lock = threading.Lock()

    @classmethod
    def compile(cls, source: str) -> PolicyBundle:
        """Compile a Rego v1 module in package ``cleanroom``.

        Raises :class:`PolicyError` with the engine's message when it does not
        compile, and when it is not in package ``cleanroom``, is too large,
        holds a NUL, nests deeper than :data:`MAX_POLICY_NESTING`, cannot be
        compiled within the limits of the child process that compiles it
        first, or declares an invalid ``shaping``. Raises
        :class:`~cleanroom.errors.ServiceUnavailable` when that child cannot
        be run: untrusted text is never compiled here without it.
        """
        if not isinstance(source, str):
            raise PolicyError("a policy is Rego source text")
        try:
            size = len(source.encode("utf-8"))
        except UnicodeEncodeError:
            raise PolicyError("a policy is UTF-8 text; it holds an unpaired surrogate") from None
        if size > MAX_POLICY_BYTES:
            raise PolicyError(f"the policy is larger than {MAX_POLICY_BYTES} bytes")
        if "\x00" in source:
            # The engine reads the text up to its first NUL: what follows would
            # be covered by the digest and shown to the parties, yet never run.
            raise PolicyError("the policy text contains a NUL character")
        if _package_of(source) != "cleanroom":
            raise PolicyError(
                "the policy module must start with `package cleanroom`",
                remedy="declare the rules allow_ingress and allow_egress in package cleanroom",
            )
        _check_nesting(source)
        # Raises unless a limited child compiled it (and evaluated the
        # shaping, as _read_shaping does below), or found an ordinary error,
        # within its limits: only then is it safe to do the same here.
        checked = check_module(_MODULE_NAME, source, _ENTRYPOINTS, evaluated=(_SHAPING,))
        builder = Interpreter()
        builder.log_level = LogLevel.NONE
        try:
            builder.add_module(_MODULE_NAME, source)
            bundle = builder.build(None, list(_ENTRYPOINTS))
        except RegoError as exc:
            message = compile_error_message(str(exc), source)
            raise PolicyError(f"the policy does not compile: {message}") from None
        if not bundle.ok():
            raise PolicyError("the policy does not compile: the engine built no bundle")
        shaping = cls._read_shaping(bundle, declared=_SHAPING_HEAD.search(source) is not None)
        return cls(source, bundle, shaping, checked.plan_document())

    @staticmethod
    def _read_shaping(bundle: Any, *, declared: bool) -> OutputShaping:
        runner = Interpreter()
        runner.log_level = LogLevel.NONE
        runner.strict_built_in_errors = True
        runner.set_input(Input({}))
        output = runner.query_bundle_entrypoint(bundle, _SHAPING)
        if not output.ok():
            raise PolicyError(
                "data.cleanroom.shaping could not be evaluated "
                f"({evaluation_error_code(output)}); it must be a constant object"
            )
        values = output.results[0].expressions if output.results else []
        if declared and not values:
            # A shaping that depends on the input (or is otherwise undefined
            # here) would silently shape nothing: refuse it.
            raise PolicyError(
                "data.cleanroom.shaping is declared but undefined; it must be a constant object"
            )
        return OutputShaping.from_json(values[0] if values else None)

    @property
    def source(self) -> str:
        return self._source

    @property
    def digest(self) -> str:
        """``"sha256:<hex>"``: what the attestation evidence commits to."""
        return self._digest

    @property
    def shaping(self) -> OutputShaping:
        return self._shaping

    @property
    def ingress_reads(self) -> InputReads:
        """The paths of the ingress document ``allow_ingress`` and ``deny_reason`` can read."""
        return self._ingress.reads

    @property
    def egress_reads(self) -> InputReads:
        """The paths of the egress document ``allow_egress`` and ``deny_reason`` can read."""
        return self._egress.reads

    def evaluate_ingress(self, input_doc: Mapping[str, Any]) -> Decision:
        """Evaluate ``data.cleanroom.allow_ingress`` against *input_doc*."""
        return self._evaluate(self._ingress, input_doc)

    def evaluate_egress(self, input_doc: Mapping[str, Any]) -> Decision:
        """Evaluate ``data.cleanroom.allow_egress`` against *input_doc*."""
        return self._evaluate(self._egress, input_doc)

    def _query(self, entrypoint: str) -> tuple[bool, list[Any], Any]:
        """Query the bundle; (ok, the first result's expressions, the failed Output or None)."""
        raw = rego_bundle_query_entrypoint(self._runner._impl, self._bundle._impl, entrypoint)
        if not rego_output_ok(raw):
            return False, [], Output(raw)  # frees *raw*; kept to read the error code
        try:
            text = rego_output_string(raw)
        finally:
            rego_free_output(raw)
        if text == "undefined":
            return True, [], None
        parsed = json.loads(text)
        first = parsed[0] if isinstance(parsed, list) and parsed else parsed
        values = first.get("expressions", []) if isinstance(first, dict) else []
        return True, list(values), None

    def _evaluate(self, direction: _Direction, input_doc: Mapping[str, Any]) -> Decision:
        started = time.perf_counter()
        try:
            seen = direction.reads.project(check_document(input_doc))
            key = cache_key(seen) if direction.cache is not None else None
        except PolicyError as exc:
            return self._invalid(exc, started)
        if key is not None and direction.cache is not None:
            known = direction.cache.get(key)
            if known is not None:
                elapsed = (time.perf_counter() - started) * 1000.0
                return dataclasses.replace(known, elapsed_ms=elapsed, cached=True)
        decision = self._run(direction, seen, started)
        if key is not None and direction.cache is not None and not decision.evaluation_error:
            direction.cache.put(key, decision)
        return decision

    def _invalid(self, exc: PolicyError, started: float) -> Decision:
        _log.warning("policy %s denied: invalid input document (%s)", self._digest, exc)
        return Decision(
            False,
            f"policy evaluation error: {exc.message}",
            (time.perf_counter() - started) * 1000.0,
            evaluation_error=True,
        )

    def _run(self, direction: _Direction, seen: dict[str, Any], started: float) -> Decision:
        rule = direction.rule
        try:
            engine_input = to_input(seen)
        except PolicyError as exc:
            return self._invalid(exc, started)
        with self._lock:
            try:
                self._runner.set_input(engine_input)
                ok, values, output = self._query(direction.entrypoint)
                if not ok:
                    code = evaluation_error_code(output)
                    _log.warning("policy %s: %s failed to evaluate (%s)", self._digest, rule, code)
                    return Decision(
                        False,
                        f"policy evaluation error in {rule} ({code})",
                        (time.perf_counter() - started) * 1000.0,
                        evaluation_error=True,
                    )
                # Exactly the boolean true: `1 == True` in Python, not in Rego.
                if len(values) == 1 and values[0] is True:
                    return Decision(True, None, (time.perf_counter() - started) * 1000.0)
                reason = self._deny_reason(rule, values)
            except (RegoError, OSError, ValueError, TypeError) as exc:
                _log.warning("policy %s: engine failure on %s (%s)", self._digest, rule, type(exc))
                return Decision(
                    False,
                    f"policy evaluation error in {rule} (engine failure)",
                    (time.perf_counter() - started) * 1000.0,
                    evaluation_error=True,
                )
        return Decision(False, reason, (time.perf_counter() - started) * 1000.0)

    def _deny_reason(self, rule: str, values: list[Any]) -> str:
        ok, reasons, _ = self._query(_DENY_REASON)
        if ok and reasons:
            text = _reason_text(reasons[0])
            if text is not None:
                return text
        if not values:
            return f"denied by policy: {rule} is undefined"
        return f"denied by policy: {rule} is not true"

    def __repr__(self) -> str:
        return f"PolicyBundle(digest={self._digest!r}, shaping={self._shaping.to_json()!r})"
