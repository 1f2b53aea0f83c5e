"""The service keeps request-sized buffers in its heap instead of faulting them in anew."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys

import pytest

from cleanroom.server.allocator import keep_request_buffers

# Allocate and free a request-sized buffer many times; report the page faults.
_PROBE = """
import resource, sys, threading
if sys.argv[1] == "tuned":
    from cleanroom.server.allocator import keep_request_buffers
    assert keep_request_buffers()
part = bytes(65_536)

def request_buffers(n):  # like a request on a server thread: body, plaintext, copy
    for _ in range(n):
        body = b"".join([part] * 10)
        plaintext = body + b"!"
        copy = bytes(bytearray(plaintext))
        del body, plaintext, copy

def faults(n):
    thread = threading.Thread(target=request_buffers, args=(n,))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    thread.start()
    thread.join()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults(20)
print(faults(200))
"""

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the allocator settings are glibc's"
)


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@glibc_only
def test_request_sized_buffers_are_reused_without_page_faults() -> None:
    untuned, tuned = _faults("default"), _faults("tuned")
    # By default a thread's freed 640 KB buffers go back to the kernel and are
    # faulted in again page by page (160 pages each); tuned, they are reused.
    assert untuned > 200 * 3 * 100
    assert tuned < untuned / 20


@glibc_only
def test_tuning_is_accepted_and_can_be_repeated() -> None:
    assert keep_request_buffers()
    assert keep_request_buffers()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt >= 0
