"""The package's public surface is exactly the intended names."""

from __future__ import annotations

import subprocess
import sys

import cleanroom
from cleanroom import errors


def test_exported_names_are_exactly_the_sdk() -> None:
    assert sorted(cleanroom.__all__) == [
        "AttestationPolicy",
        "Client",
        "Instance",
        "ModelFormat",
        "Secret",
        "errors",
    ]
    for name in cleanroom.__all__:
        assert getattr(cleanroom, name) is not None
    assert cleanroom.errors is errors


def test_every_error_subclasses_the_base_and_codes_are_unique() -> None:
    classes = [getattr(errors, n) for n in errors.__all__ if n != "error_class_for_code"]
    assert all(issubclass(c, errors.Error) for c in classes)
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    assert issubclass(errors.PolicyDenied, errors.AccessDenied)
    assert errors.error_class_for_code("policy-denied") is errors.PolicyDenied
    assert errors.error_class_for_code("no-such-code") is errors.Error


def test_importing_errors_or_the_runtime_does_not_load_the_sdk() -> None:
    code = (
        "import sys, cleanroom.errors, cleanroom.runtime.base; "
        "print(any(m.startswith(('cleanroom.client', 'cleanroom.server')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
