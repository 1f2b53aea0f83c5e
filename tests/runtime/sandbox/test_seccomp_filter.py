"""The seccomp filter on its own: program shape, and its effect in a fresh process."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.runtime.sandbox.kernel_headers import header_numbers

from cleanroom.errors import ConfigurationError
from cleanroom.runtime.sandbox import seccomp

SRC = str(Path(seccomp.__file__).resolve().parents[3])


def instructions(machine: str) -> list[tuple[int, int, int, int]]:
    program = seccomp.build_filter(machine)
    return [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_program_checks_the_architecture_first_and_allows_last(machine: str) -> None:
    prog = instructions(machine)
    assert prog[0] == (0x20, 0, 0, 4)  # load seccomp_data.arch
    assert prog[1][0] == 0x15  # compare with this ABI's AUDIT_ARCH
    assert prog[2] == (0x06, 0, 0, seccomp.SECCOMP_RET_KILL_PROCESS)
    assert prog[-1] == (0x06, 0, 0, seccomp.SECCOMP_RET_ALLOW)
    assert len(prog) < 4096  # BPF_MAXINSNS


def test_denied_syscalls_return_eperm() -> None:
    prog = instructions("x86_64")
    compared = {k for code, _, _, k in prog if code == 0x15}
    for name in ("socket", "execve", "execveat", "connect", "ptrace", "unshare"):
        assert seccomp._X86_64.denied[name] in compared


def test_unknown_architecture_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        seccomp.build_filter("sparc")


PROBE = textwrap.dedent(
    """
    import os, socket, sys
    from cleanroom.runtime.sandbox.seccomp import install_filter
    install_filter()
    results = []
    for family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        try:
            socket.socket(family, socket.SOCK_STREAM)
            results.append("socket-allowed")
        except OSError as exc:
            results.append(f"socket-{exc.errno}")
    try:
        os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
        results.append("write-allowed")
    except OSError as exc:
        results.append(f"write-{exc.errno}")
    with open("/proc/self/status") as status:  # read-only opens still work
        results.append("read-ok" if status.read() else "read-empty")
    os.kill(os.getpid(), 0)  # signalling itself stays allowed
    for target in (os.getppid(), -1, 0 - os.getpgid(0)):
        try:
            os.kill(target, 0)
            results.append("kill-allowed")
        except OSError as exc:
            results.append(f"kill-{exc.errno}")
    try:
        os.execv(sys.executable, [sys.executable, "-c", "print('exec-allowed')"])
    except OSError as exc:
        results.append(f"execve-{exc.errno}")
    print(" ".join(results))
    """
)


def test_filter_denies_sockets_execve_and_writes_in_a_real_process(tmp_path: Path) -> None:
    target = tmp_path / "written"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(target)],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == [
        "socket-1",
        "socket-1",
        "socket-1",
        "write-13",
        "read-ok",
        "kill-1",
        "kill-1",
        "kill-1",
        "execve-1",
    ]
    assert not target.exists()


@pytest.mark.parametrize(
    ("table", "header"),
    [
        (seccomp._X86_64, Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")),
        # aarch64 uses the generic table.
        (seccomp._AARCH64, Path("/usr/include/asm-generic/unistd.h")),
    ],
)
def test_syscall_numbers_match_the_kernel_headers(table: seccomp._Arch, header: Path) -> None:
    if not header.exists():
        pytest.skip(f"{header} is not installed")
    numbers = header_numbers(header)
    wrong = {
        name: (number, numbers[name])
        for name, number in table.denied.items()
        if name in numbers and numbers[name] != number
    }
    assert wrong == {}
    # Only syscalls newer than the installed headers may be missing from them.
    newer = {"fchmodat2", "setxattrat", "removexattrat", "file_setattr", "open_tree_attr"}
    newer |= {"cachestat"}
    assert set(table.denied) - set(numbers) <= newer
    assert numbers["seccomp"] == table.seccomp_nr
    assert numbers["openat"] in table.open_flags_arg
