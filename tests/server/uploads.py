"""Sealing a model upload to a service and feeding it to ``upload_model`` directly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from cleanroom.crypto.keys import KeyPair
from cleanroom.crypto.stream import CHUNK_SIZE, seal_stream, stream_info
from cleanroom.server.service import CleanRoomService


def sealed_model(
    service: CleanRoomService,
    instance_id: str,
    sender: KeyPair,
    model: bytes,
    chunk_size: int = CHUNK_SIZE,
) -> list[bytes]:
    """The stream header, then each sealed chunk, for the instance's current configuration."""
    config = bytes.fromhex(service.current_config_digest(service.store.instance(instance_id)))
    return list(
        seal_stream(
            [model],
            total_size=len(model),
            recipient=service.tee.hpke.public,
            sender=sender,
            info=stream_info(instance_id, "model", config),
            chunk_size=chunk_size,
        )
    )


async def pieces(parts: list[bytes]) -> AsyncIterator[bytes]:
    for piece in parts:
        yield piece


def feed(
    service: CleanRoomService, email: str, instance_id: str, body: AsyncIterator[bytes]
) -> None:
    """Run ``upload_model`` on *body* as *email*, as the HTTP route would."""
    asyncio.run(service.upload_model(email, instance_id, body, key_id_hex=None, config=None))
