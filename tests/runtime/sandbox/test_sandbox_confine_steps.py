"""The worker's confinement steps, with the kernel calls replaced by recorders.

What each step asks of the kernel, and that a step which did not take hold is
an error: the limits set (the CPU hard limit just past the soft one, no core
file, no file written), every capability dropped and checked afterwards. Run
in this process against a stand-in libc and ``setrlimit``; nothing here
changes pytest's own limits or capabilities.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import Any

import pytest

from cleanroom.runtime import RuntimeLimits
from cleanroom.runtime.sandbox import confine

LIMITS = RuntimeLimits(memory_bytes=1 << 30, cpu_seconds=100, open_files=32)


def test_the_resource_limits_set_are_the_ones_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[int, tuple[int, int]]] = []
    dropped: list[str] = []
    monkeypatch.setattr(
        confine.resource, "setrlimit", lambda which, pair: calls.append((which, pair))
    )
    monkeypatch.setattr(confine, "drop_capabilities", lambda: dropped.append("after"))
    applied = confine.set_resource_limits(LIMITS)
    assert applied == {
        "RLIMIT_AS": 1 << 30,
        "RLIMIT_CPU": 100,
        "RLIMIT_NOFILE": 32,
        "RLIMIT_CORE": 0,
        "RLIMIT_FSIZE": 0,
    }
    assert sorted(calls) == sorted(
        [
            (resource.RLIMIT_AS, (1 << 30, 1 << 30)),
            # A gap to the hard limit: SIGXCPU first, which names the reason.
            (resource.RLIMIT_CPU, (100, 102)),
            (resource.RLIMIT_NOFILE, (32, 32)),
            (resource.RLIMIT_CORE, (0, 0)),
            (resource.RLIMIT_FSIZE, (0, 0)),
        ]
    )
    # No capability is left to raise them again.
    assert dropped == ["after"]


class FakeLibc:
    """prctl / capget / capset over a capability state the test controls."""

    def __init__(self, *, effective: int, capset_works: bool = True, drop_works: bool = True):
        self.sets = [effective, effective, 0]  # effective, permitted, inheritable
        self.bounding = {cap: 1 for cap in range(41)}
        self.capset_works = capset_works
        self.drop_works = drop_works

    def capget(self, header: object, data: Any) -> int:
        for index, name in enumerate(("effective", "permitted", "inheritable")):
            setattr(data[0], name, self.sets[index] & 0xFFFFFFFF)
            setattr(data[1], name, self.sets[index] >> 32)
        return 0

    def capset(self, header: object, data: Any) -> int:
        if self.capset_works:
            self.sets = [0, 0, 0]
        return 0  # says it worked either way

    def prctl(self, option: int, arg: int, *rest: int) -> int:
        if option == confine._PR_CAPBSET_READ:
            return self.bounding.get(arg, -1)
        if option == confine._PR_CAPBSET_DROP and self.drop_works:
            self.bounding[arg] = 0
        return 0


ALL = (1 << 41) - 1


@pytest.fixture
def libc(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeLibc]:
    def make(**kwargs: Any) -> FakeLibc:
        fake = FakeLibc(**kwargs)
        monkeypatch.setattr(confine, "_libc", lambda: fake)
        monkeypatch.setattr(confine, "_last_capability", lambda: 40)
        return fake

    return make


def test_every_capability_is_dropped(libc: Callable[..., FakeLibc]) -> None:
    fake = libc(effective=ALL)
    confine.drop_capabilities()
    assert fake.sets == [0, 0, 0]
    assert not any(fake.bounding.values())


def test_capabilities_left_after_dropping_them_are_an_error(
    libc: Callable[..., FakeLibc],
) -> None:
    libc(effective=ALL, capset_works=False)
    with pytest.raises(OSError, match="capabilities are left after dropping them"):
        confine.drop_capabilities()


def test_a_bounding_set_left_after_dropping_it_is_an_error(
    libc: Callable[..., FakeLibc],
) -> None:
    libc(effective=ALL, drop_works=False)
    with pytest.raises(OSError, match="bounding set is not empty"):
        confine.drop_capabilities()
