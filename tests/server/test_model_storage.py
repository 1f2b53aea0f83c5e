"""Sealed model storage: a model is committed only once its workers accepted it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import numpy as np
import pytest
from tests.models import single_input_model
from tests.server.party_keys import register
from tests.server.uploads import feed, pieces, sealed_model

from cleanroom.crypto import envelope
from cleanroom.crypto.keys import KeyPair
from cleanroom.errors import DecryptionFailed, ModelRejected, PolicyDenied
from cleanroom.runtime.sandbox.process import WorkerProcess
from cleanroom.server.models import SealedModelStore
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings
from cleanroom.wire.tensors import decode_tensors, encode_tensors

OWNER = "owner@example.org"
CHUNK = 1024
NO_UPLOADS = """
package cleanroom

default allow_ingress := false
default allow_egress := true

allow_ingress if input.action == "predict"
"""


def _digest(model: bytes) -> str:
    return "sha256:" + hashlib.sha256(model).hexdigest()


def test_staged_model_is_invisible_until_committed(tmp_path: Path) -> None:
    store = SealedModelStore(tmp_path, os.urandom(32), os.urandom(32))
    staged = store.stage("i1", b"model bytes")
    assert staged.parent == tmp_path
    assert b"model bytes" not in staged.read_bytes()  # sealed, never plaintext
    assert not store.path("i1").exists()
    store.commit("i1", staged)
    assert bytes(store.load("i1", 1024, _digest(b"model bytes"))) == b"model bytes"
    assert not staged.exists()


def test_discarded_stage_leaves_nothing(tmp_path: Path) -> None:
    store = SealedModelStore(tmp_path, os.urandom(32), os.urandom(32))
    store.discard(store.stage("i1", b"refused"))
    assert list(tmp_path.iterdir()) == []


def test_a_tampered_staged_file_does_not_open(tmp_path: Path) -> None:
    store = SealedModelStore(tmp_path, os.urandom(32), os.urandom(32))
    staged = store.stage("i1", b"model bytes")
    data = bytearray(staged.read_bytes())
    data[-1] ^= 1
    staged.write_bytes(bytes(data))
    store.commit("i1", staged)
    with pytest.raises(DecryptionFailed):
        store.load("i1", 1024, _digest(b"model bytes"))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[CleanRoomService]:
    svc = CleanRoomService(ServerSettings(data_dir=tmp_path))
    try:
        yield svc
    finally:
        svc.close()


Mutation = Callable[[list[bytes]], list[bytes]]


def _sealed(
    service: CleanRoomService, instance_id: str, sender: KeyPair, model: bytes, chunk_size: int
) -> list[bytes]:
    return sealed_model(service, instance_id, sender, model, chunk_size)


def _upload(
    service: CleanRoomService,
    instance_id: str,
    sender: KeyPair,
    model: bytes,
    mutate: Mutation = list,
) -> None:
    parts = mutate(_sealed(service, instance_id, sender, model, CHUNK))
    feed(service, OWNER, instance_id, pieces(parts))


def _instance_with_a_model(service: CleanRoomService) -> tuple[str, KeyPair, bytes]:
    assert service.models is not None
    record = service.create_instance(OWNER, "storage", "onnx", [])
    sender = KeyPair()
    register(service, OWNER, record.id, sender)
    _upload(service, record.id, sender, single_input_model())
    return record.id, sender, service.models.path(record.id).read_bytes()


def _assert_previous_model_in_place(
    service: CleanRoomService, instance_id: str, sender: KeyPair, sealed_before: bytes
) -> None:
    assert service.models is not None
    directory = service.models.path(instance_id).parent
    assert [p.name for p in directory.iterdir()] == [f"{instance_id}.sealed"]
    assert service.models.path(instance_id).read_bytes() == sealed_before
    model = single_input_model()
    assert bytes(service.models.load(instance_id, 1 << 20, _digest(model))) == model
    # The instance still serves the model it had.
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    sealed = envelope.seal_request(
        recipient=service.tee.hpke.public,
        sender=sender,
        instance_id=instance_id,
        config_digest=bytes.fromhex(
            service.current_config_digest(service.store.instance(instance_id))
        ),
        action="predict",
        body=encode_tensors({"x": x}),
    )
    response, _receipt = service.predict(
        OWNER, instance_id, sealed.envelope, key_id_hex=None, config=None
    )
    _meta, payload = envelope.open_response(sealed, response)
    assert decode_tensors(bytes(payload))["y"].shape[0] == 1


def test_refused_upload_keeps_the_previous_sealed_model(service: CleanRoomService) -> None:
    instance_id, sender, sealed_before = _instance_with_a_model(service)
    with pytest.raises(ModelRejected):
        _upload(service, instance_id, sender, b"not an ONNX model" * 100)
    _assert_previous_model_in_place(service, instance_id, sender, sealed_before)


@pytest.fixture
def started_workers(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[WorkerProcess]]:
    """The workers started for an upload, and those told to load their model."""
    seen: dict[str, list[WorkerProcess]] = {"started": [], "loaded": []}
    begin, load = WorkerProcess.begin, WorkerProcess.load

    def spy_begin(worker: WorkerProcess, size: int) -> None:
        seen["started"].append(worker)
        begin(worker, size)

    def spy_load(worker: WorkerProcess) -> None:
        seen["loaded"].append(worker)
        load(worker)

    monkeypatch.setattr(WorkerProcess, "begin", spy_begin)
    monkeypatch.setattr(WorkerProcess, "load", spy_load)
    return seen


def _flip_in_second_chunk(parts: list[bytes]) -> list[bytes]:
    chunk = bytearray(parts[2])
    chunk[-1] ^= 1
    return [*parts[:2], bytes(chunk), *parts[3:]]


def _drop_last_chunk(parts: list[bytes]) -> list[bytes]:
    return parts[:-1]


@pytest.mark.parametrize("mutate", [_flip_in_second_chunk, _drop_last_chunk])
def test_a_tampered_or_truncated_upload_stops_its_workers_and_keeps_the_previous_model(
    service: CleanRoomService,
    started_workers: dict[str, list[WorkerProcess]],
    mutate: Mutation,
) -> None:
    instance_id, sender, sealed_before = _instance_with_a_model(service)
    started_workers["started"].clear()
    started_workers["loaded"].clear()
    # Several chunks: the workers start and receive the first ones before the failure.
    with pytest.raises(DecryptionFailed):
        _upload(service, instance_id, sender, single_input_model() * 40, mutate)
    assert started_workers["started"]
    assert started_workers["loaded"] == []  # no worker parsed the upload
    assert not any(worker.alive for worker in started_workers["started"])
    _assert_previous_model_in_place(service, instance_id, sender, sealed_before)


def test_an_upload_the_policy_refuses_is_never_loaded(
    service: CleanRoomService, started_workers: dict[str, list[WorkerProcess]]
) -> None:
    instance_id, sender, sealed_before = _instance_with_a_model(service)
    service.set_policy(OWNER, instance_id, NO_UPLOADS)
    started_workers["started"].clear()
    started_workers["loaded"].clear()
    with pytest.raises(PolicyDenied):
        _upload(service, instance_id, sender, single_input_model())
    assert started_workers["started"]
    assert started_workers["loaded"] == []
    assert not any(worker.alive for worker in started_workers["started"])
    _assert_previous_model_in_place(service, instance_id, sender, sealed_before)


def test_sealing_a_stream_that_is_discarded_leaves_nothing(tmp_path: Path) -> None:
    store = SealedModelStore(tmp_path, os.urandom(32), os.urandom(32))
    writer = store.stage_stream("i1", 10)
    writer.write(b"12345")
    with pytest.raises(ValueError, match="shorter"):
        writer.close()
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_an_upload_cancelled_midway_stops_its_workers_and_leaves_no_file(
    service: CleanRoomService, started_workers: dict[str, list[WorkerProcess]]
) -> None:
    instance_id, sender, sealed_before = _instance_with_a_model(service)
    started_workers["started"].clear()
    # Chunks of 4 MiB: the first one is enough for the workers to start.
    parts = _sealed(service, instance_id, sender, os.urandom(9 * 1024 * 1024), 4 * 1024 * 1024)

    async def main() -> None:
        fed = anyio.Event()

        async def chunks() -> AsyncIterator[bytes]:
            for piece in parts[:2]:
                yield piece
            while not started_workers["started"]:
                await anyio.sleep(0.01)
            fed.set()
            await anyio.sleep_forever()  # the client stalls; the server shuts down

        async def upload() -> None:
            await service.upload_model(OWNER, instance_id, chunks(), key_id_hex=None, config=None)

        async with anyio.create_task_group() as group:
            group.start_soon(upload)
            await fed.wait()
            group.cancel_scope.cancel()

    anyio.run(main)
    assert started_workers["started"]
    assert not any(worker.alive for worker in started_workers["started"])
    _assert_previous_model_in_place(service, instance_id, sender, sealed_before)
