"""A Landlock ruleset for the worker: read-only access to what Python needs, nothing else.

Landlock (Linux 5.13+, ``Documentation/userspace-api/landlock.rst``,
``include/uapi/linux/landlock.h``) lets an unprivileged process give up
filesystem access except beneath paths it names. The worker keeps read and
execute access to the interpreter, its libraries and the package, to its own
``/proc/<pid>`` and to the CPU description the runtimes read; everything else
— the service's data directory, other processes' ``/proc`` entries (and so the
service's memory), ``/etc`` — becomes unreachable. With ABI 4 and later TCP
bind/connect are refused as well, and with ABI 6 signals to processes outside
the sandbox and abstract Unix sockets are.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from collections.abc import Iterable

# Syscall numbers are the same on x86_64 and aarch64 (asm-generic/unistd.h).
_NR_CREATE_RULESET = 444
_NR_ADD_RULE = 445
_NR_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1

# LANDLOCK_ACCESS_FS_*
_EXECUTE = 1 << 0
_READ_FILE = 1 << 2
_READ_DIR = 1 << 3
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
# LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP (ABI 4)
_NET_ALL = (1 << 0) | (1 << 1)
# LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL (ABI 6)
_SCOPE_ALL = (1 << 0) | (1 << 1)

_READ_DIR_TREE = _EXECUTE | _READ_FILE | _READ_DIR
_READ_ONE_FILE = _READ_FILE

_SYSTEM_LIBRARIES = ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib")
# What the runtimes read about the machine (thread-pool sizing, cgroup quotas),
# and the dynamic loader's cache for libraries opened by name.
_MACHINE_FILES = (
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/sys/devices/system/cpu",
    "/etc/ld.so.cache",
)
_MACHINE_TREES = ("/sys/fs/cgroup",)


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is unavailable."""
    libc = ctypes.CDLL(None, use_errno=True)
    version = int(
        libc.syscall(_NR_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    )
    return max(version, 0)


def _fs_rights(abi: int) -> int:
    return _FS_BY_ABI[max(k for k in _FS_BY_ABI if k <= abi)]


def readable_paths() -> list[str]:
    """The directory trees the worker may read: interpreter, libraries, package, itself."""
    candidates = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        *sys.path,
        *_SYSTEM_LIBRARIES,
        *_MACHINE_TREES,
        f"/proc/{os.getpid()}",
    ]
    seen: list[str] = []
    for path in candidates:
        if path and os.path.isdir(path) and path not in seen:
            seen.append(path)
    return seen


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: str, access: int) -> bool:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        # struct landlock_path_beneath_attr { __u64 allowed_access; __s32 parent_fd; } packed
        attr = ctypes.create_string_buffer(struct.pack("=Qi", access, fd), 12)
        return int(libc.syscall(_NR_ADD_RULE, ruleset, _RULE_PATH_BENEATH, attr, 0)) == 0
    finally:
        os.close(fd)


def restrict(extra_trees: Iterable[str] = ()) -> int:
    """Restrict this thread (and threads it starts) to the read-only allow-list.

    Returns the ABI version used; raises OSError if Landlock is unavailable or
    refuses. ``PR_SET_NO_NEW_PRIVS`` must be set first (the seccomp step sets it).
    """
    abi = abi_version()
    if abi < 1:
        raise OSError(38, "Landlock is not available on this kernel")
    libc = ctypes.CDLL(None, use_errno=True)
    fs = _fs_rights(abi)
    # struct landlock_ruleset_attr { __u64 handled_access_fs, handled_access_net, scoped; }
    if abi >= 6:
        attr = struct.pack("=QQQ", fs, _NET_ALL, _SCOPE_ALL)
    elif abi >= 4:
        attr = struct.pack("=QQ", fs, _NET_ALL)
    else:
        attr = struct.pack("=Q", fs)
    buffer = ctypes.create_string_buffer(attr, len(attr))
    ruleset = int(libc.syscall(_NR_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)), 0))
    if ruleset < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        for tree in [*readable_paths(), *extra_trees]:
            _add_rule(libc, ruleset, tree, _READ_DIR_TREE & fs)
        for path in _MACHINE_FILES:
            if os.path.exists(path):
                access = _READ_DIR_TREE if os.path.isdir(path) else _READ_ONE_FILE
                _add_rule(libc, ruleset, path, access & fs)
        if int(libc.syscall(_NR_RESTRICT_SELF, ruleset, 0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_restrict_self: {os.strerror(err)}")
    finally:
        os.close(ruleset)
    return abi
