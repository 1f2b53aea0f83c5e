"""A seccomp filter for the sandboxed worker, as a classic BPF program.

The filter is a deny-list on top of the kernel's defaults (see
``docs/sandbox.md``): it takes away what a model runtime never needs and an
exfiltrating or escaping worker would — sockets, ``execve``, writable opens,
filesystem changes, namespace and tracing calls, signals to other processes. It is installed with
``prctl(PR_SET_NO_NEW_PRIVS)`` and ``seccomp(SECCOMP_SET_MODE_FILTER,
SECCOMP_FILTER_FLAG_TSYNC)`` so it covers threads the runtime already
started. References: Linux ``Documentation/userspace-api/seccomp_filter.rst``,
``include/uapi/linux/seccomp.h``, ``include/uapi/linux/filter.h``,
``include/uapi/linux/audit.h``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from dataclasses import dataclass

from cleanroom.errors import ConfigurationError

# Classic BPF opcodes (include/uapi/linux/filter.h).
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

# include/uapi/linux/seccomp.h
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_PR_SET_NO_NEW_PRIVS = 38

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
_OFF_NR = 0
_OFF_ARCH = 4


def _off_arg_low(index: int) -> int:
    # Low 32 bits of args[index] on a little-endian machine.
    return 16 + 8 * index


# open(2) flags that create or write (include/uapi/asm-generic/fcntl.h):
# O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | __O_TMPFILE.
_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000 | 0o20000000


@dataclass(frozen=True)
class _Arch:
    audit_arch: int
    seccomp_nr: int
    denied: dict[str, int]
    open_flags_arg: dict[int, int]  # syscall number -> index of its flags argument
    # Signals may target this process only: these take the target pid as args[0].
    own_pid_arg0: dict[str, int]
    x32_guard: bool


# x86_64: arch/x86/entry/syscalls/syscall_64.tbl.
_X86_64 = _Arch(
    audit_arch=0xC000003E,  # AUDIT_ARCH_X86_64
    seccomp_nr=317,
    denied={
        "socket": 41,
        "socketpair": 53,
        "connect": 42,
        "bind": 49,
        "listen": 50,
        "accept": 43,
        "accept4": 288,
        "execve": 59,
        "execveat": 322,
        "openat2": 437,  # flags live in a struct the filter cannot read
        "creat": 85,
        "truncate": 76,
        "mkdir": 83,
        "mkdirat": 258,
        "rmdir": 84,
        "unlink": 87,
        "unlinkat": 263,
        "rename": 82,
        "renameat": 264,
        "renameat2": 316,
        "link": 86,
        "linkat": 265,
        "symlink": 88,
        "symlinkat": 266,
        "mknod": 133,
        "mknodat": 259,
        "chmod": 90,
        "fchmodat": 268,
        "fchmodat2": 452,
        "chown": 92,
        "lchown": 94,
        "fchownat": 260,
        "mount": 165,
        "umount2": 166,
        "unshare": 272,
        "setns": 308,
        "ptrace": 101,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "open_by_handle_at": 304,
        "bpf": 321,
        "perf_event_open": 298,
        "userfaultfd": 323,
        "io_uring_setup": 425,
        "keyctl": 250,
        "add_key": 248,
        "request_key": 249,
        "init_module": 175,
        "finit_module": 313,
        "kexec_load": 246,
        "tkill": 200,
        "pidfd_open": 434,
        "pidfd_getfd": 438,
        "pidfd_send_signal": 424,
        "kcmp": 312,
    },
    open_flags_arg={2: 1, 257: 2},  # open(path, flags, ...), openat(dirfd, path, flags, ...)
    own_pid_arg0={"kill": 62, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297},
    x32_guard=True,
)

# aarch64: include/uapi/asm-generic/unistd.h (no legacy open/creat/mkdir...).
_AARCH64 = _Arch(
    audit_arch=0xC00000B7,  # AUDIT_ARCH_AARCH64
    seccomp_nr=277,
    denied={
        "socket": 198,
        "socketpair": 199,
        "bind": 200,
        "listen": 201,
        "accept": 202,
        "connect": 203,
        "accept4": 242,
        "execve": 221,
        "execveat": 281,
        "openat2": 437,
        "truncate": 45,
        "mkdirat": 34,
        "unlinkat": 35,
        "symlinkat": 36,
        "linkat": 37,
        "renameat": 38,
        "renameat2": 276,
        "mknodat": 33,
        "fchmodat": 53,
        "fchmodat2": 452,
        "fchownat": 54,
        "mount": 40,
        "umount2": 39,
        "unshare": 97,
        "setns": 268,
        "ptrace": 117,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "open_by_handle_at": 265,
        "bpf": 280,
        "perf_event_open": 241,
        "userfaultfd": 282,
        "io_uring_setup": 425,
        "keyctl": 219,
        "add_key": 217,
        "request_key": 218,
        "init_module": 105,
        "finit_module": 273,
        "kexec_load": 104,
        "tkill": 130,
        "pidfd_open": 434,
        "pidfd_getfd": 438,
        "pidfd_send_signal": 424,
        "kcmp": 272,
    },
    open_flags_arg={56: 2},  # openat
    own_pid_arg0={"kill": 129, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240},
    x32_guard=False,
)

_ARCHES = {"x86_64": _X86_64, "aarch64": _AARCH64}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _errno(value: int) -> int:
    return SECCOMP_RET_ERRNO | (value & 0xFFFF)


def build_filter(machine: str | None = None, own_pid: int | None = None) -> bytes:
    """The BPF program for *machine* (default: this one), as packed ``sock_filter``s.

    Signals (``kill``, ``tgkill``, ``rt_*sigqueueinfo``) are allowed only to
    *own_pid* (default: this process), so a worker cannot stop the service.
    """
    pid = os.getpid() if own_pid is None else own_pid
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        raise ConfigurationError(
            f"no seccomp filter for architecture {machine or platform.machine()}"
        )
    prog = [
        # A syscall made under another ABI would be read with the wrong table: kill.
        _insn(_LD_W_ABS, 0, 0, _OFF_ARCH),
        _insn(_JEQ_K, 1, 0, arch.audit_arch),
        _insn(_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if arch.x32_guard:
        # x32 syscalls set bit 30 (__X32_SYSCALL_BIT) on x86_64.
        prog += [
            _insn(_JGE_K, 0, 1, 0x40000000),
            _insn(_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        ]
    for number in sorted(set(arch.denied.values())):
        prog += [_insn(_JEQ_K, 0, 1, number), _insn(_RET_K, 0, 0, _errno(errno.EPERM))]
    for number in sorted(arch.own_pid_arg0.values()):
        # pid_t is 32 bits; negative targets (process groups, -1 for all) never match.
        prog += [
            _insn(_JEQ_K, 0, 4, number),
            _insn(_LD_W_ABS, 0, 0, _off_arg_low(0)),
            _insn(_JEQ_K, 0, 1, pid & 0xFFFFFFFF),
            _insn(_RET_K, 0, 0, SECCOMP_RET_ALLOW),
            _insn(_RET_K, 0, 0, _errno(errno.EPERM)),
        ]
    for number, arg in sorted(arch.open_flags_arg.items()):
        # Opening read-only is allowed (the runtime reads /proc and its own
        # libraries); any flag that could create or write a file is refused.
        prog += [
            _insn(_JEQ_K, 0, 4, number),
            _insn(_LD_W_ABS, 0, 0, _off_arg_low(arg)),
            _insn(_JSET_K, 0, 1, _WRITE_FLAGS),
            _insn(_RET_K, 0, 0, _errno(errno.EACCES)),
            _insn(_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        ]
    prog.append(_insn(_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def install_filter() -> None:
    """Install the filter on every thread of this process; raises OSError if refused."""
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        raise OSError(errno.ENOSYS, f"no seccomp filter for {platform.machine()}")
    program = build_filter()
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
    result = libc.syscall(
        ctypes.c_long(arch.seccomp_nr),
        ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(_SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(fprog),
    )
    if result != 0:
        # With TSYNC a positive result is the id of a thread that could not sync.
        err = ctypes.get_errno() if result < 0 else errno.ESRCH
        raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(err)}")
