"""A worker's first steps import nothing heavy, so it starts receiving its model at once."""

from __future__ import annotations

import subprocess
import sys

from cleanroom.runtime.sandbox.process import _BOOTSTRAP, _worker_environment


def _bootstrap_then(code: str) -> list[str]:
    """Run the worker's bootstrap up to startup.main, then *code*; its printed words."""
    done = subprocess.run(
        [
            sys.executable,
            "-s",
            "-B",
            "-P",
            "-c",
            _BOOTSTRAP.replace("sys.exit(main(sys.argv))", code),
        ],
        env=_worker_environment(),
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.split()


def test_the_first_steps_import_neither_numpy_nor_a_runtime_nor_the_supervisor() -> None:
    modules = set(_bootstrap_then("print(' '.join(m.split('.')[0] for m in sys.modules))"))
    assert "cleanroom" in modules
    assert not modules & {"numpy", "onnx", "onnxruntime", "ai_edge_litert", "subprocess"}


def test_the_bootstrap_runs_no_package_init() -> None:
    found = _bootstrap_then(
        "import cleanroom.runtime as r; print(hasattr(r, 'Supervisor'), hasattr(r, 'load_model'))"
    )
    assert found == ["False", "False"]
