"""A sealed model whose staging file cannot be written: the error reaches the
producer (the upload stops instead of feeding a writer that drops its chunks),
``wait`` raises it and removes the partial file, and a failed ``fsync`` ends the
writer so ``wait`` returns instead of blocking the upload forever.

The writer thread is replaced by a stand-in and its loop run in the test's
thread, so each step happens in a known order."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cleanroom.server import models
from cleanroom.server.models import SealedModelStore, SealingWriter

MODEL = b"model bytes"


class _Unstarted:
    """A thread that never runs: the test runs the writer's loop itself."""

    def __init__(self, target: Callable[..., Any], **_kwargs: Any) -> None:
        self.target = target

    def start(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass

    def is_alive(self) -> bool:
        return False


def _full_disk(*_args: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SealingWriter]:
    monkeypatch.setattr(models.threading, "Thread", _Unstarted)
    store = SealedModelStore(tmp_path, os.urandom(32), os.urandom(32))
    staging = store.stage_stream("i1", len(MODEL))
    yield staging
    staging.discard()  # closes the file whatever the test left


class _FailingFile:
    def __init__(self, real: Any) -> None:
        self._real = real

    def write(self, _data: bytes) -> int:
        _full_disk()
        return 0  # pragma: no cover

    def fileno(self) -> int:
        return int(self._real.fileno())

    def close(self) -> None:
        self._real.close()


def test_a_failed_write_reaches_the_producer_and_wait_removes_the_file(
    writer: SealingWriter,
) -> None:
    writer._file = _FailingFile(writer._file)  # type: ignore[assignment]
    writer._queue.put(models._DROP)  # the loop ends after failing on the header
    writer._drain()
    assert writer.path.exists()
    writer.write(MODEL)  # smaller than a chunk: sealed only once closed
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    assert not writer.path.exists()


def test_a_failed_fsync_ends_the_writer_at_the_sync(
    writer: SealingWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models.os, "fsync", _full_disk)
    writer.write(MODEL)
    writer.close()  # queued: the header, the sealed chunk, the sync
    writer._queue.put(models._DROP)  # a guard: a loop that runs past the sync stops here
    writer._drain()
    # The loop stopped at the sync: the guard is still queued.
    assert writer._queue.get_nowait() is models._DROP
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    assert not writer.path.exists()
