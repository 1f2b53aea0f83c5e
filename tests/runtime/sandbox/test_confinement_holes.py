"""Holes a confined worker must not have, tried from inside real workers.

Each attempt in ``EXPECTED`` runs inside a worker started exactly as the
supervisor starts one (namespaces, limits, capabilities dropped, Landlock,
then the seccomp filter, then a model loaded): the worker's ``probe`` is
replaced, in that worker only, by :func:`_attempts`. The "other process" it
aims at is a sleeping child this test starts for the purpose (its own session
and process group), never the test process nor anything else on the host.
Attempts that would be harmful if they were allowed are chosen to be no-ops
on anything but that child: ``ftruncate`` of the slot to its own size,
``reboot`` with a wrong magic number, ``settimeofday(NULL, NULL)``, IPC
lookups without ``IPC_CREAT``.

The filter's decisions are also checked on the program itself, for both
architectures, with a small classic-BPF interpreter.
"""

from __future__ import annotations

import ctypes
import errno
import inspect
import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tests.runtime.reference import assert_same, direct_onnx, direct_tflite
from tests.runtime.sandbox.kernel_headers import header_numbers

from cleanroom.errors import ServiceUnavailable
from cleanroom.runtime import RuntimeLimits, Supervisor
from cleanroom.runtime.sandbox import process, seccomp
from cleanroom.runtime.sandbox.process import WorkerProcess
from cleanroom.wire.formats import ModelFormat

ZERO_CAPS = "0000000000000000"

# attempt -> what it must give inside a confined worker: "ok" or an errno name.
EXPECTED: dict[str, str] = {
    # 1. scheduling, limits and memory placement of other processes
    "prlimit64(other, RLIMIT_CPU, {1, 1})": "EPERM",
    "prlimit64(other, RLIMIT_NOFILE, {3, 3})": "EPERM",
    "prlimit64(other, RLIMIT_AS, read only)": "EPERM",
    "sched_setscheduler(other, SCHED_IDLE)": "EPERM",
    "sched_setparam(other, 0)": "EPERM",
    "sched_setattr(other, SCHED_IDLE)": "EPERM",
    "sched_setaffinity(other, cpu 0)": "EPERM",
    "setpriority(PRIO_PROCESS, other, 19)": "EPERM",
    "setpriority(PRIO_PGRP, other's group, 19)": "EPERM",
    "setpriority(PRIO_USER, unused uid, 19)": "EPERM",
    "ioprio_set(WHO_PROCESS, other, IDLE)": "EPERM",
    "ioprio_set(WHO_PGRP, other's group, IDLE)": "EPERM",
    "ioprio_set(WHO_USER, unused uid, IDLE)": "EPERM",
    "migrate_pages(other)": "EPERM",
    "move_pages(other)": "EPERM",
    "process_madvise(-1)": "EPERM",
    "process_mrelease(-1)": "EPERM",
    "kcmp(self, other)": "EPERM",
    "pidfd_open(other)": "EPERM",
    # ... while the worker may still do these to itself
    "setrlimit(RLIMIT_NOFILE, unchanged)": "ok",
    "prlimit64(own pid, RLIMIT_NOFILE, read only)": "ok",
    "sched_setaffinity(0, unchanged)": "ok",
    "sched_setaffinity(own pid, unchanged)": "ok",
    "sched_setscheduler(0, SCHED_OTHER)": "ok",
    "setpriority(PRIO_PROCESS, 0, unchanged)": "ok",
    "setpriority(PRIO_PROCESS, own pid, unchanged)": "ok",
    "ioprio_set(WHO_PROCESS, 0, BE 4)": "ok",
    # A thread id is not the pid: the filter cannot tell the worker's own
    # threads from other processes (ONNX Runtime's pinning of its pool fails so).
    "sched_setaffinity(own thread, unchanged)": "EPERM",
    # 2. resizing the shared slot
    "ftruncate(slot, its own size)": "EPERM",
    "fallocate(slot, KEEP_SIZE)": "EPERM",
    # 3. asking the kernel to signal another process
    "fcntl(pipe, F_SETOWN, other)": "EPERM",
    "fcntl(pipe, F_SETSIG, 0)": "EPERM",
    "fcntl(pipe, F_SETOWN_EX, other)": "EPERM",
    "fcntl(pipe, F_SETFL, O_ASYNC)": "EPERM",
    "fcntl(pipe, F_SETLEASE, F_UNLCK)": "EPERM",
    "ioctl(pipe, FIOSETOWN, other)": "EPERM",
    "ioctl(pipe, SIOCSPGRP, other)": "EPERM",
    "ioctl(pipe, FIOASYNC, 1)": "EPERM",
    "ioctl(pipe, TIOCSTI)": "EPERM",
    "fcntl(pipe, F_SETFL, O_NONBLOCK)": "ok",
    "fcntl(pipe, F_GETOWN)": "ok",
    "ioctl(pipe, FIONREAD)": "ok",
    # 4. memory outside RLIMIT_AS
    "memfd_create": "EPERM",
    "memfd_secret": "EPERM",
    "shmget(key, no IPC_CREAT)": "EPERM",
    "shmat(id)": "EPERM",
    "msgget(key, no IPC_CREAT)": "EPERM",
    "semget(key, no IPC_CREAT)": "EPERM",
    "mq_open(name, no O_CREAT)": "EPERM",
    "pwrite(slot, past its end)": "EFBIG",
    "RLIMIT_FSIZE": "(0, 0)",
    # 5. processes that outlive the worker, and new namespaces
    "fork()": "EPERM",
    "os.fork()": "EPERM",
    "clone(SIGCHLD)": "EPERM",
    "clone(CLONE_NEWUSER | CLONE_NEWNET | SIGCHLD)": "EPERM",
    "clone(CLONE_THREAD | CLONE_NEWNS)": "EPERM",
    "clone3(NULL, 0)": "ENOSYS",
    "threading.Thread": "ok",
    # 6. capabilities
    "CapInh": ZERO_CAPS,
    "CapPrm": ZERO_CAPS,
    "CapEff": ZERO_CAPS,
    "CapBnd": ZERO_CAPS,
    "CapAmb": ZERO_CAPS,
    "reboot(wrong magic)": "EPERM",
    "settimeofday(NULL, NULL)": "EPERM",
    # 7. metadata of files the worker can open (here its own slot; an absent
    # path where the kernel, were the call allowed, would answer ENOENT)
    "fchmod(slot, unchanged mode)": "EPERM",
    "fchown(slot, -1, -1)": "EPERM",
    "futimens(slot, unchanged)": "EPERM",
    "utimensat(absent path)": "EPERM",
    "fsetxattr(slot, absent name, XATTR_REPLACE)": "EPERM",
    "setxattr(absent path)": "EPERM",
    "lsetxattr(absent path)": "EPERM",
    "fremovexattr(slot, absent name)": "EPERM",
    "removexattr(absent path)": "EPERM",
    "lremovexattr(absent path)": "EPERM",
    "ioctl(slot, FS_IOC_SETFLAGS, unchanged)": "EPERM",
    "ioctl(slot, FS_IOC_FSSETXATTR, unchanged)": "EPERM",
    "file_setattr(absent path)": "EPERM",
    "fstat(slot)": "ok",
    # 8. the host's clock and root (EINVAL and ENOENT, were they allowed)
    "clock_settime(CLOCK_MONOTONIC)": "EPERM",
    "chroot(absent path)": "EPERM",
    # 9. state of a file every worker can read (the interpreter), which another
    # worker could observe: locks, notifications, shared mappings, the page cache
    "flock(interpreter, LOCK_SH)": "EPERM",
    "fcntl(interpreter, F_SETLK, read lock)": "EPERM",
    "fcntl(interpreter, F_GETLK)": "EPERM",
    "fcntl(interpreter, F_OFD_SETLK, read lock)": "EPERM",
    "fcntl(interpreter, F_NOTIFY)": "EPERM",
    "inotify_init1(0)": "EPERM",
    "mmap(interpreter, MAP_SHARED)": "EPERM",
    "mincore(own page)": "EPERM",
    "cachestat(interpreter)": "EPERM",
    "preadv2(interpreter, RWF_NOWAIT)": "EPERM",
    "posix_fadvise(interpreter, DONTNEED)": "EPERM",
    "io_setup(1)": "EPERM",
    # ... while private mappings of it, shared anonymous memory and plain reads work
    "mmap(interpreter, MAP_PRIVATE)": "ok",
    "mmap(anonymous, MAP_SHARED)": "ok",
    "preadv2(interpreter, no flags)": "ok",
}


def _attempts(other: int, other_group: int, slot_fd: int) -> dict[str, str]:
    """Runs inside the worker, as its probe: every attempt of ``EXPECTED``, and its outcome."""
    import contextlib
    import ctypes
    import errno
    import fcntl
    import os
    import platform
    import resource
    import struct
    import threading
    import time

    libc = ctypes.CDLL(None, use_errno=True)
    # Calls that may fork keep the GIL, so a child (were one made) can run Python to exit.
    holding_gil = ctypes.PyDLL(None, use_errno=True)
    numbers = {
        "x86_64": {
            "fork": 57,
            "clone": 56,
            "clone3": 435,
            "prlimit64": 302,
            "sched_setattr": 314,
            "setpriority": 141,
            "ioprio_set": 251,
            "ioprio_get": 252,
            "migrate_pages": 256,
            "move_pages": 279,
            "process_madvise": 440,
            "process_mrelease": 448,
            "kcmp": 312,
            "pidfd_open": 434,
            "fallocate": 285,
            "memfd_secret": 447,
            "shmget": 29,
            "shmat": 30,
            "msgget": 68,
            "semget": 64,
            "mq_open": 240,
            "reboot": 169,
            "settimeofday": 164,
            "sched_setparam": 142,
            "file_setattr": 469,
            "inotify_init1": 294,
            "mincore": 27,
            "cachestat": 451,
            "io_setup": 206,
        },
        "aarch64": {
            "clone": 220,
            "clone3": 435,
            "prlimit64": 261,
            "sched_setattr": 274,
            "setpriority": 140,
            "ioprio_set": 30,
            "ioprio_get": 31,
            "migrate_pages": 238,
            "move_pages": 239,
            "process_madvise": 440,
            "process_mrelease": 448,
            "kcmp": 272,
            "pidfd_open": 434,
            "fallocate": 47,
            "memfd_secret": 447,
            "shmget": 194,
            "shmat": 196,
            "msgget": 186,
            "semget": 190,
            "mq_open": 180,
            "reboot": 142,
            "settimeofday": 170,
            "sched_setparam": 118,
            "file_setattr": 469,
            "inotify_init1": 26,
            "mincore": 232,
            "cachestat": 451,
            "io_setup": 0,
        },
    }[platform.machine()]
    results: dict[str, str] = {}

    def attempt(name: str, action: Callable[[], object]) -> None:
        try:
            action()
        except OSError as exc:
            results[name] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        else:
            results[name] = "ok"

    def arg(value: object) -> object:
        return ctypes.c_long(value) if isinstance(value, int) else value

    def raw(name: str, *args: object, lib: ctypes.CDLL = libc) -> Callable[[], int]:
        def call() -> int:
            ctypes.set_errno(0)
            result = int(lib.syscall(ctypes.c_long(numbers[name]), *map(arg, args)))
            if result == -1:
                raise OSError(ctypes.get_errno(), name)
            return result

        return call

    def spawning(name: str, *args: object) -> Callable[[], None]:
        # Were the call allowed, the child would leave at once and be reaped.
        def call() -> None:
            pid = raw(name, *args, lib=holding_gil)()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)

        return call

    def closing(action: Callable[[], int]) -> Callable[[], None]:
        return lambda: os.close(action())

    ioprio_idle = 3 << 13
    unused_uid = 4_242_424
    limit = ctypes.c_uint64 * 2
    attempt(
        "prlimit64(other, RLIMIT_CPU, {1, 1})",
        raw("prlimit64", other, resource.RLIMIT_CPU, ctypes.byref(limit(1, 1)), None),
    )
    attempt(
        "prlimit64(other, RLIMIT_NOFILE, {3, 3})",
        raw("prlimit64", other, resource.RLIMIT_NOFILE, ctypes.byref(limit(3, 3)), None),
    )
    attempt(
        "prlimit64(other, RLIMIT_AS, read only)",
        lambda: resource.prlimit(other, resource.RLIMIT_AS),
    )
    attempt(
        "sched_setscheduler(other, SCHED_IDLE)",
        lambda: os.sched_setscheduler(other, os.SCHED_IDLE, os.sched_param(0)),
    )
    attempt("sched_setparam(other, 0)", raw("sched_setparam", other, ctypes.byref(ctypes.c_int(0))))
    # struct sched_attr, SCHED_ATTR_SIZE_VER0: size, policy, flags, nice, priority, 3 x u64.
    sched_attr = ctypes.create_string_buffer(struct.pack("=IIQiIQQQ", 48, 5, 0, 0, 0, 0, 0, 0))
    attempt("sched_setattr(other, SCHED_IDLE)", raw("sched_setattr", other, sched_attr, 0))
    attempt("sched_setaffinity(other, cpu 0)", lambda: os.sched_setaffinity(other, {0}))
    attempt(
        "setpriority(PRIO_PROCESS, other, 19)", lambda: os.setpriority(os.PRIO_PROCESS, other, 19)
    )
    attempt(
        "setpriority(PRIO_PGRP, other's group, 19)",
        lambda: os.setpriority(os.PRIO_PGRP, other_group, 19),
    )
    attempt(
        "setpriority(PRIO_USER, unused uid, 19)",
        lambda: os.setpriority(os.PRIO_USER, unused_uid, 19),
    )
    attempt("ioprio_set(WHO_PROCESS, other, IDLE)", raw("ioprio_set", 1, other, ioprio_idle))
    attempt(
        "ioprio_set(WHO_PGRP, other's group, IDLE)", raw("ioprio_set", 2, other_group, ioprio_idle)
    )
    attempt("ioprio_set(WHO_USER, unused uid, IDLE)", raw("ioprio_set", 3, unused_uid, ioprio_idle))
    attempt("migrate_pages(other)", raw("migrate_pages", other, 0, None, None))
    attempt("move_pages(other)", raw("move_pages", other, 0, None, None, None, 0))
    attempt("process_madvise(-1)", raw("process_madvise", -1, None, 0, 0, 0))
    attempt("process_mrelease(-1)", raw("process_mrelease", -1, 0))
    attempt("kcmp(self, other)", raw("kcmp", os.getpid(), other, 1, 0, 0))  # KCMP_VM
    attempt("pidfd_open(other)", closing(raw("pidfd_open", other, 0)))

    own, nofile = os.getpid(), resource.getrlimit(resource.RLIMIT_NOFILE)
    cpus = os.sched_getaffinity(0)
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    attempt(
        "setrlimit(RLIMIT_NOFILE, unchanged)",
        lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile),
    )
    attempt(
        "prlimit64(own pid, RLIMIT_NOFILE, read only)",
        lambda: resource.prlimit(own, resource.RLIMIT_NOFILE),
    )
    attempt("sched_setaffinity(0, unchanged)", lambda: os.sched_setaffinity(0, cpus))
    attempt("sched_setaffinity(own pid, unchanged)", lambda: os.sched_setaffinity(own, cpus))
    attempt(
        "sched_setscheduler(0, SCHED_OTHER)",
        lambda: os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)),
    )
    attempt(
        "setpriority(PRIO_PROCESS, 0, unchanged)", lambda: os.setpriority(os.PRIO_PROCESS, 0, nice)
    )
    attempt(
        "setpriority(PRIO_PROCESS, own pid, unchanged)",
        lambda: os.setpriority(os.PRIO_PROCESS, own, nice),
    )
    attempt("ioprio_set(WHO_PROCESS, 0, BE 4)", raw("ioprio_set", 1, 0, (2 << 13) | 4))
    started, finish = threading.Event(), threading.Event()
    tids: list[int] = []

    def wait() -> None:
        tids.append(threading.get_native_id())
        started.set()
        finish.wait(30)

    thread = threading.Thread(target=wait)
    attempt("threading.Thread", thread.start)
    if started.wait(30):
        attempt(
            "sched_setaffinity(own thread, unchanged)", lambda: os.sched_setaffinity(tids[0], cpus)
        )
    finish.set()
    thread.join()

    size = os.fstat(slot_fd).st_size
    attempt("ftruncate(slot, its own size)", lambda: os.ftruncate(slot_fd, size))
    attempt("fallocate(slot, KEEP_SIZE)", raw("fallocate", slot_fd, 1, 0, 4096))
    attempt("pwrite(slot, past its end)", lambda: os.pwrite(slot_fd, b"\0", size))

    read_end, write_end = os.pipe()
    try:
        flags = fcntl.fcntl(read_end, fcntl.F_GETFL)
        attempt(
            "fcntl(pipe, F_SETOWN, other)", lambda: fcntl.fcntl(read_end, fcntl.F_SETOWN, other)
        )
        attempt("fcntl(pipe, F_SETSIG, 0)", lambda: fcntl.fcntl(read_end, 10, 0))
        owner = struct.pack("ii", 1, other)  # F_OWNER_PID
        attempt("fcntl(pipe, F_SETOWN_EX, other)", lambda: fcntl.fcntl(read_end, 15, owner))
        attempt(
            "fcntl(pipe, F_SETFL, O_ASYNC)",
            lambda: fcntl.fcntl(read_end, fcntl.F_SETFL, flags | os.O_ASYNC),
        )
        attempt("fcntl(pipe, F_SETLEASE, F_UNLCK)", lambda: fcntl.fcntl(read_end, 1024, 2))
        other_int = struct.pack("i", other)
        attempt("ioctl(pipe, FIOSETOWN, other)", lambda: fcntl.ioctl(read_end, 0x8901, other_int))
        attempt("ioctl(pipe, SIOCSPGRP, other)", lambda: fcntl.ioctl(read_end, 0x8902, other_int))
        one = struct.pack("i", 1)
        attempt("ioctl(pipe, FIOASYNC, 1)", lambda: fcntl.ioctl(read_end, 0x5452, one))
        attempt("ioctl(pipe, TIOCSTI)", lambda: fcntl.ioctl(write_end, 0x5412, b"x"))
        attempt(
            "fcntl(pipe, F_SETFL, O_NONBLOCK)",
            lambda: fcntl.fcntl(read_end, fcntl.F_SETFL, flags | os.O_NONBLOCK),
        )
        attempt("fcntl(pipe, F_GETOWN)", lambda: fcntl.fcntl(read_end, fcntl.F_GETOWN))
        attempt("ioctl(pipe, FIONREAD)", lambda: fcntl.ioctl(read_end, 0x541B, b"\0" * 4))
    finally:
        os.close(read_end)
        os.close(write_end)

    attempt("memfd_create", lambda: os.close(os.memfd_create("hole")))
    attempt("memfd_secret", closing(raw("memfd_secret", 0)))
    key = 0x7C1EA400
    attempt("shmget(key, no IPC_CREAT)", raw("shmget", key, 4096, 0))
    attempt("shmat(id)", raw("shmat", 0x7FFFFFF0, None, 0))
    attempt("msgget(key, no IPC_CREAT)", raw("msgget", key, 0))
    attempt("semget(key, no IPC_CREAT)", raw("semget", key, 1, 0))
    attempt(
        "mq_open(name, no O_CREAT)",
        closing(raw("mq_open", ctypes.c_char_p(b"cleanroom-absent"), os.O_RDONLY, 0, None)),
    )
    results["RLIMIT_FSIZE"] = str(resource.getrlimit(resource.RLIMIT_FSIZE))

    if "fork" in numbers:
        attempt("fork()", spawning("fork"))
    else:  # aarch64 has no fork: glibc's fork is clone(SIGCHLD)
        attempt("fork()", spawning("clone", 17, 0, 0, 0, 0))

    def python_fork() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    attempt("os.fork()", python_fork)
    attempt("clone(SIGCHLD)", spawning("clone", 17, 0, 0, 0, 0))
    attempt(
        "clone(CLONE_NEWUSER | CLONE_NEWNET | SIGCHLD)",
        spawning("clone", 0x10000000 | 0x40000000 | 17, 0, 0, 0, 0),
    )
    # The kernel itself refuses this one with EINVAL (a thread needs CLONE_SIGHAND).
    attempt("clone(CLONE_THREAD | CLONE_NEWNS)", raw("clone", 0x10000 | 0x20000, 0, 0, 0, 0))
    attempt("clone3(NULL, 0)", raw("clone3", None, 0))

    with open("/proc/self/status") as status:
        for line in status:
            field, _, value = line.partition(":")
            if field.startswith("Cap"):
                results[field] = value.strip()
    attempt("reboot(wrong magic)", raw("reboot", 0, 0, 0, None))
    attempt("settimeofday(NULL, NULL)", raw("settimeofday", None, None))

    slot = os.fstat(slot_fd)
    absent, name = "/cleanroom-absent", "user.cleanroom-absent"
    attempt("fchmod(slot, unchanged mode)", lambda: os.fchmod(slot_fd, slot.st_mode & 0o7777))
    attempt("fchown(slot, -1, -1)", lambda: os.fchown(slot_fd, -1, -1))
    times = (slot.st_atime_ns, slot.st_mtime_ns)
    attempt("futimens(slot, unchanged)", lambda: os.utime(slot_fd, ns=times))
    attempt("utimensat(absent path)", lambda: os.utime(absent, ns=(0, 0)))
    attempt(
        "fsetxattr(slot, absent name, XATTR_REPLACE)",
        lambda: os.setxattr(slot_fd, name, b"", os.XATTR_REPLACE),
    )
    attempt("setxattr(absent path)", lambda: os.setxattr(absent, name, b""))
    attempt("lsetxattr(absent path)", lambda: os.setxattr(absent, name, b"", follow_symlinks=False))
    attempt("fremovexattr(slot, absent name)", lambda: os.removexattr(slot_fd, name))
    attempt("removexattr(absent path)", lambda: os.removexattr(absent, name))
    attempt(
        "lremovexattr(absent path)", lambda: os.removexattr(absent, name, follow_symlinks=False)
    )
    flags = bytearray(8)
    attr = bytearray(28)
    for get, buffer in ((0x80086601, flags), (0x801C581F, attr)):  # FS_IOC_GETFLAGS, FSGETXATTR
        with contextlib.suppress(OSError):  # unchanged then means zeros
            fcntl.ioctl(slot_fd, get, buffer)
    attempt(
        "ioctl(slot, FS_IOC_SETFLAGS, unchanged)",
        lambda: fcntl.ioctl(slot_fd, 0x40086602, bytes(flags)),
    )
    attempt(
        "ioctl(slot, FS_IOC_FSSETXATTR, unchanged)",
        lambda: fcntl.ioctl(slot_fd, 0x401C5820, bytes(attr)),
    )
    file_attr = ctypes.create_string_buffer(24)  # struct file_attr, FILE_ATTR_SIZE_VER0
    attempt(
        "file_setattr(absent path)",
        raw("file_setattr", -100, ctypes.c_char_p(absent.encode()), file_attr, 24, 0),
    )
    attempt("fstat(slot)", lambda: os.fstat(slot_fd))
    attempt("clock_settime(CLOCK_MONOTONIC)", lambda: time.clock_settime(time.CLOCK_MONOTONIC, 1.0))
    attempt("chroot(absent path)", lambda: os.chroot(absent))

    import mmap
    import sys

    shared = os.open(sys.executable, os.O_RDONLY)
    try:
        read_lock = struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 1, 0)  # struct flock
        attempt("flock(interpreter, LOCK_SH)", lambda: fcntl.flock(shared, fcntl.LOCK_SH))
        attempt(
            "fcntl(interpreter, F_SETLK, read lock)",
            lambda: fcntl.fcntl(shared, fcntl.F_SETLK, read_lock),
        )
        attempt(
            "fcntl(interpreter, F_GETLK)", lambda: fcntl.fcntl(shared, fcntl.F_GETLK, read_lock)
        )
        attempt(
            "fcntl(interpreter, F_OFD_SETLK, read lock)",
            lambda: fcntl.fcntl(shared, fcntl.F_OFD_SETLK, read_lock),
        )
        attempt("fcntl(interpreter, F_NOTIFY)", lambda: fcntl.fcntl(shared, 1026, 1))
        attempt("inotify_init1(0)", closing(raw("inotify_init1", 0)))
        page = mmap.PAGESIZE

        def mapped(fd: int, flags: int) -> Callable[[], None]:
            return lambda: mmap.mmap(fd, page, flags, mmap.PROT_READ).close()

        attempt("mmap(interpreter, MAP_SHARED)", mapped(shared, mmap.MAP_SHARED))
        attempt("mmap(interpreter, MAP_PRIVATE)", mapped(shared, mmap.MAP_PRIVATE))
        attempt("mmap(anonymous, MAP_SHARED)", mapped(-1, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS))
        own_page = mmap.mmap(-1, page)
        address = ctypes.addressof(ctypes.c_char.from_buffer(own_page))
        vector = ctypes.create_string_buffer(1)
        attempt("mincore(own page)", raw("mincore", address, page, vector))
        del vector
        cache_range = ctypes.create_string_buffer(struct.pack("QQ", 0, page))
        cache_stat = ctypes.create_string_buffer(40)
        attempt("cachestat(interpreter)", raw("cachestat", shared, cache_range, cache_stat, 0))
        buffer = bytearray(page)
        attempt(
            "preadv2(interpreter, RWF_NOWAIT)",
            lambda: os.preadv(shared, [buffer], 0, os.RWF_NOWAIT),
        )
        attempt("preadv2(interpreter, no flags)", lambda: os.preadv(shared, [buffer], 0, 0))
        attempt(
            "posix_fadvise(interpreter, DONTNEED)",
            lambda: os.posix_fadvise(shared, 0, 0, os.POSIX_FADV_DONTNEED),
        )
        context = ctypes.c_ulong(0)
        attempt("io_setup(1)", raw("io_setup", 1, ctypes.byref(context)))
    finally:
        os.close(shared)
    return results


def _hook(other: int, other_group: int, *, without_user_namespaces: bool) -> str:
    """Code run before the worker's bootstrap: it swaps the worker's probe for
    :func:`_attempts` (and can make user namespaces look unavailable)."""
    return (
        textwrap.dedent(inspect.getsource(_attempts))
        + textwrap.dedent(
            f"""
            import importlib.machinery as _machinery
            import sys as _sys
            from collections.abc import Callable


            def _patch_worker(module):
                module.probe = lambda: _attempts({other}, {other_group}, int(_sys.argv[2]))


            def _patch_confine(module):
                if not {without_user_namespaces}:
                    return
                unshare = module._unshare

                def without_user_namespaces(flags):
                    if flags & module.CLONE_NEWUSER:
                        raise OSError(1, "user namespaces disabled (test)")
                    unshare(flags)

                module._unshare = without_user_namespaces


            _PATCHES = {{
                "cleanroom.runtime.sandbox.worker": _patch_worker,
                "cleanroom.runtime.sandbox.confine": _patch_confine,
            }}


            class _Patcher:
                @staticmethod
                def find_spec(name, path, target=None):
                    if name not in _PATCHES:
                        return None
                    spec = _machinery.PathFinder.find_spec(name, path)
                    run = spec.loader.exec_module

                    def exec_module(module):
                        run(module)
                        _PATCHES[name](module)

                    spec.loader.exec_module = exec_module
                    return spec


            _sys.meta_path.insert(0, _Patcher)
            """
        )
        + process._BOOTSTRAP
    )


@pytest.fixture(scope="module")
def other() -> Iterator[subprocess.Popen[bytes]]:
    """Another process of the same user, in its own session: the only target of the attempts."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    yield child
    child.kill()
    child.wait()


def _ioprio(pid: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    number = {"x86_64": 252, "aarch64": 31}[os.uname().machine]
    return int(libc.syscall(ctypes.c_long(number), ctypes.c_int(1), ctypes.c_int(pid)))


def _state_of(pid: int) -> tuple[object, ...]:
    limits = Path(f"/proc/{pid}/limits").read_text()
    return (
        limits,
        os.sched_getscheduler(pid),
        os.sched_getaffinity(pid),
        os.getpriority(os.PRIO_PROCESS, pid),
        _ioprio(pid),
    )


def _confined_worker(
    monkeypatch: pytest.MonkeyPatch,
    other: subprocess.Popen[bytes],
    fmt: ModelFormat,
    model: bytes,
    limits: RuntimeLimits,
    *,
    network: str = "auto",
    without_user_namespaces: bool = False,
    require: tuple[str, ...] = ("seccomp",),
) -> WorkerProcess:
    hook = _hook(other.pid, os.getpgid(other.pid), without_user_namespaces=without_user_namespaces)
    monkeypatch.setattr(process, "_BOOTSTRAP", hook)
    worker = WorkerProcess(fmt, limits, network=network, require=require)
    worker.start(model)
    return worker


needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="a network namespace without a user namespace needs root"
)


@pytest.mark.parametrize(
    ("network", "without_user_namespaces", "namespaces"),
    [
        ("auto", False, "userns+netns"),
        pytest.param("auto", True, "netns", marks=needs_root),
        ("seccomp", False, None),
    ],
    ids=["user-and-network-namespaces", "network-namespace-only", "no-namespace"],
)
def test_every_hole_is_closed_inside_a_confined_worker(
    monkeypatch: pytest.MonkeyPatch,
    other: subprocess.Popen[bytes],
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
    network: str,
    without_user_namespaces: bool,
    namespaces: str | None,
) -> None:
    before = _state_of(other.pid)
    model = model_bytes("mixed_io.onnx")
    worker = _confined_worker(
        monkeypatch,
        other,
        ModelFormat.ONNX,
        model,
        limits,
        network=network,
        without_user_namespaces=without_user_namespaces,
    )
    try:
        assert worker.sandbox["seccomp"] is True
        assert worker.sandbox["network_namespace"] == namespaces
        found = worker.probe(timeout_s=60)
        wrong = {k: found.get(k) for k, want in EXPECTED.items() if found.get(k) != want}
        assert wrong == {}
        assert set(found) == set(EXPECTED)
        # The worker is whole: it still answers, as the runtime does directly.
        inputs = {
            "x": np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4),
            "scale": np.array([0.5], np.float32),
            "ids": np.arange(2, dtype=np.int64),
        }
        assert_same(worker.run(inputs, 20.0), direct_onnx(model, inputs))
    finally:
        worker.stop()
    assert worker.pid is not None
    assert _state_of(other.pid) == before
    assert other.poll() is None


def test_the_report_lists_the_file_size_limit(supervisor: Supervisor) -> None:
    # Nothing in a worker writes a file: the slot is written through its mapping.
    assert supervisor.report().rlimits["RLIMIT_FSIZE"] == 0


def _conv_model() -> bytes:
    """A convolution and a product big enough for ONNX Runtime to use its thread pool."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    weights = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    dense = rng.standard_normal((32 * 62 * 62, 10)).astype(np.float32) / 100
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Flatten", ["r"], ["f"]),
            helper.make_node("MatMul", ["f", "d"], ["y"]),
        ],
        "threads",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(dense, "d")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_runtimes_start_their_threads_under_the_filter(
    monkeypatch: pytest.MonkeyPatch,
    other: subprocess.Popen[bytes],
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
) -> None:
    # intra_op_threads=0: each runtime starts a thread per core once the filter is
    # on (ONNX Runtime also tries to pin them; that fails and it goes on unpinned).
    default_threads = replace(limits, intra_op_threads=0)
    model = _conv_model()
    inputs = {"x": np.random.default_rng(6).standard_normal((1, 16, 64, 64)).astype(np.float32)}
    onnx_worker = _confined_worker(monkeypatch, other, ModelFormat.ONNX, model, default_threads)
    try:
        threads_before = len(os.listdir(f"/proc/{onnx_worker.pid}/task"))
        for _ in range(3):
            got = onnx_worker.run(inputs, 20.0)
        np.testing.assert_allclose(got["y"], direct_onnx(model, inputs)["y"], rtol=1e-4, atol=1e-5)
        if (os.cpu_count() or 1) > 1:
            assert len(os.listdir(f"/proc/{onnx_worker.pid}/task")) >= threads_before
            assert len(os.listdir(f"/proc/{onnx_worker.pid}/task")) > 1
        assert onnx_worker.probe(timeout_s=60)["threading.Thread"] == "ok"
    finally:
        onnx_worker.stop()
    tflite = model_bytes("add_mul.tflite")
    tflite_worker = _confined_worker(
        monkeypatch, other, ModelFormat.TFLITE, tflite, default_threads
    )
    try:
        tensors = {"a": np.ones((1, 4), np.float32), "b": np.full((1, 4), 3.0, np.float32)}
        assert_same(tflite_worker.run(tensors, 20.0), direct_tflite(tflite, tensors))
        assert tflite_worker.probe(timeout_s=60)["clone3(NULL, 0)"] == "ENOSYS"
    finally:
        tflite_worker.stop()


# The filter's decisions on the program itself, for both architectures.

PID, OTHER = 4242, 4243
ALLOW, KILL = seccomp.SECCOMP_RET_ALLOW, seccomp.SECCOMP_RET_KILL_PROCESS
EPERM = seccomp.SECCOMP_RET_ERRNO | errno.EPERM
EACCES = seccomp.SECCOMP_RET_ERRNO | errno.EACCES
ENOSYS = seccomp.SECCOMP_RET_ERRNO | errno.ENOSYS
# glibc's pthread_create: CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
# CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID.
THREAD = 0x3D0F00
# glibc's fork: CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD.
FORK = 0x01200011
CLONE_NEW = {
    "CLONE_NEWNS": 0x20000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
COMMON = {
    "x86_64": {"read": 0, "futex": 202, "mmap": 9, "openat": 257, "kill": 62},
    "aarch64": {"read": 63, "futex": 98, "mmap": 222, "openat": 56, "kill": 129},
}


def run_filter(program: bytes, arch: int, nr: int, *args: int) -> int:
    """What a classic-BPF seccomp program answers (the opcodes build_filter uses)."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    insns = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        elif code in (0x15, 0x35, 0x45):  # BPF_JMP | JEQ / JGE / JSET, BPF_K
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def decisions(machine: str) -> list[tuple[str, str, tuple[int, ...], int]]:
    table: seccomp._Arch = {"x86_64": seccomp._X86_64, "aarch64": seccomp._AARCH64}[machine]
    n = {**COMMON[machine], **table.denied, **table.self_arg0, **table.enosys}
    n.update({name: number for name, (number, _) in table.which_who.items()})
    n.update({"fcntl": table.fcntl, "ioctl": table.ioctl, "clone": table.clone})
    n.update({"mmap": table.mmap, "preadv2": table.preadv2})
    cases: list[tuple[str, str, tuple[int, ...], int]] = [
        ("reads and memory", "read", (0, 0, 10), ALLOW),
        ("", "futex", (0, 0), ALLOW),
        ("", "mmap", (0, 4096, 3, 0x22), ALLOW),
        ("read-only open", "openat", (0, 0, os.O_RDONLY | os.O_CLOEXEC), ALLOW),
        ("writable open", "openat", (0, 0, os.O_WRONLY), EACCES),
        ("signal itself", "kill", (PID, 0), ALLOW),
        ("signal another", "kill", (OTHER, 9), EPERM),
        ("signal its group", "kill", (0, 9), EPERM),
    ]
    for name in sorted(table.self_arg0):
        cases += [
            (f"{name} on itself (0)", name, (0,), ALLOW),
            (f"{name} on itself (pid)", name, (PID,), ALLOW),
            (f"{name} on another", name, (OTHER,), EPERM),
            (f"{name} on a thread id", name, (PID + 1,), EPERM),
        ]
    for name, (_, one_process) in sorted(table.which_who.items()):
        groups = [which for which in (0, 1, 2, 3) if which != one_process]
        cases += [
            (f"{name} on itself (0)", name, (one_process, 0, 0), ALLOW),
            (f"{name} on itself (pid)", name, (one_process, PID, 0), ALLOW),
            (f"{name} on another", name, (one_process, OTHER, 0), EPERM),
        ]
        cases += [(f"{name} which={w} (group, user)", name, (w, 0, 0), EPERM) for w in groups]
    cases += [
        ("fcntl F_SETOWN", "fcntl", (3, 8, OTHER), EPERM),
        ("fcntl F_SETSIG", "fcntl", (3, 10, 9), EPERM),
        ("fcntl F_SETOWN_EX", "fcntl", (3, 15, 0), EPERM),
        ("fcntl F_SETLEASE", "fcntl", (3, 1024, 0), EPERM),
        ("fcntl F_SETFL O_ASYNC", "fcntl", (3, 4, os.O_ASYNC | os.O_NONBLOCK), EPERM),
        ("fcntl F_SETFL O_NONBLOCK", "fcntl", (3, 4, os.O_NONBLOCK), ALLOW),
        ("fcntl F_GETFL", "fcntl", (3, 3, 0), ALLOW),
        ("fcntl F_SETFD", "fcntl", (3, 2, 1), ALLOW),
        ("fcntl F_GETOWN", "fcntl", (3, 9, 0), ALLOW),
        ("fcntl F_DUPFD_CLOEXEC", "fcntl", (3, 1030, 0), ALLOW),
        ("fcntl F_ADD_SEALS", "fcntl", (3, 1033, 1), EPERM),
        ("fcntl F_GETLK", "fcntl", (3, 5, 0), EPERM),
        ("fcntl F_SETLK", "fcntl", (3, 6, 0), EPERM),
        ("fcntl F_SETLKW", "fcntl", (3, 7, 0), EPERM),
        ("fcntl F_OFD_GETLK", "fcntl", (3, 36, 0), EPERM),
        ("fcntl F_OFD_SETLK", "fcntl", (3, 37, 0), EPERM),
        ("fcntl F_OFD_SETLKW", "fcntl", (3, 38, 0), EPERM),
        ("fcntl F_NOTIFY", "fcntl", (3, 1026, 1), EPERM),
        ("fcntl F_SETPIPE_SZ", "fcntl", (3, 1031, 4096), EPERM),
        ("fcntl F_DUPFD", "fcntl", (3, 0, 10), ALLOW),
        ("fcntl F_GETFD", "fcntl", (3, 1, 0), ALLOW),
        ("fcntl F_GET_SEALS", "fcntl", (3, 1034, 0), ALLOW),
        ("mmap a file shared", "mmap", (0, 4096, 1, 0x01, 3, 0), EPERM),
        ("mmap a file shared (validate)", "mmap", (0, 4096, 1, 0x03, 3, 0), EPERM),
        ("mmap a file private", "mmap", (0, 4096, 1, 0x02, 3, 0), ALLOW),
        ("mmap anonymous shared", "mmap", (0, 4096, 3, 0x21, 0xFFFFFFFF, 0), ALLOW),
        ("mmap anonymous private", "mmap", (0, 4096, 3, 0x22, 0xFFFFFFFF, 0), ALLOW),
        ("preadv2 RWF_NOWAIT", "preadv2", (3, 0, 1, 0, 0, 0x08), EPERM),
        ("preadv2 RWF_HIPRI", "preadv2", (3, 0, 1, 0, 0, 0x01), ALLOW),
        ("ioctl FIOSETOWN", "ioctl", (3, 0x8901, 0), EPERM),
        ("ioctl SIOCSPGRP", "ioctl", (3, 0x8902, 0), EPERM),
        ("ioctl FIOASYNC", "ioctl", (3, 0x5452, 0), EPERM),
        ("ioctl TIOCSTI", "ioctl", (3, 0x5412, 0), EPERM),
        ("ioctl TIOCLINUX", "ioctl", (3, 0x541C, 0), EPERM),
        ("ioctl TCGETS", "ioctl", (3, 0x5401, 0), ALLOW),
        ("ioctl FIONREAD", "ioctl", (3, 0x541B, 0), ALLOW),
        ("ioctl FIONBIO", "ioctl", (3, 0x5421, 0), ALLOW),
        ("clone a thread", "clone", (THREAD, 0x7F0000, 0, 0, 0), ALLOW),
        ("clone a process (fork)", "clone", (FORK, 0, 0, 0, 0), EPERM),
        ("clone a process (vfork)", "clone", (0x4111, 0, 0, 0, 0), EPERM),
        ("clone3", "clone3", (0, 88), ENOSYS),
    ]
    cases += [
        (f"clone a thread in {ns}", "clone", (THREAD | bit,), EPERM)
        for ns, bit in CLONE_NEW.items()
    ]
    cases += [
        (f"clone a process in {ns}", "clone", (FORK | bit,), EPERM) for ns, bit in CLONE_NEW.items()
    ]
    for name in (
        "ftruncate",
        "fallocate",
        "memfd_create",
        "memfd_secret",
        "shmget",
        "shmat",
        "msgget",
        "semget",
        "mq_open",
        "process_madvise",
        "process_mrelease",
        "pidfd_open",
        "kcmp",
        "flock",
        "inotify_init1",
        "inotify_add_watch",
        "mincore",
        "cachestat",
        "fadvise64",
        "io_setup",
        *(("fork", "vfork", "inotify_init") if machine == "x86_64" else ()),
    ):
        cases.append((name, name, (0, 0, 0), EPERM))
    return [(label or name, machine, (n[name], *args), want) for label, name, args, want in cases]


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_filter_decides_as_the_table_says(machine: str) -> None:
    table: seccomp._Arch = {"x86_64": seccomp._X86_64, "aarch64": seccomp._AARCH64}[machine]
    program = seccomp.build_filter(machine, own_pid=PID)
    wrong = {
        label: (hex(got), hex(want))
        for label, _, (nr, *args), want in decisions(machine)
        if (got := run_filter(program, table.audit_arch, nr, *args)) != want
    }
    assert wrong == {}
    # A syscall made under another ABI is fatal, whatever it is.
    assert run_filter(program, 0x40000003, 0) == KILL  # AUDIT_ARCH_I386
    assert len(program) // 8 < 4096  # BPF_MAXINSNS


@pytest.mark.parametrize(
    ("table", "header"),
    [
        (seccomp._X86_64, Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")),
        (seccomp._AARCH64, Path("/usr/include/asm-generic/unistd.h")),
    ],
)
def test_argument_checked_syscalls_match_the_kernel_headers(
    table: seccomp._Arch, header: Path
) -> None:
    if not header.exists():
        pytest.skip(f"{header} is not installed")
    numbers = header_numbers(header)
    ours = {**table.self_arg0, **table.enosys, **table.own_pid_arg0}
    ours.update({name: number for name, (number, _) in table.which_who.items()})
    ours.update({"fcntl": table.fcntl, "ioctl": table.ioctl, "clone": table.clone})
    ours.update({"mmap": table.mmap, "preadv2": table.preadv2})
    ours.update(
        {
            name: table.denied[name]
            for name in ("flock", "inotify_init1", "inotify_add_watch", "mincore", "io_setup")
        }
    )
    assert {name: number for name, number in ours.items() if numbers.get(name) != number} == {}
    if "fork" in numbers:
        assert table.denied["fork"] == numbers["fork"]
        assert table.denied["vfork"] == numbers["vfork"]


@needs_root
def test_a_worker_that_lost_its_user_namespace_never_parses_the_model(
    monkeypatch: pytest.MonkeyPatch,
    other: subprocess.Popen[bytes],
    model_bytes: Callable[[str], bytes],
    limits: RuntimeLimits,
) -> None:
    """Where the probe had user and network namespaces, the supervisor requires the
    user namespace too: a worker left with a network namespace alone refuses the
    model before parsing it."""
    with pytest.raises(ServiceUnavailable, match="user_namespace failed"):
        _confined_worker(
            monkeypatch,
            other,
            ModelFormat.ONNX,
            model_bytes("mixed_io.onnx"),
            limits,
            without_user_namespaces=True,
            require=("seccomp", "network_namespace", "user_namespace"),
        )


def test_the_supervisor_requires_what_its_probe_found(supervisor: Supervisor) -> None:
    report = supervisor.report()
    required = supervisor.required()
    assert "seccomp" in required
    assert ("user_namespace" in required) == (report.network_namespace == "userns+netns")
    assert ("network_namespace" in required) == bool(report.network_namespace)
