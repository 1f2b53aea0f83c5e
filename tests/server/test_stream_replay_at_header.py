"""A sealed upload is checked for replay when its header opens, not when it ends.

The creation time in a stream's parameters is when the sender sealed it,
that is when the upload started. Checked at the end, a legitimate upload
taking longer than the replay window would be refused for its length; a
replay checked at the end would have started workers and received the
whole model first.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.models import matmul_model
from tests.server.party_keys import register
from tests.server.uploads import feed, pieces, sealed_model

from cleanroom.crypto.keys import KeyPair
from cleanroom.errors import ReplayDetected
from cleanroom.runtime.sandbox.process import WorkerProcess
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings

OWNER = "owner@example.org"
WINDOW_S = 300


@pytest.fixture
def service(tmp_path: Path) -> Iterator[CleanRoomService]:
    svc = CleanRoomService(ServerSettings(data_dir=tmp_path, replay_window_s=WINDOW_S))
    try:
        yield svc
    finally:
        svc.close()


def _instance(service: CleanRoomService) -> tuple[str, KeyPair]:
    record = service.create_instance(OWNER, "replay", "onnx", [])
    sender = KeyPair()
    register(service, OWNER, record.id, sender)
    return record.id, sender


# x[N,512] @ W[512,2048]: 4 MiB, large enough to arrive in several batches.
MODEL = matmul_model(np.random.default_rng(7).normal(size=(512, 2048)).astype(np.float32))


def _sealed(service: CleanRoomService, instance_id: str, sender: KeyPair) -> list[bytes]:
    return sealed_model(service, instance_id, sender, MODEL, chunk_size=1024 * 1024)


def test_an_upload_longer_than_the_replay_window_is_accepted(
    service: CleanRoomService, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id, sender = _instance(service)
    parts = _sealed(service, instance_id, sender)
    assert len(parts) >= 5  # the header, then 1 MiB chunks
    # The replay guard's clock jumps past the whole window once the header was
    # checked, as if the rest of the upload took that long to arrive.
    checked = threading.Event()
    check = service.replay.check

    def spy_check(token: bytes, created: int, *, now: float | None = None) -> None:
        check(token, created, now=now)
        checked.set()

    monkeypatch.setattr(service.replay, "check", spy_check)
    real_time = time.time

    async def slow_rest() -> AsyncIterator[bytes]:
        for index, piece in enumerate(parts):
            yield piece
            if index == 1:  # the header and the first 1 MiB chunk are one batch
                while not checked.is_set():
                    await asyncio.sleep(0.01)
                monkeypatch.setattr(
                    "cleanroom.server.replay.time.time", lambda: real_time() + WINDOW_S + 60
                )

    feed(service, OWNER, instance_id, slow_rest())
    assert service.store.instance(instance_id).model_digest is not None
    assert service.replay._window == WINDOW_S


def test_a_replayed_upload_is_refused_before_any_worker_starts(
    service: CleanRoomService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator captured an upload that was cut off, and sends it again whole."""
    instance_id, sender = _instance(service)
    parts = _sealed(service, instance_id, sender)

    async def cut_off() -> AsyncIterator[bytes]:
        for piece in parts[:3]:
            yield piece
        raise ConnectionResetError("the sender went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(
            service.upload_model(OWNER, instance_id, cut_off(), key_id_hex=None, config=None)
        )

    started: list[int] = []
    begin = WorkerProcess.begin

    def spy_begin(worker: WorkerProcess, size: int) -> None:
        started.append(size)
        begin(worker, size)

    monkeypatch.setattr(WorkerProcess, "begin", spy_begin)
    with pytest.raises(ReplayDetected, match="already received"):
        feed(service, OWNER, instance_id, pieces(parts))
    assert started == []  # no worker was started for the replay
    assert service.store.instance(instance_id).model_digest is None


def test_an_upload_sealed_before_the_window_is_refused_at_its_header(
    service: CleanRoomService, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id, sender = _instance(service)
    parts = _sealed(service, instance_id, sender)
    real_time = time.time
    monkeypatch.setattr("cleanroom.server.replay.time.time", lambda: real_time() + WINDOW_S + 5)
    with pytest.raises(ReplayDetected, match="older than"):
        feed(service, OWNER, instance_id, pieces(parts))
    assert service.store.instance(instance_id).model_digest is None
