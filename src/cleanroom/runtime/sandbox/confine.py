"""Confinement steps the worker applies to itself, in order.

1. :func:`isolate_network` — new user and network namespaces
   (``unshare(CLONE_NEWUSER | CLONE_NEWNET)``): only a loopback interface,
   down, nothing to reach; and no capabilities left in the service's namespace.
2. :func:`set_resource_limits` — address space, CPU time and open files from
   :class:`~cleanroom.runtime.base.RuntimeLimits`; no core dumps, so a crash
   never writes plaintext to disk.
3. :func:`forbid_dumping` — ``PR_SET_DUMPABLE`` 0: other processes of the
   same user cannot ptrace the worker or read its memory via ``/proc``.
4. :func:`~cleanroom.runtime.sandbox.landlock.restrict` — read-only access
   to the interpreter, its libraries and the package; nothing else.
5. :func:`~cleanroom.runtime.sandbox.seccomp.install_filter` — no sockets,
   no ``execve``, no writable opens, no signals to other processes.

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
_PR_SET_NO_NEW_PRIVS = 38


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> None:
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def isolate_network() -> str:
    """Move this process into new user and network namespaces; returns which, or raises OSError.

    The user namespace comes first: it also leaves the worker without any
    capability in the service's namespace (no ``CAP_SYS_PTRACE``, so no reading
    the memory of a non-dumpable service even when both run as root), and
    grants the ``CAP_SYS_ADMIN`` that the network namespace needs without
    privileges. Where user namespaces are disabled, a privileged service still
    gets the network namespace alone.
    """
    try:
        _unshare(CLONE_NEWUSER | CLONE_NEWNET)
        return "userns+netns"
    except OSError:
        _unshare(CLONE_NEWNET)
        return "netns"


def set_no_new_privs() -> None:
    # Required before Landlock and seccomp; also makes setuid binaries inert.
    if _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")


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
    """Make this process non-dumpable: no core files, no ptrace or /proc/<pid>/mem by peers."""
    if _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_DUMPABLE): {os.strerror(err)}")
