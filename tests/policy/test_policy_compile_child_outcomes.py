"""More of what the compile child can do, and what PolicyBundle.compile makes of it.

- Killed by SIGBUS (stack exhaustion can end that way too): a limit, so
  :class:`PolicyError`, never a service error or a compile in process.
- Compiled but could not save the plan (status 4), or wrote a plan that is
  not a JSON object: the policy compiles, reads the whole document, and has
  no decision remembered.
- The child is run isolated (``python -I``): a ``regopy`` module planted on
  ``PYTHONPATH`` or in the working directory is not what compiles the policy.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.policy.documents import ingress_doc

from cleanroom.errors import PolicyError
from cleanroom.policy import DEFAULT_POLICY, PolicyBundle
from cleanroom.policy import _saved_plan as gate
from cleanroom.policy._plan import InputReads

LIMITS = re.escape(gate.LIMITS_MESSAGE)
_NO_CORE = "import os, resource, signal; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
WHOLE_DOCUMENT = InputReads(None, deterministic=False)


@pytest.fixture(autouse=True)
def fresh_outcomes() -> Iterator[None]:
    gate._check.cache_clear()
    yield
    gate._check.cache_clear()


def test_a_child_killed_by_sigbus_went_past_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate, "_CHILD", _NO_CORE + "os.kill(os.getpid(), signal.SIGBUS)")
    with pytest.raises(PolicyError, match=LIMITS):
        PolicyBundle.compile(DEFAULT_POLICY)


PLANLESS = [
    ("no plan saved", "raise SystemExit(4)"),
    ("a plan that is not JSON", "import sys; sys.stdout.write('{not json'); raise SystemExit(0)"),
    ("a plan that is a list", "import sys; sys.stdout.write('[1]'); raise SystemExit(0)"),
    ("an empty plan", "raise SystemExit(0)"),
]


@pytest.mark.parametrize(("name", "child"), PLANLESS, ids=[p[0] for p in PLANLESS])
def test_without_a_plan_the_policy_reads_everything_and_nothing_is_remembered(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, name: str, child: str
) -> None:
    monkeypatch.setattr(gate, "_CHILD", child)
    with caplog.at_level(logging.WARNING, logger="cleanroom.policy"):
        bundle = PolicyBundle.compile(DEFAULT_POLICY)
    assert (bundle.ingress_reads, bundle.egress_reads) == (WHOLE_DOCUMENT, WHOLE_DOCUMENT)
    decisions = [bundle.evaluate_ingress(ingress_doc()) for _ in range(2)]
    assert [(d.allowed, d.cached) for d in decisions] == [(True, False), (True, False)]
    if name == "no plan saved":
        assert "plan could not be saved" in caplog.text


@pytest.mark.parametrize(
    ("plan", "document"),
    [(None, None), ("", None), ("{not json", None), ("[1]", None), ('"plan"', None), ("{}", {})],
)
def test_only_a_json_object_is_a_plan(plan: str | None, document: dict[str, object] | None) -> None:
    assert gate.Checked(compiles=True, plan=plan).plan_document() == document


def test_the_child_does_not_import_a_planted_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "regopy.py").write_text("raise SystemExit(9)\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    bundle = PolicyBundle.compile(DEFAULT_POLICY)
    assert bundle.ingress_reads.deterministic  # the genuine engine's plan
    assert bundle.evaluate_ingress(ingress_doc()).allowed
