"""The engine's plan of a module (``plan.json`` of a saved bundle).

rego-cpp saves a bundle only to files, and its save and load functions
corrupt the heap in a process that has imported numpy (rego-cpp 1.x as
regopy 1.5.2 ships it), so the plan is produced by a short-lived child
process that imports regopy alone: it compiles the same module text with the
same entrypoints, saves the bundle in a private temporary directory and
writes the plan to its standard output. The compiler is deterministic, so
this is the plan the parent's bundle holds.

Plans are remembered per (module text, entrypoints): recompiling the same
policy does not start another child.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
from typing import Any

__all__ = ["saved_plan"]

_log = logging.getLogger("cleanroom.policy")
_TIMEOUT_S = 60.0

_CHILD = """
import json, sys, tempfile
from pathlib import Path
from regopy import Interpreter, LogLevel
name, entrypoints = sys.argv[1], json.loads(sys.argv[2])
source = sys.stdin.read()
builder = Interpreter()
builder.log_level = LogLevel.NONE
builder.add_module(name, source)
bundle = builder.build(None, entrypoints)
if not bundle.ok():
    sys.exit(3)
with tempfile.TemporaryDirectory(prefix="cleanroom-plan-") as tmp:
    builder.save_bundle(str(Path(tmp) / "bundle"), bundle)
    sys.stdout.write((Path(tmp) / "bundle" / "plan.json").read_text(encoding="utf-8"))
"""


@functools.lru_cache(maxsize=64)
def _plan_text(module_name: str, source: str, entrypoints: tuple[str, ...]) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter, fixed code, no shell
            [sys.executable, "-I", "-c", _CHILD, module_name, json.dumps(list(entrypoints))],
            input=source,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        _log.warning("the policy plan could not be produced (%s)", type(exc).__name__)
        return None
    if done.returncode != 0:
        _log.warning("the policy plan could not be produced (exit status %s)", done.returncode)
        return None
    return done.stdout


def saved_plan(
    module_name: str, source: str, entrypoints: tuple[str, ...]
) -> dict[str, Any] | None:
    """The parsed ``plan.json`` of *source*, or ``None`` if it cannot be produced."""
    text = _plan_text(module_name, source, entrypoints)
    if text is None:
        return None
    try:
        plan = json.loads(text)
    except ValueError:
        return None
    return plan if isinstance(plan, dict) else None
