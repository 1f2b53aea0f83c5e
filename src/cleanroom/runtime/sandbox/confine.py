"""Confinement steps the worker applies to itself, in order.

1. :func:`isolate_network` — a new, empty network namespace
   (``unshare(CLONE_NEWNET)``; as an unprivileged user, inside a new user
   namespace). Only a loopback interface, down: nothing to reach.
2. :func:`set_resource_limits` — address space, CPU time and open files from
   :class:`~cleanroom.runtime.base.RuntimeLimits`; no core dumps, so a crash
   never writes plaintext to disk.
3. :func:`forbid_dumping` — ``PR_SET_DUMPABLE`` 0: other processes of the
   same user cannot ptrace the worker or read its memory via ``/proc``.
4. :func:`~cleanroom.runtime.sandbox.seccomp.install_filter` — no sockets,
   no ``execve``, no writable opens.

Python 3.11 has no ``os.unshare``, so the calls go through libc with ctypes.
"""

from __future__ import annotations

import ctypes
import os
import resource

from cleanroom.runtime.base import RuntimeLimits

# include/uapi/linux/sched.h
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
# include/uapi/linux/prctl.h
_PR_SET_DUMPABLE = 4


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> None:
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def isolate_network() -> str:
    """Move this process into a new network namespace; returns how, raises OSError if it cannot."""
    try:
        _unshare(CLONE_NEWNET)
        return "netns"
    except OSError:
        # Without CAP_SYS_ADMIN a user namespace grants it for the new netns only.
        _unshare(CLONE_NEWUSER | CLONE_NEWNET)
        return "userns+netns"


def set_resource_limits(limits: RuntimeLimits) -> dict[str, int]:
    """Apply RLIMIT_AS / RLIMIT_CPU / RLIMIT_NOFILE / RLIMIT_CORE; returns what was set."""
    applied = {
        "RLIMIT_AS": int(limits.memory_bytes),
        "RLIMIT_CPU": int(limits.cpu_seconds),
        "RLIMIT_NOFILE": int(limits.open_files),
        "RLIMIT_CORE": 0,
    }
    for name, value in applied.items():
        hard = value
        if name == "RLIMIT_CPU":
            # At the soft limit the kernel sends SIGXCPU, at the hard one SIGKILL;
            # a gap lets the supervisor name the reason (setrlimit(2)).
            hard = value + 2
        resource.setrlimit(getattr(resource, name), (value, hard))
    return applied


def forbid_dumping() -> None:
    if _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_DUMPABLE): {os.strerror(err)}")
