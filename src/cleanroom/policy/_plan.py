"""What of ``input`` a compiled policy can read, from the engine's own plan.

rego-cpp compiles a module into a plan in OPA's intermediate representation
(``plan.json`` of a saved bundle) and evaluates exactly that plan. In it the
input document is local 0; a field is read with ``DotStmt`` (source local,
constant key, target local), and every other use of a local hands its whole
value to a statement (a comparison, a built-in, an iteration, a result).

:func:`input_reads` follows local 0 through the plans of the given
entrypoints and every function they reach, flow-insensitively (a local holds
the union of everything ever stored in it), and returns the paths of
``input`` whose whole value some statement may use. A document cut down to
those paths (:meth:`InputReads.project`) evaluates exactly as the full one:
every ``DotStmt`` chain the plan can walk finds the same values, and every
value a statement uses is there whole.

Anything the analysis does not understand (an unknown statement, a dynamic
call, ``with`` on the input, a key that is not a plain name) counts as a read
of the whole subtree, or of the whole document, never as no read.

The result also says whether the plan calls a non-deterministic built-in
(``time.now_ns``, ``rand.intn``, ``http.send``...): only a plan that calls
none is a pure function of the document it is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["InputReads", "input_reads"]

Path = tuple[str, ...]

#: Built-ins whose result is not a function of their arguments: OPA's
#: "non-deterministic" built-ins and the namespaces they live in.
_NONDETERMINISTIC = frozenset(
    {
        "time.now_ns",
        "io.jwt.decode_verify",
        "crypto.x509.parse_and_verify_certificates",
        "crypto.x509.parse_and_verify_certificates_with_options",
    }
)
_NONDETERMINISTIC_PREFIXES = ("rand.", "uuid.", "http.", "net.", "opa.")

_INPUT_LOCAL = 0
_MAX_PATH = 32
_MAX_PATHS = 4096
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_KEYS = frozenset({"true", "false", "null"})

# Statement fields holding a local (an int) or an operand ({"type": ..., "value": ...}).
# Fields not listed (file, row, col, capacity, index, path, a number's value) hold no local.
_LOCAL_FIELDS: dict[str, tuple[str, ...]] = {
    "ArrayAppendStmt": ("array", "value"),
    "AssignIntStmt": ("target",),
    "AssignVarOnceStmt": ("source", "target"),
    "AssignVarStmt": ("source", "target"),
    "BlockStmt": (),
    "BreakStmt": (),
    "CallStmt": ("args", "result"),
    "DotStmt": ("source", "key", "target"),
    "EqualStmt": ("a", "b"),
    "IsArrayStmt": ("source",),
    "IsDefinedStmt": ("source",),
    "IsObjectStmt": ("source",),
    "IsSetStmt": ("source",),
    "IsUndefinedStmt": ("source",),
    "LenStmt": ("source", "target"),
    "MakeArrayStmt": ("target",),
    "MakeNullStmt": ("target",),
    "MakeNumberIntStmt": ("target",),
    "MakeNumberRefStmt": ("target",),
    "MakeObjectStmt": ("target",),
    "MakeSetStmt": ("target",),
    "NopStmt": (),
    "NotEqualStmt": ("a", "b"),
    "NotStmt": (),
    "ObjectInsertOnceStmt": ("key", "value", "object"),
    "ObjectInsertStmt": ("key", "value", "object"),
    "ObjectMergeStmt": ("a", "b", "target"),
    "ResetLocalStmt": ("target",),
    "ResultSetAddStmt": ("value",),
    "ReturnLocalStmt": ("source",),
    "ScanStmt": ("source", "key", "value"),
    "SetAddStmt": ("value", "set"),
    "WithStmt": ("local", "value"),
}
# Fields a statement only writes: storing there is not a read of the old value.
_WRITTEN = frozenset({"target", "result"})


class _Unknown(Exception):
    """The plan holds something the analysis cannot follow."""


@dataclass(frozen=True)
class InputReads:
    """The paths of ``input`` a plan may read (``None``: the whole document)."""

    paths: frozenset[Path] | None
    deterministic: bool

    def project(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """*doc* cut down to :attr:`paths`: what the plan can observe of it."""
        if self.paths is None:
            return dict(doc)
        doc = doc if type(doc) is dict else dict(doc)
        out: dict[str, Any] = {}
        for path in self.paths:
            _copy_path(doc, out, path)
        return out


def _copy_path(doc: Any, out: dict[str, Any], path: Path) -> None:
    if not path:
        return
    # Objects are dicts here (the document was checked); anything else is kept whole.
    last = len(path) - 1
    for depth, key in enumerate(path):
        if type(doc) is not dict or key not in doc:
            return  # undefined in the full document as in the cut-down one
        value = doc[key]
        if depth == last or type(value) is not dict:
            # The whole value; a non-object met half-way is kept whole too.
            out[key] = value
            return
        existing = out.get(key)
        if existing is None:
            existing = out[key] = {}
        elif not isinstance(existing, dict) or existing is value:
            return  # already copied whole
        doc, out = value, existing


def _minimal(paths: set[Path]) -> frozenset[Path]:
    """Drop every path below another one (its value is already whole)."""
    kept: list[Path] = []
    for path in sorted(paths, key=len):
        if not any(path[: len(p)] == p for p in kept):
            kept.append(path)
    return frozenset(kept)


def _stmts(blocks: Sequence[Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for block in blocks:
        for item in block["stmts"]:
            kind, stmt = item["type"], item["stmt"]
            if not isinstance(kind, str) or not isinstance(stmt, Mapping):
                raise _Unknown
            yield kind, stmt
            yield from _stmts(stmt.get("blocks", ()))
            if "block" in stmt:
                yield from _stmts([stmt["block"]])


def _locals(value: Any) -> list[int]:
    """The locals a field names: an int, an operand, or a list of either."""
    if isinstance(value, bool):
        raise _Unknown
    if isinstance(value, int):
        return [value]
    if isinstance(value, Mapping):
        if value.get("type") == "local":
            return _locals(value.get("value"))
        return []
    if isinstance(value, list):
        return [n for v in value for n in _locals(v)]
    raise _Unknown


class _Analysis:
    def __init__(self, plan: Mapping[str, Any]) -> None:
        self.strings = [s["value"] for s in plan["static"]["strings"]]
        self.funcs = {f["name"]: f for f in plan["funcs"]["funcs"]}
        self.plans = {p["name"]: p for p in plan["plans"]["plans"]}
        self.held: dict[int, set[Path]] = {_INPUT_LOCAL: {()}}
        self.read: set[Path] = set()
        self.builtins: set[str] = set()

    def reachable(self, entrypoints: Sequence[str]) -> list[tuple[str, Mapping[str, Any]]]:
        stmts: list[tuple[str, Mapping[str, Any]]] = []
        pending = [self.plans[e]["blocks"] for e in entrypoints]
        seen: set[str] = set()
        while pending:
            for kind, stmt in _stmts(pending.pop()):
                if kind not in _LOCAL_FIELDS:
                    raise _Unknown  # also CallDynamicStmt: its callee is not known
                stmts.append((kind, stmt))
                if kind == "CallStmt":
                    name = stmt["func"]
                    if name in self.funcs:
                        if name not in seen:
                            seen.add(name)
                            pending.append(self.funcs[name]["blocks"])
                    else:
                        self.builtins.add(name)
        return stmts

    def key(self, operand: Any) -> str | None:
        if isinstance(operand, Mapping) and operand.get("type") == "string_index":
            text = self.strings[operand["value"]]
            if isinstance(text, str) and _KEY.fullmatch(text) and text not in _NOT_KEYS:
                return text
        return None

    def hold(self, local: int, paths: set[Path]) -> bool:
        held = self.held.setdefault(local, set())
        new = paths - held
        if not new:
            return False
        held |= new
        if sum(len(p) for p in held) > _MAX_PATHS:
            raise _Unknown
        return True

    def paths_of(self, operand: Any) -> set[Path]:
        found: set[Path] = set()
        for local in _locals(operand):
            found |= self.held.get(local, set())
        return found

    def step(self, kind: str, stmt: Mapping[str, Any]) -> bool:
        """Apply one statement; whether anything new was learnt."""
        changed = False
        if kind == "DotStmt":
            source = self.paths_of(stmt["source"])
            key = self.key(stmt["key"])
            if key is not None and source:
                longer = {(*p, key) for p in source if len(p) < _MAX_PATH}
                self.read |= {p for p in source if len(p) >= _MAX_PATH}
                changed |= self.hold(stmt["target"], longer)
            elif source:
                self.read |= source
            self.read |= self.paths_of(stmt["key"])
            return changed
        if kind in ("AssignVarStmt", "AssignVarOnceStmt"):
            return self.hold(stmt["target"], self.paths_of(stmt["source"]))
        if kind == "WithStmt" and self.paths_of(stmt["local"]):
            raise _Unknown  # the plan replaces part of the input it reads
        if kind == "CallStmt" and stmt["func"] in self.funcs:
            func = self.funcs[stmt["func"]]
            params, args = func["params"], stmt["args"]
            if len(params) != len(args):
                raise _Unknown
            for param, arg in zip(params, args, strict=True):
                changed |= self.hold(param, self.paths_of(arg))
            return changed | self.hold(stmt["result"], self.held.get(func["return"], set()))
        for field in _LOCAL_FIELDS[kind]:
            if field in stmt and field not in _WRITTEN:
                self.read |= self.paths_of(stmt[field])
        return False

    def run(self, entrypoints: Sequence[str]) -> InputReads:
        stmts = self.reachable(entrypoints)
        for _ in range(10_000):
            changed = False
            for kind, stmt in stmts:
                changed |= self.step(kind, stmt)
            if not changed:
                break
        else:  # pragma: no cover - a plan of a 256 KiB module converges long before
            raise _Unknown
        deterministic = not any(
            name in _NONDETERMINISTIC or name.startswith(_NONDETERMINISTIC_PREFIXES)
            for name in self.builtins
        )
        if () in self.read:
            return InputReads(None, deterministic)
        return InputReads(_minimal(self.read), deterministic)


def input_reads(plan: Mapping[str, Any] | None, entrypoints: Sequence[str]) -> InputReads:
    """What evaluating *entrypoints* of *plan* (``plan.json``) may read of ``input``.

    Never fails: a plan it cannot follow (or no plan) reads the whole
    document and is treated as non-deterministic.
    """
    if plan is None:
        return InputReads(None, False)
    try:
        return _Analysis(plan).run(entrypoints)
    except (_Unknown, KeyError, IndexError, TypeError, ValueError):
        return InputReads(None, False)
