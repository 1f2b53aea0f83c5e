"""The compile gate: a module is compiled first in a limited child process.

rego-cpp's parser and compiler recurse without bound and some of its passes
are quadratic: a module of deeply nested terms or a long operator chain
crashes the process that compiles it (SIGSEGV on stack exhaustion) or keeps it
busy for minutes. A policy text is sent by any signed-in account, so it is
never compiled in the server process before a short-lived child
(``python -I -c``, importing regopy alone) has compiled it with the same
entrypoints, and evaluates the entrypoints the parent evaluates at compile
time (the output shaping), under limits it sets on itself before it parses:

- CPU time (``RLIMIT_CPU``, :data:`CPU_LIMIT_S`),
- address space beyond what the engine's allocator reserves when it starts
  (``RLIMIT_AS``, :data:`MEMORY_LIMIT_BYTES`; snmalloc reserves a few hundred
  GiB of address space up front, so a fixed limit would stop it starting),
- the stack: the module is compiled on a thread of :data:`STACK_BYTES`, well
  under the stack of any thread of the server (8 MiB by default on Linux,
  1 MiB on the smallest common builds), so a module that fits here fits there,
- no core file,

and the parent waits at most :data:`TIMEOUT_S` of wall-clock time. The
compiler is deterministic, so the child's outcome is the outcome in process:

========================================  =====================================
the child                                 :func:`check_module`
========================================  =====================================
compiled the module                       ``Checked(compiles=True, plan=...)``
reported an ordinary compile error        ``Checked(compiles=False)``: compile
                                          in process for the engine's message
died by a signal, hit a limit, timed out  :class:`PolicyError`; never compiled
                                          in process
could not be started, or cannot run the   :class:`ServiceUnavailable`: fail
engine                                    closed
========================================  =====================================

On success the child also saves the bundle and returns its plan
(``plan.json``): rego-cpp saves a bundle only to files, and its save and load
functions corrupt the heap in a process that has imported numpy (rego-cpp
1.x as regopy 1.5.2 ships it), so the plan can only come from a child that
imports regopy alone. A plan that cannot be saved only means "no plan".

Outcomes are remembered per (module name, text, entrypoints, evaluated), except a
timeout (which may be the host's load) and a failure to start: recompiling
the same policy does not start another child.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from cleanroom.errors import PolicyError, ServiceUnavailable

__all__ = [
    "CPU_LIMIT_S",
    "LIMITS_MESSAGE",
    "MEMORY_LIMIT_BYTES",
    "STACK_BYTES",
    "TIMEOUT_S",
    "Checked",
    "check_module",
    "saved_plan",
]

_log = logging.getLogger("cleanroom.policy")

#: CPU seconds the child may use (its start-up included): SIGXCPU, then SIGKILL a second later.
CPU_LIMIT_S = 4
#: Address space the child may add once the engine's allocator has started.
MEMORY_LIMIT_BYTES = 1 << 30
#: The stack of the thread the child compiles on.
STACK_BYTES = 512 * 1024
#: Wall-clock seconds the parent waits for the child.
TIMEOUT_S = 10.0

#: The refusal of a module the child could not compile within its limits.
LIMITS_MESSAGE = (
    "the policy could not be compiled within the engine's limits "
    "(deeply nested expressions and very long operator chains are the usual causes)"
)
_LIMITS_REMEDY = "simplify the module: split long expressions into rules of their own"
_UNAVAILABLE_REMEDY = "retry later; the server log has the cause"

# The child's exit statuses (anything else, signals aside, is unexpected).
_COMPILED = 0
_DOES_NOT_COMPILE = 3
_COMPILED_NO_PLAN = 4
_OUT_OF_MEMORY = 5
_NO_ENGINE = 6
_NO_OUTCOME = 7

# argv: module name, entrypoints (JSON), entrypoints to evaluate against an
# empty input (JSON), CPU seconds, address-space bytes, stack bytes.
# The module text is read from standard input; the plan is written to standard output.
_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
try:
    import json, tempfile, threading
    from pathlib import Path
    from regopy import Input, Interpreter, LogLevel, RegoError
    Interpreter()  # starts the engine's allocator, which reserves its address space
except (ImportError, OSError):
    sys.exit(6)
name, entrypoints, evaluated = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
cpu, memory, stack = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
source = sys.stdin.buffer.read().decode("utf-8")  # whatever the locale
try:
    with open("/proc/self/status", encoding="ascii") as status:
        size = [int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:")][0]
    resource.setrlimit(resource.RLIMIT_AS, (size + memory, size + memory))
except (OSError, IndexError, ValueError):
    pass  # no /proc (not Linux): CPU, stack and wall-clock limits still hold
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
outcome = []
def compile_module():
    builder = Interpreter()
    builder.log_level = LogLevel.NONE
    try:
        builder.add_module(name, source)
        bundle = builder.build(None, entrypoints)
    except RegoError:
        outcome.append(3)
        return
    except MemoryError:
        outcome.append(5)
        return
    if not bundle.ok():
        outcome.append(3)
        return
    # Only surviving matters here: the parent evaluates them again for the values.
    runner = Interpreter()
    runner.log_level = LogLevel.NONE
    runner.strict_built_in_errors = True
    try:
        runner.set_input(Input({}))
        for entrypoint in evaluated:
            runner.query_bundle_entrypoint(bundle, entrypoint)
    except RegoError:
        pass
    except MemoryError:
        outcome.append(5)
        return
    try:
        with tempfile.TemporaryDirectory(prefix="cleanroom-plan-") as tmp:
            builder.save_bundle(str(Path(tmp) / "bundle"), bundle)
            plan = (Path(tmp) / "bundle" / "plan.json").read_text(encoding="utf-8")
    except (RegoError, OSError, MemoryError):
        outcome.append(4)
        return
    sys.stdout.buffer.write(plan.encode("utf-8"))
    outcome.append(0)
threading.stack_size(stack)
worker = threading.Thread(target=compile_module)
worker.start()
worker.join()
sys.stdout.flush()
sys.exit(outcome[0] if outcome else 7)
"""

# Signals that mean the module took the child past a limit: stack exhaustion
# (SEGV, BUS), an allocation refused under RLIMIT_AS (std::bad_alloc: ABRT),
# the CPU limit (XCPU soft, KILL hard).
_LIMIT_SIGNALS = frozenset(
    {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGXCPU, signal.SIGKILL}
)


@dataclass(frozen=True)
class Checked:
    """What the child made of a module that stayed within the limits.

    ``compiles`` is false when the engine reported an ordinary compile error;
    ``plan`` is the text of ``plan.json`` when it compiled and was saved.
    """

    compiles: bool
    plan: str | None = None

    def plan_document(self) -> dict[str, Any] | None:
        """The parsed plan, or ``None`` if there is none (or it does not parse)."""
        if not self.plan:
            return None
        try:
            plan = json.loads(self.plan)
        except ValueError:
            return None
        return plan if isinstance(plan, dict) else None


class _Timeout(Exception):
    """The child outlived :data:`TIMEOUT_S` (not remembered: it may be the load)."""


def _limits_error() -> PolicyError:
    return PolicyError(LIMITS_MESSAGE, remedy=_LIMITS_REMEDY)


@functools.lru_cache(maxsize=64)
def _check(
    module_name: str, source: str, entrypoints: tuple[str, ...], evaluated: tuple[str, ...]
) -> Checked | None:
    """The child's outcome; ``None`` when it went past a limit. Raises when nothing is known."""
    argv = [
        sys.executable,
        "-I",
        "-c",
        _CHILD,
        module_name,
        json.dumps(list(entrypoints)),
        json.dumps(list(evaluated)),
        str(CPU_LIMIT_S),
        str(MEMORY_LIMIT_BYTES),
        str(STACK_BYTES),
    ]
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter, fixed code, no shell
            argv,
            input=source,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _Timeout from None
    except (OSError, subprocess.SubprocessError) as exc:
        _log.error("the policy compiler could not be started (%s)", type(exc).__name__)
        raise ServiceUnavailable(
            "the policy compiler could not be started", remedy=_UNAVAILABLE_REMEDY
        ) from None
    status = done.returncode
    if status == _COMPILED:
        return Checked(compiles=True, plan=done.stdout)
    if status == _COMPILED_NO_PLAN:
        _log.warning("the policy plan could not be saved; decisions will not be remembered")
        return Checked(compiles=True)
    if status == _DOES_NOT_COMPILE:
        return Checked(compiles=False)
    if status == _OUT_OF_MEMORY or (status < 0 and -status in _LIMIT_SIGNALS):
        _log.warning("a policy went past the compile limits (child status %s)", status)
        return None
    # The engine could not be imported, or the child failed in a way no module
    # should cause: nothing is known about the module, so nothing is compiled.
    _log.error("the policy compiler failed (child status %s)", status)
    raise ServiceUnavailable("the policy compiler failed", remedy=_UNAVAILABLE_REMEDY)


def check_module(
    module_name: str,
    source: str,
    entrypoints: tuple[str, ...],
    evaluated: tuple[str, ...] = (),
) -> Checked:
    """Compile *source* in a limited child process; see the module documentation.

    The child also evaluates the *evaluated* entrypoints (a subset of
    *entrypoints*) against an empty input, as the parent does at compile time.

    Raises :class:`PolicyError` (:data:`LIMITS_MESSAGE`) when the child died
    by a signal, went past a limit or timed out: the module must then not be
    compiled in process. Raises :class:`ServiceUnavailable` when the child
    could not be started or could not run the engine.
    """
    try:
        checked = _check(module_name, source, entrypoints, evaluated)
    except _Timeout:
        _log.warning("a policy did not compile within %s s", TIMEOUT_S)
        raise _limits_error() from None
    if checked is None:
        raise _limits_error()
    return checked


def saved_plan(
    module_name: str, source: str, entrypoints: tuple[str, ...]
) -> dict[str, Any] | None:
    """The parsed ``plan.json`` of *source*, or ``None`` if there is none.

    Raises as :func:`check_module` does.
    """
    return check_module(module_name, source, entrypoints).plan_document()
