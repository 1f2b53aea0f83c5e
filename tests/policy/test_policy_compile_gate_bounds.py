"""The checks PolicyBundle.compile makes before any engine sees the text.

- The size limit counts UTF-8 bytes, not characters, and sits exactly at
  :data:`MAX_POLICY_BYTES`.
- The package is read from the module's first statement: ``package
  cleanroom`` appearing later (after an ``import`` or a rule) does not make
  the module one in package ``cleanroom``.
- The linear nesting check cannot be talked down by closing brackets that
  were never opened: stray closers do not earn credit for deeper nesting
  further on.
- An engine that builds no bundle fails the compile with :class:`PolicyError`
  (fail closed), even when it raised nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from cleanroom.errors import PolicyError
from cleanroom.policy import PolicyBundle, engine

LIMIT = engine.MAX_POLICY_BYTES
HEAD = "package cleanroom\ndefault allow_ingress := false\n# "
DEPTH = f"more than {engine.MAX_POLICY_NESTING} levels deep"


def _padded(total_bytes: int, char: str = "x") -> str:
    """A valid module of exactly *total_bytes* UTF-8 bytes, padded in a comment."""
    width = len(char.encode("utf-8"))
    room = total_bytes - len(HEAD) - 1
    assert room % width == 0
    source = HEAD + char * (room // width) + "\n"
    assert len(source.encode("utf-8")) == total_bytes
    return source


def test_a_module_of_exactly_the_limit_compiles() -> None:
    bundle = PolicyBundle.compile(_padded(LIMIT))
    assert bundle.digest.startswith("sha256:")


@pytest.mark.parametrize(
    "source",
    [_padded(LIMIT + 1), _padded(LIMIT + 2, "é"), _padded(LIMIT + 3, "€")],
    ids=["one byte over", "two-byte characters", "three-byte characters"],
)
def test_a_module_over_the_limit_in_bytes_is_refused(source: str) -> None:
    with pytest.raises(PolicyError, match=f"larger than {LIMIT} bytes"):
        PolicyBundle.compile(source)


@pytest.mark.parametrize(
    "source",
    [
        "import rego.v1\npackage cleanroom\ndefault allow_ingress := false\n",
        "x := 1\npackage cleanroom\n",
        "package other\npackage cleanroom\n",
        "# a comment\npackage\ncleanroom\n",
    ],
    ids=["after an import", "after a rule", "after another package", "split over lines"],
)
def test_the_package_must_be_the_first_statement(source: str) -> None:
    with pytest.raises(PolicyError, match="must start with `package cleanroom`"):
        PolicyBundle.compile(source)


@pytest.mark.parametrize("closers", ["]", ")", "}"])
def test_stray_closing_brackets_do_not_allow_deeper_nesting(closers: str) -> None:
    deep = engine.MAX_POLICY_NESTING + 10
    source = (
        "package cleanroom\n"
        + f"x := 1 {closers * 100}\n"
        + "y := "
        + "[" * deep
        + "1"
        + "]" * deep
        + "\n"
    )
    with pytest.raises(PolicyError, match=DEPTH + r" \(line 3\)"):
        PolicyBundle.compile(source)


class _NoBundle:
    """What a failed build returns: a bundle that is not ok."""

    def ok(self) -> bool:
        return False


def test_an_engine_that_builds_no_bundle_fails_the_compile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Builder(engine.Interpreter):  # type: ignore[misc]
        def build(self, *args: Any, **kwargs: Any) -> Any:
            super().build(*args, **kwargs)
            return _NoBundle()

    monkeypatch.setattr(engine, "Interpreter", Builder)
    with pytest.raises(PolicyError, match="the engine built no bundle"):
        PolicyBundle.compile("package cleanroom\nallow_egress := true\n")
