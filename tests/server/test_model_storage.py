"""Sealed model storage: a model is committed only once its workers accepted it."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.models import single_input_model

from cleanroom.crypto import envelope
from cleanroom.crypto.keys import KeyPair
from cleanroom.crypto.stream import seal_stream, stream_info
from cleanroom.errors import DecryptionFailed, ModelRejected
from cleanroom.server.models import SealedModelStore
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings
from cleanroom.wire.tensors import decode_tensors, encode_tensors

OWNER = "owner@example.org"


def test_staged_model_is_invisible_until_committed(tmp_path: Path) -> None:
    store = SealedModelStore(tmp_path, os.urandom(32), os.urandom(32))
    staged = store.stage(b"model bytes")
    assert staged.parent == tmp_path
    assert b"model bytes" not in staged.read_bytes()  # sealed, never plaintext
    assert not store.path("i1").exists()
    store.commit("i1", staged)
    assert bytes(store.load("i1", 1024)) == b"model bytes"
    assert not staged.exists()


def test_discarded_stage_leaves_nothing(tmp_path: Path) -> None:
    store = SealedModelStore(tmp_path, os.urandom(32), os.urandom(32))
    store.discard(store.stage(b"refused"))
    assert list(tmp_path.iterdir()) == []


def test_a_tampered_staged_file_does_not_open(tmp_path: Path) -> None:
    store = SealedModelStore(tmp_path, os.urandom(32), os.urandom(32))
    staged = store.stage(b"model bytes")
    data = bytearray(staged.read_bytes())
    data[-1] ^= 1
    staged.write_bytes(bytes(data))
    store.commit("i1", staged)
    with pytest.raises(DecryptionFailed):
        store.load("i1", 1024)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[CleanRoomService]:
    svc = CleanRoomService(ServerSettings(data_dir=tmp_path))
    try:
        yield svc
    finally:
        svc.close()


def _upload(service: CleanRoomService, instance_id: str, sender: KeyPair, model: bytes) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for piece in seal_stream(
            [model],
            total_size=len(model),
            recipient=service.tee.hpke.public,
            sender=sender,
            info=stream_info(instance_id, "model"),
        ):
            yield piece

    asyncio.run(service.upload_model(OWNER, instance_id, chunks(), key_id_hex=None, config=None))


def test_refused_upload_keeps_the_previous_sealed_model(service: CleanRoomService) -> None:
    assert service.models is not None
    record = service.create_instance(OWNER, "storage", "onnx", [])
    sender = KeyPair()
    service.register_key(OWNER, record.id, base64.b64encode(sender.public.raw).decode())
    good = single_input_model()
    _upload(service, record.id, sender, good)
    sealed_before = service.models.path(record.id).read_bytes()

    with pytest.raises(ModelRejected):
        _upload(service, record.id, sender, b"not an ONNX model" * 100)

    directory = service.models.path(record.id).parent
    assert [p.name for p in directory.iterdir()] == [f"{record.id}.sealed"]
    assert service.models.path(record.id).read_bytes() == sealed_before
    assert bytes(service.models.load(record.id, 1 << 20)) == good

    # The instance still serves the model it had.
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    sealed = envelope.seal_request(
        recipient=service.tee.hpke.public,
        sender=sender,
        instance_id=record.id,
        action="predict",
        body=encode_tensors({"x": x}),
    )
    response, _receipt = service.predict(
        OWNER, record.id, sealed.envelope, key_id_hex=None, config=None
    )
    _meta, payload = envelope.open_response(sealed, response)
    assert decode_tensors(bytes(payload))["y"].shape[0] == 1
