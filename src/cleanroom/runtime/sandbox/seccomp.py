"""A seccomp filter for the sandboxed worker, as a classic BPF program.

The filter is a deny-list on top of the kernel's defaults (see
``docs/sandbox.md``): it takes away what a model runtime never needs and an
exfiltrating or escaping worker would — sockets, ``execve``, writable opens,
filesystem changes (names, modes, owners, times, inode flags and extended
attributes),
mounts, namespace and tracing calls, the host's clock, name and power state,
signals to other processes;
new processes (only threads may be created); changing the limits, scheduling
or memory placement of any process but the worker; resizing the shared slot;
memory outside ``RLIMIT_AS`` (``memfd_create``, System V and POSIX IPC);
asking the kernel to signal someone else (``F_SETOWN``, ``O_ASYNC``); and
state another worker could read on a file both can open: locks (``flock``,
``fcntl`` locks), change notifications (``inotify``), shared mappings of a file
(``mmap`` with ``MAP_SHARED``, so no shared futex either), and what the page
cache holds (``mincore``, ``cachestat``, ``preadv2`` with ``RWF_NOWAIT``,
``fadvise64``, AIO). It is installed with
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

# include/uapi/linux/sched.h: a thread shares the worker's thread group, so it
# dies with it; a new process (no CLONE_THREAD) would outlive it.
CLONE_THREAD = 0x00010000
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
# | CLONE_NEWPID | CLONE_NEWNET (CLONE_NEWTIME shares its bit with the exit
# signal in clone(2) and is ignored there).
CLONE_NEW_MASK = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
CLONE_NEW_MASK |= 0x20000000 | 0x40000000

# fcntl(2) commands allowed (include/uapi/asm-generic/fcntl.h,
# include/uapi/linux/fcntl.h): descriptor flags and duplicates, and reading
# state. Everything else is refused: making the kernel signal a chosen process
# (F_SETOWN, F_SETOWN_EX, F_SETSIG) or taking a lease, which blocks other
# processes' opens; record and open-file-description locks and F_NOTIFY, which
# another worker could see on a file they both read; seals and pipe sizes.
_F_SETFL = 4
_O_ASYNC = 0o20000  # FASYNC: SIGIO to the owner on every event
_ALLOWED_FCNTL = (
    0,  # F_DUPFD
    1,  # F_GETFD
    2,  # F_SETFD
    3,  # F_GETFL
    9,  # F_GETOWN
    11,  # F_GETSIG
    16,  # F_GETOWN_EX
    1025,  # F_GETLEASE
    1030,  # F_DUPFD_CLOEXEC
    1032,  # F_GETPIPE_SZ
    1034,  # F_GET_SEALS
)
# mmap(2): a shared mapping of a file other workers can map too would be memory
# they share (and shared futexes on it). The slot is mapped before the filter.
_MAP_SHARED = 0x01  # and MAP_SHARED_VALIDATE (0x03)
_NO_FD = 0xFFFFFFFF  # -1: an anonymous mapping
# preadv2(2) with RWF_NOWAIT answers EAGAIN for what the page cache lacks: a
# direct read of the cache's state (include/uapi/linux/fs.h).
_RWF_NOWAIT = 0x08
# ioctl(2) requests doing the same, or pushing input into a terminal:
# FIOASYNC, TIOCSTI, TIOCLINUX (include/uapi/asm-generic/ioctls.h),
# FIOSETOWN, SIOCSPGRP (include/uapi/asm-generic/sockios.h); and those changing
# a file the worker only reads (include/uapi/linux/fs.h, fscrypt.h): inode
# flags and extended attributes (FS_IOC_SETFLAGS, FS_IOC32_SETFLAGS,
# FS_IOC_FSSETXATTR), its generation (FS_IOC_SETVERSION, FS_IOC32_SETVERSION),
# encryption policies and keys, the filesystem's label, and shared extents
# (FICLONE, FICLONERANGE, FIDEDUPERANGE). The same numbers on both architectures.
_DENIED_IOCTL = (
    0x5452,
    0x5412,
    0x541C,
    0x8901,
    0x8902,
    0x40086602,
    0x40046602,
    0x401C5820,
    0x40087602,
    0x40047602,
    0x800C6613,
    0xC0506617,
    0xC0406618,
    0xC0406619,
    0x41009432,
    0x40049409,
    0x4020940D,
    0xC0189436,
)

# setpriority(2) PRIO_PROCESS, ioprio_set(2) IOPRIO_WHO_PROCESS: "who" is one
# process (0: the caller); the other "which" values name process groups or users.
_PRIO_PROCESS = 0
_IOPRIO_WHO_PROCESS = 1


@dataclass(frozen=True)
class _Arch:
    audit_arch: int
    seccomp_nr: int
    denied: dict[str, int]
    open_flags_arg: dict[int, int]  # syscall number -> index of its flags argument
    # Signals may target this process only: these take the target pid as args[0].
    own_pid_arg0: dict[str, int]
    # Limits, scheduling and memory placement: args[0] must be 0 (the caller)
    # or this process's pid.
    self_arg0: dict[str, int]
    # (which, who) calls: args[0] must name one process, args[1] be 0 or this pid.
    which_who: dict[str, tuple[int, int]]  # name -> (number, the "which" for one process)
    fcntl: int
    ioctl: int
    clone: int  # flags are args[0] on both x86_64 and aarch64
    mmap: int
    preadv2: int
    enosys: dict[str, int]  # refused as "not implemented", so glibc falls back
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
        # Metadata of files the worker can open for reading (Landlock does not
        # cover these; as their owner it needs no capability).
        "fchmod": 91,
        "fchown": 93,
        "utime": 132,
        "utimes": 235,
        "futimesat": 261,
        "utimensat": 280,
        "setxattr": 188,
        "lsetxattr": 189,
        "fsetxattr": 190,
        "removexattr": 197,
        "lremovexattr": 198,
        "fremovexattr": 199,
        "setxattrat": 463,
        "removexattrat": 466,
        "file_setattr": 469,
        "quotactl_fd": 443,
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
        "delete_module": 176,
        "kexec_load": 246,
        "kexec_file_load": 320,
        # The host's own state: capabilities are dropped, and these stay
        # refused should a kernel ever let one through without them.
        "reboot": 169,
        "settimeofday": 164,
        "clock_settime": 227,
        "adjtimex": 159,
        "clock_adjtime": 305,
        "sethostname": 170,
        "setdomainname": 171,
        "chroot": 161,
        "pivot_root": 155,
        "swapon": 167,
        "swapoff": 168,
        "acct": 163,
        "quotactl": 179,
        "iopl": 172,
        "ioperm": 173,
        "name_to_handle_at": 303,
        "fanotify_init": 300,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "open_tree_attr": 467,
        # Old interfaces no model runtime uses: the local descriptor table, and
        # loading a shared library the pre-ELF way.
        "modify_ldt": 154,
        "uselib": 134,
        "tkill": 200,
        "pidfd_open": 434,
        "pidfd_getfd": 438,
        "pidfd_send_signal": 424,
        "kcmp": 312,
        "process_madvise": 440,
        "process_mrelease": 448,
        # New processes would outlive the worker (threads go through clone).
        "fork": 57,
        "vfork": 58,
        # The shared slot must keep its size (a shrunk one is SIGBUS in the service).
        "ftruncate": 77,
        "fallocate": 285,
        # Memory that RLIMIT_AS does not count, or that outlives the worker.
        "memfd_create": 319,
        "memfd_secret": 447,
        "shmget": 29,
        "shmat": 30,
        "shmctl": 31,
        "msgget": 68,
        "msgsnd": 69,
        "msgrcv": 70,
        "msgctl": 71,
        "semget": 64,
        "semop": 65,
        "semctl": 66,
        "semtimedop": 220,
        "mq_open": 240,
        "mq_unlink": 241,
        # State of files every worker can read, which another worker could see:
        # locks, change notifications, and what the page cache holds.
        "flock": 73,
        "inotify_init": 253,
        "inotify_init1": 294,
        "inotify_add_watch": 254,
        "mincore": 27,
        "cachestat": 451,
        "fadvise64": 221,
        "io_setup": 206,
    },
    open_flags_arg={2: 1, 257: 2},  # open(path, flags, ...), openat(dirfd, path, flags, ...)
    own_pid_arg0={"kill": 62, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297},
    self_arg0={
        "prlimit64": 302,
        "sched_setscheduler": 144,
        "sched_setparam": 142,
        "sched_setattr": 314,
        "sched_setaffinity": 203,
        "migrate_pages": 256,
        "move_pages": 279,
    },
    which_who={"setpriority": (141, _PRIO_PROCESS), "ioprio_set": (251, _IOPRIO_WHO_PROCESS)},
    fcntl=72,
    ioctl=16,
    clone=56,
    mmap=9,
    preadv2=327,
    enosys={"clone3": 435},
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
        "fchmod": 52,
        "fchown": 55,
        "utimensat": 88,
        "setxattr": 5,
        "lsetxattr": 6,
        "fsetxattr": 7,
        "removexattr": 14,
        "lremovexattr": 15,
        "fremovexattr": 16,
        "setxattrat": 463,
        "removexattrat": 466,
        "file_setattr": 469,
        "quotactl_fd": 443,
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
        "delete_module": 106,
        "kexec_load": 104,
        "kexec_file_load": 294,
        "reboot": 142,
        "settimeofday": 170,
        "clock_settime": 112,
        "adjtimex": 171,
        "clock_adjtime": 266,
        "sethostname": 161,
        "setdomainname": 162,
        "chroot": 51,
        "pivot_root": 41,
        "swapon": 224,
        "swapoff": 225,
        "acct": 89,
        "quotactl": 60,
        "name_to_handle_at": 264,
        "fanotify_init": 262,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "open_tree_attr": 467,
        "tkill": 130,
        "pidfd_open": 434,
        "pidfd_getfd": 438,
        "pidfd_send_signal": 424,
        "kcmp": 272,
        "process_madvise": 440,
        "process_mrelease": 448,
        "ftruncate": 46,
        "fallocate": 47,
        "memfd_create": 279,
        "memfd_secret": 447,
        "shmget": 194,
        "shmat": 196,
        "shmctl": 195,
        "msgget": 186,
        "msgsnd": 189,
        "msgrcv": 188,
        "msgctl": 187,
        "semget": 190,
        "semop": 193,
        "semctl": 191,
        "semtimedop": 192,
        "mq_open": 180,
        "mq_unlink": 181,
        "flock": 32,
        "inotify_init1": 26,
        "inotify_add_watch": 27,
        "mincore": 232,
        "cachestat": 451,
        "fadvise64": 223,
        "io_setup": 0,
    },
    open_flags_arg={56: 2},  # openat
    own_pid_arg0={"kill": 129, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240},
    self_arg0={
        "prlimit64": 261,
        "sched_setscheduler": 119,
        "sched_setparam": 118,
        "sched_setattr": 274,
        "sched_setaffinity": 122,
        "migrate_pages": 238,
        "move_pages": 239,
    },
    which_who={"setpriority": (140, _PRIO_PROCESS), "ioprio_set": (30, _IOPRIO_WHO_PROCESS)},
    fcntl=25,  # no fcntl64 on a 64-bit ABI
    ioctl=29,
    clone=220,  # no fork or vfork: glibc's fork is clone without CLONE_THREAD
    mmap=222,
    preadv2=286,
    enosys={"clone3": 435},
    x32_guard=False,
)

_ARCHES = {"x86_64": _X86_64, "aarch64": _AARCH64}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _errno(value: int) -> int:
    return SECCOMP_RET_ERRNO | (value & 0xFFFF)


# An instruction whose jump targets may be labels, or a label (a str) naming
# the next instruction. Classic BPF only jumps forward, by at most 255.
_Target = int | str
_Item = tuple[int, _Target, _Target, int] | str


def _assemble(items: list[_Item]) -> list[bytes]:
    labels: dict[str, int] = {}
    count = 0
    for item in items:
        if isinstance(item, str):
            if item in labels:
                raise ValueError(f"BPF label defined twice: {item}")
            labels[item] = count
        else:
            count += 1
    program: list[bytes] = []
    for item in items:
        if isinstance(item, str):
            continue
        code, jt, jf, k = item
        offsets = []
        for target in (jt, jf):
            offset = target if isinstance(target, int) else labels[target] - len(program) - 1
            if not 0 <= offset <= 255:
                raise ValueError(f"BPF jump out of range: {item}")
            offsets.append(offset)
        program.append(_insn(code, offsets[0], offsets[1], k))
    return program


def _arg(index: int) -> _Item:
    return (_LD_W_ABS, 0, 0, _off_arg_low(index))


def _ret(value: int) -> _Item:
    return (_RET_K, 0, 0, value)


_DENY = _errno(errno.EPERM)


def _syscall_rule(name: str, number: int, body: list[_Item]) -> list[_Item]:
    """*body* (which must return on every path) for syscall *number* only.

    Labels inside *body* are ``name.deny`` / ``name.allow`` by convention.
    """
    return [(_JEQ_K, 0, f"{name}.next", number), *body, f"{name}.next"]


def _verdicts(name: str) -> list[_Item]:
    return [f"{name}.deny", _ret(_DENY), f"{name}.allow", _ret(SECCOMP_RET_ALLOW)]


def _rules(arch: _Arch, pid: int) -> list[_Item]:
    items: list[_Item] = []
    for name, number in sorted(arch.own_pid_arg0.items()):
        # pid_t is 32 bits; negative targets (process groups, -1 for all) never match.
        body = [_arg(0), (_JEQ_K, f"{name}.allow", f"{name}.deny", pid), *_verdicts(name)]
        items += _syscall_rule(name, number, body)
    for name, number in sorted(arch.self_arg0.items()):
        # 0 is the caller; a thread id is not the pid, so a call aimed at one of
        # the worker's other threads is refused too (ONNX Runtime pins its pool
        # threads so, and goes on unpinned when refused).
        body = [
            _arg(0),
            (_JEQ_K, f"{name}.allow", 0, 0),
            (_JEQ_K, f"{name}.allow", f"{name}.deny", pid),
            *_verdicts(name),
        ]
        items += _syscall_rule(name, number, body)
    for name, (number, one_process) in sorted(arch.which_who.items()):
        body = [
            _arg(0),
            (_JEQ_K, 0, f"{name}.deny", one_process),
            _arg(1),
            (_JEQ_K, f"{name}.allow", 0, 0),
            (_JEQ_K, f"{name}.allow", f"{name}.deny", pid),
            *_verdicts(name),
        ]
        items += _syscall_rule(name, number, body)
    # fcntl(fd, cmd, arg): the allowed commands, and F_SETFL without O_ASYNC.
    body = [_arg(1)]
    body += [(_JEQ_K, "fcntl.allow", 0, cmd) for cmd in _ALLOWED_FCNTL]
    body += [
        (_JEQ_K, 0, "fcntl.deny", _F_SETFL),
        _arg(2),
        (_JSET_K, "fcntl.deny", "fcntl.allow", _O_ASYNC),
        *_verdicts("fcntl"),
    ]
    items += _syscall_rule("fcntl", arch.fcntl, body)
    # mmap(addr, length, prot, flags, fd, offset): no shared mapping of a file.
    body = [
        _arg(3),
        (_JSET_K, 0, "mmap.allow", _MAP_SHARED),
        _arg(4),
        (_JEQ_K, "mmap.allow", "mmap.deny", _NO_FD),
        *_verdicts("mmap"),
    ]
    items += _syscall_rule("mmap", arch.mmap, body)
    # preadv2(fd, iov, iovcnt, pos_l, pos_h, flags): no RWF_NOWAIT.
    body = [_arg(5), (_JSET_K, "preadv2.deny", "preadv2.allow", _RWF_NOWAIT), *_verdicts("preadv2")]
    items += _syscall_rule("preadv2", arch.preadv2, body)
    body = [_arg(1)]
    body += [(_JEQ_K, "ioctl.deny", 0, request) for request in _DENIED_IOCTL]
    body += [_ret(SECCOMP_RET_ALLOW), "ioctl.deny", _ret(_DENY)]
    items += _syscall_rule("ioctl", arch.ioctl, body)
    # clone(flags, ...): threads only, and no new namespace.
    body = [
        _arg(0),
        (_JSET_K, "clone.deny", 0, CLONE_NEW_MASK),
        (_JSET_K, "clone.allow", "clone.deny", CLONE_THREAD),
        *_verdicts("clone"),
    ]
    items += _syscall_rule("clone", arch.clone, body)
    for number, arg in sorted(arch.open_flags_arg.items()):
        # Opening read-only is allowed (the runtime reads /proc and its own
        # libraries); any flag that could create or write a file is refused.
        name = f"open{number}"
        body = [
            _arg(arg),
            (_JSET_K, 0, f"{name}.allow", _WRITE_FLAGS),
            _ret(_errno(errno.EACCES)),
            f"{name}.allow",
            _ret(SECCOMP_RET_ALLOW),
        ]
        items += _syscall_rule(name, number, body)
    return items


def build_filter(machine: str | None = None, own_pid: int | None = None) -> bytes:
    """The BPF program for *machine* (default: this one), as packed ``sock_filter``s.

    Signals (``kill``, ``tgkill``, ``rt_*sigqueueinfo``) are allowed only to
    *own_pid* (default: this process), so a worker cannot stop the service;
    limits, scheduling and memory placement (``prlimit64``, ``sched_set*``,
    ``setpriority``, ``ioprio_set``, ``*_pages``) only for the caller (0) or
    *own_pid*; ``clone`` only for threads; ``clone3`` answers ``ENOSYS``, so
    glibc falls back to ``clone``, whose flags the filter can read.
    """
    pid = (os.getpid() if own_pid is None else own_pid) & 0xFFFFFFFF
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        raise ConfigurationError(
            f"no seccomp filter for architecture {machine or platform.machine()}"
        )
    items: list[_Item] = [
        # A syscall made under another ABI would be read with the wrong table: kill.
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 1, 0, arch.audit_arch),
        _ret(SECCOMP_RET_KILL_PROCESS),
        (_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if arch.x32_guard:
        # x32 syscalls set bit 30 (__X32_SYSCALL_BIT) on x86_64.
        items += [(_JGE_K, 0, 1, 0x40000000), _ret(SECCOMP_RET_KILL_PROCESS)]
    for number in sorted(set(arch.denied.values())):
        items += [(_JEQ_K, 0, 1, number), _ret(_DENY)]
    for number in sorted(set(arch.enosys.values())):
        items += [(_JEQ_K, 0, 1, number), _ret(_errno(errno.ENOSYS))]
    items += _rules(arch, pid)
    items.append(_ret(SECCOMP_RET_ALLOW))
    return b"".join(_assemble(items))


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
