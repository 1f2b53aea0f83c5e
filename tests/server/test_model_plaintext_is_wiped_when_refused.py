"""A model's plaintext that will not be used is overwritten before it is dropped:
a sealed model that opens but is not the one the instance's record names, and the
in-memory copy an upload collects (without sealed storage) when it is aborted."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from cleanroom.errors import DecryptionFailed
from cleanroom.server import model_upload, models
from cleanroom.server.model_upload import ModelSink
from cleanroom.server.models import SealedModelStore

MODEL = b"the model's weights"


def _record_wipes(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[int]:
    """The sizes of the buffers *module* wipes, each emptied by the real wipe."""
    sizes: list[int] = []
    real_wipe = module.wipe

    def recording_wipe(buffer: bytearray) -> None:
        sizes.append(len(buffer))
        real_wipe(buffer)
        assert len(buffer) == 0

    monkeypatch.setattr(module, "wipe", recording_wipe)
    return sizes


def test_a_sealed_model_that_is_not_the_recorded_one_is_wiped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SealedModelStore(tmp_path, os.urandom(32), os.urandom(32))
    store.save("i1", MODEL)
    wiped = _record_wipes(monkeypatch, models)
    other = "sha256:" + hashlib.sha256(b"another model").hexdigest()
    with pytest.raises(DecryptionFailed, match="not the one the instance's record names"):
        store.load("i1", 1024, other)
    assert wiped == [len(MODEL)]


class _Loading:
    """A stand-in for the starting workers."""

    def __init__(self) -> None:
        self.received = 0
        self.aborted = False

    def write(self, chunk: Any) -> None:
        self.received += len(chunk)

    def abort(self) -> None:
        self.aborted = True


def test_an_aborted_upload_without_sealed_storage_wipes_its_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wiped = _record_wipes(monkeypatch, model_upload)
    loading = _Loading()
    sink = ModelSink("i1", lambda _size: loading, None)  # type: ignore[arg-type,return-value]
    sink.begin(len(MODEL))
    sink.write(memoryview(MODEL))
    kept = sink._kept
    assert kept is not None
    assert bytes(kept) == MODEL
    sink.abort()
    assert loading.aborted
    assert wiped == [len(MODEL)]
    assert sink._kept is None
