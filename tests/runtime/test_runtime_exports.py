from __future__ import annotations

import cleanroom.runtime
import cleanroom.runtime.sandbox


def test_runtime_exports_exactly_the_public_surface() -> None:
    assert set(cleanroom.runtime.__all__) == {
        "ModelRunner",
        "ModelSignature",
        "RuntimeLimits",
        "SandboxReport",
        "Supervisor",
        "TensorSpec",
        "load_model",
        "validate_model",
    }
    for name in cleanroom.runtime.__all__:
        assert hasattr(cleanroom.runtime, name)


def test_sandbox_exports() -> None:
    assert set(cleanroom.runtime.sandbox.__all__) == {
        "SandboxReport",
        "SandboxedRunner",
        "Supervisor",
    }
