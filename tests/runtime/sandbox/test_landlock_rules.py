"""The Landlock allow-list on its own, in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cleanroom.runtime.sandbox import landlock

SRC = str(Path(landlock.__file__).resolve().parents[3])

pytestmark = pytest.mark.skipif(landlock.abi_version() < 1, reason="no Landlock on this kernel")

PROBE = textwrap.dedent(
    """
    import os, sys
    from cleanroom.runtime.sandbox import confine, landlock
    confine.set_no_new_privs()
    landlock.restrict()
    import json  # a late import still reads the standard library
    results = []
    for path in sys.argv[1:]:
        try:
            with open(path, "rb") as handle:
                handle.read(1)
            results.append("read")
        except OSError as exc:
            results.append(f"denied-{exc.errno}")
    print(" ".join(results))
    """
)


@pytest.mark.parametrize(
    ("name", "path", "expected"),
    [
        ("a file outside the allow-list", "{private}", "denied-13"),
        ("the system password file", "/etc/passwd", "denied-13"),
        ("the service's memory", "/proc/{parent}/mem", "denied-13"),
        ("the service's environment", "/proc/{parent}/environ", "denied-13"),
        ("its own status", "/proc/self/status", "read"),
        ("the CPU description", "/proc/cpuinfo", "read"),
        ("the package itself", landlock.__file__, "read"),
        ("numpy", __import__("numpy").__file__, "read"),
    ],
)
def test_reads_outside_the_allow_list_are_denied(
    tmp_path: Path, name: str, path: str, expected: str
) -> None:
    private = tmp_path / "service-secret"
    private.write_text("not for the model")
    target = path.format(private=private, parent=os.getpid())
    done = subprocess.run(
        [sys.executable, "-P", "-c", PROBE, target],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == [expected], name


def test_allow_list_holds_the_interpreter_and_no_data_directories() -> None:
    paths = landlock.readable_paths()
    assert sys.base_prefix in paths
    assert f"/proc/{os.getpid()}" in paths
    assert "/" not in paths
    assert "/etc" not in paths
    assert "/proc" not in paths
