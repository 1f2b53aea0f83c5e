"""Model uploads hold sandboxed workers: one per instance at a time, a bounded number
in all, stopped when the sender goes quiet, and never installed into a deleted instance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.models import single_input_model
from tests.server.party_keys import register

from cleanroom.crypto.keys import KeyPair
from cleanroom.crypto.stream import CHUNK_SIZE, seal_stream, stream_info
from cleanroom.errors import AccessDenied, Conflict, InvalidRequest, NotFound, ServiceUnavailable
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings

OWNER = "owner@example.org"
PIECE = 64  # the sealed test model is a few hundred bytes: several pieces


@pytest.fixture
def service(tmp_path: Path) -> Iterator[CleanRoomService]:
    svc = CleanRoomService(
        ServerSettings(data_dir=tmp_path, max_concurrent_uploads=2, upload_idle_timeout_s=0.5)
    )
    try:
        yield svc
    finally:
        svc.close()


def _instance(service: CleanRoomService, owner: str = OWNER) -> tuple[str, KeyPair]:
    record = service.create_instance(owner, "uploads", "onnx", [])
    sender = KeyPair()
    register(service, owner, record.id, sender)
    return record.id, sender


def _pieces(service: CleanRoomService, instance_id: str, sender: KeyPair) -> list[bytes]:
    model = single_input_model()
    sealed = b"".join(
        seal_stream(
            [model],
            total_size=len(model),
            recipient=service.tee.hpke.public,
            sender=sender,
            info=stream_info(
                instance_id,
                "model",
                bytes.fromhex(service.current_config_digest(service.store.instance(instance_id))),
            ),
            chunk_size=min(CHUNK_SIZE, 4096),
        )
    )
    return [sealed[i : i + PIECE] for i in range(0, len(sealed), PIECE)]


async def _body(
    pieces: list[bytes], stall_after: int, resume: asyncio.Event
) -> AsyncIterator[bytes]:
    for index, piece in enumerate(pieces):
        if index == stall_after:
            await resume.wait()
        yield piece


async def _upload(
    service: CleanRoomService,
    instance_id: str,
    sender: KeyPair,
    *,
    stall_after: int = -1,
    owner: str = OWNER,
) -> tuple[asyncio.Task[object], asyncio.Event]:
    resume = asyncio.Event()
    body = _body(_pieces(service, instance_id, sender), stall_after, resume)
    task = asyncio.ensure_future(
        service.upload_model(owner, instance_id, body, key_id_hex=None, config=None)
    )
    await asyncio.sleep(0.1)  # the first pieces are in: the workers are starting
    if task.done():
        await task  # refused at once: raise it here
    return task, resume


def test_a_quiet_upload_is_stopped_and_its_workers_with_it(service: CleanRoomService) -> None:
    instance_id, sender = _instance(service)

    async def scenario() -> None:
        task, _resume = await _upload(service, instance_id, sender, stall_after=1)
        with pytest.raises(InvalidRequest, match=r"sent nothing for 0\.5 s"):
            await task

    asyncio.run(scenario())
    assert service.sandbox_report().workers == 0
    assert not service._uploading
    assert service.store.instance(instance_id).model_digest is None


def test_one_upload_per_instance_and_a_bounded_number_in_all(service: CleanRoomService) -> None:
    first, first_sender = _instance(service)
    second, second_sender = _instance(service)
    third, third_sender = _instance(service)

    async def scenario() -> None:
        stalled, resume = await _upload(service, first, first_sender, stall_after=1)
        with pytest.raises(Conflict, match="already in progress"):
            await _upload(service, first, first_sender)
        other, other_resume = await _upload(service, second, second_sender, stall_after=1)
        with pytest.raises(ServiceUnavailable, match="as many models as it takes"):
            await _upload(service, third, third_sender)
        resume.set()
        other_resume.set()
        await stalled
        await other
        # Slots are free again: the third instance's upload goes through.
        task, _ = await _upload(service, third, third_sender)
        await task

    asyncio.run(scenario())
    for instance_id in (first, second, third):
        assert service.store.instance(instance_id).model_digest is not None


def test_one_owner_cannot_hold_every_upload_slot(tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path, max_concurrent_uploads=3, max_uploads_per_owner=1)
    service = CleanRoomService(settings)
    other = "other@example.org"
    try:
        first, first_sender = _instance(service)
        second, second_sender = _instance(service)
        theirs, their_sender = _instance(service, other)

        async def scenario() -> None:
            stalled, resume = await _upload(service, first, first_sender, stall_after=1)
            with pytest.raises(ServiceUnavailable, match="already has 1 model uploads"):
                await _upload(service, second, second_sender)
            # Another owner still finds a slot.
            task, _ = await _upload(service, theirs, their_sender, owner=other)
            await task
            resume.set()
            await stalled

        asyncio.run(scenario())
        assert service.store.instance(theirs).model_digest is not None
        assert service.store.instance(second).model_digest is None
    finally:
        service.close()


def test_an_instance_deleted_during_its_upload_keeps_nothing(service: CleanRoomService) -> None:
    assert service.models is not None
    instance_id, sender = _instance(service)

    async def scenario() -> None:
        task, resume = await _upload(service, instance_id, sender, stall_after=1)
        service.delete_instance(OWNER, instance_id)
        resume.set()
        # Refused where the upload is when it resumes: its key is gone with the
        # instance, or the instance itself is, at install.
        with pytest.raises((AccessDenied, NotFound)):
            await task

    asyncio.run(scenario())
    assert list(service.models.path(instance_id).parent.iterdir()) == []
    assert service.sandbox_report().workers == 0


def test_a_delete_just_before_install_wins(
    service: CleanRoomService, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert service.models is not None
    instance_id, sender = _instance(service)
    install = service._install_model

    def deleted_first(*args: Any, **kwargs: Any) -> Any:
        service.delete_instance(OWNER, instance_id)  # the owner's DELETE gets there first
        return install(*args, **kwargs)

    monkeypatch.setattr(service, "_install_model", deleted_first)

    async def scenario() -> None:
        task, _ = await _upload(service, instance_id, sender)
        with pytest.raises(NotFound):
            await task

    asyncio.run(scenario())
    assert list(service.models.path(instance_id).parent.iterdir()) == []
    assert service.sandbox_report().workers == 0
