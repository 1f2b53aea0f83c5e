"""The default policy, shipped as ``default.rego`` next to this module."""

from __future__ import annotations

from importlib import resources

__all__ = ["DEFAULT_POLICY"]

#: Rego source of the policy in force when an instance is created without one;
#: commented line by line in the file itself and described in docs/policies.md.
DEFAULT_POLICY: str = (
    resources.files("cleanroom.policy").joinpath("default.rego").read_text(encoding="utf-8")
)
