"""Confinement steps the worker applies to itself, in order.

1. :func:`isolate_network` — new user and network namespaces
   (``unshare(CLONE_NEWUSER | CLONE_NEWNET)``): only a loopback interface,
   down, nothing to reach; and no capabilities left in the service's namespace.
   Then every capability is dropped (:func:`drop_capabilities`), also the
   ones the new namespaces grant, and all of them when the network namespace
   had to be made alone by a root service.
2. :func:`set_resource_limits` — address space, CPU time and open files from
   :class:`~cleanroom.runtime.base.RuntimeLimits`; no core dumps, so a crash
   never writes plaintext to disk; no file can be written or grown. Then no
   capability is left to raise them again (this also covers a worker without
   namespaces, which never calls :func:`isolate_network`).
3. :func:`forbid_dumping` — ``PR_SET_DUMPABLE`` 0: other processes of the
   same user cannot ptrace the worker or read its memory via ``/proc``.
4. :func:`~cleanroom.runtime.sandbox.landlock.restrict` — read-only access
   to the interpreter, its libraries and the package; nothing else.
5. :func:`~cleanroom.runtime.sandbox.seccomp.install_filter` — no sockets,
   no ``execve``, no writable opens, no signals to other processes, no new
   processes, nothing done to another process's limits or scheduling.

Python 3.11 has no ``os.unshare``, so the calls go through libc with ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource

from cleanroom.runtime.base import RuntimeLimits

# include/uapi/linux/sched.h
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
# include/uapi/linux/prctl.h
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_READ = 23
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
# include/uapi/linux/capability.h
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAP_SETPCAP = 8


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


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
        isolation = "userns+netns"
    except OSError:
        _unshare(CLONE_NEWNET)
        isolation = "netns"
    # Without a user namespace a root service's worker would keep every
    # capability (sethostname, settimeofday, reboot...); with one, it holds
    # them all in its own namespace. It needs none of them either way.
    drop_capabilities()
    return isolation


def _capget() -> tuple[int, int, int]:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc().capget(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capget: {os.strerror(err)}")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 63  # PR_CAPBSET_READ answers EINVAL past the kernel's last one


def drop_capabilities() -> None:
    """Leave this thread no capability: bounding, ambient, effective, permitted, inheritable.

    Capabilities belong to threads: called while the process has only one
    (as in the worker's first steps), every thread started later has none.
    The bounding set can only be emptied by a holder of ``CAP_SETPCAP``; a
    process without it has no capability to drop (``no_new_privs`` and the
    filter's ``execve`` ban keep it from gaining any). Raises OSError if any
    capability is left in the other sets.
    """
    libc = _libc()
    effective = _capget()[0]
    could_empty_bounding = bool(effective & (1 << _CAP_SETPCAP))
    if could_empty_bounding:
        for cap in range(_last_capability() + 1):
            held = libc.prctl(_PR_CAPBSET_READ, cap, 0, 0, 0)
            if held < 0:
                break  # past the kernel's last capability
            if held and libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(err)}")
    if libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        if err != errno.EINVAL:  # EINVAL: a kernel before ambient capabilities (4.3)
            raise OSError(err, f"prctl(PR_CAP_AMBIENT_CLEAR_ALL): {os.strerror(err)}")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    if libc.capset(ctypes.byref(header), (_CapData * 2)()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")
    if any(_capget()):
        raise OSError(errno.EPERM, "capabilities are left after dropping them")
    if could_empty_bounding and any(
        libc.prctl(_PR_CAPBSET_READ, cap, 0, 0, 0) == 1 for cap in range(64)
    ):
        raise OSError(errno.EPERM, "the capability bounding set is not empty")


def set_no_new_privs() -> None:
    # Required before Landlock and seccomp; also makes setuid binaries inert.
    if _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")


def set_resource_limits(limits: RuntimeLimits) -> dict[str, int]:
    """Apply RLIMIT_AS / RLIMIT_CPU / RLIMIT_NOFILE / RLIMIT_CORE / RLIMIT_FSIZE, then
    drop every capability (none is left to raise them); returns what was set.

    ``RLIMIT_FSIZE`` 0: the worker writes no file. The shared slot is written
    through its mapping, which the limit does not concern; a ``write`` to it,
    or to any regular file, fails with ``EFBIG`` (Python ignores ``SIGXFSZ``),
    so the slot cannot be grown to hold memory beyond ``RLIMIT_AS``.
    """
    applied = {
        "RLIMIT_AS": int(limits.memory_bytes),
        "RLIMIT_CPU": int(limits.cpu_seconds),
        "RLIMIT_NOFILE": int(limits.open_files),
        "RLIMIT_CORE": 0,
        "RLIMIT_FSIZE": 0,
    }
    for name, value in applied.items():
        hard = value
        if name == "RLIMIT_CPU":
            # At the soft limit the kernel sends SIGXCPU, at the hard one SIGKILL;
            # a gap lets the supervisor name the reason (setrlimit(2)).
            hard = value + 2
        resource.setrlimit(getattr(resource, name), (value, hard))
    drop_capabilities()
    return applied


def forbid_dumping() -> None:
    """Make this process non-dumpable: no core files, no ptrace or /proc/<pid>/mem by peers."""
    if _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_DUMPABLE): {os.strerror(err)}")
