"""Feeding a sealed upload to its opener on a thread of its own, as it arrives.

The event loop only receives the HTTP body, hashes the ciphertext and checks
the size; a pump thread opens the chunks (AES-GCM) and runs whatever the
opener's sink does with each plaintext chunk (send it to the workers, seal it
for storage), so neither blocks the loop. A small bounded queue between them
gives backpressure: the upload is received no faster than it is consumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
from starlette.concurrency import run_in_threadpool

from cleanroom.crypto.stream import StreamOpener
from cleanroom.errors import ConfigurationError, InvalidRequest, PayloadTooLarge, RequestTimeout
from cleanroom.policy.decision_log import ContentHasher

__all__ = ["UploadPace", "relay_stream"]


@dataclass(frozen=True)
class UploadPace:
    """How slowly an upload may arrive before it is stopped.

    Nothing for *idle_timeout_s* stops it, and so does falling behind: once
    *grace_s* have passed, it must have averaged *min_bytes_per_s* since it
    began. A sender trickling a byte at a time would otherwise hold its
    upload slot, workers and staging file for as long as it likes.
    """

    idle_timeout_s: float
    grace_s: float
    min_bytes_per_s: int

    def __post_init__(self) -> None:
        if not (self.idle_timeout_s > 0 and self.grace_s >= 0 and self.min_bytes_per_s > 0):
            raise ConfigurationError("upload timeouts and the minimum upload rate must be positive")

    def deadline(self, started: float, received: int) -> float:
        """The time by which more must have arrived, after *received* bytes."""
        return started + self.grace_s + received / self.min_bytes_per_s


async def _in_pace(chunks: AsyncIterator[bytes], pace: UploadPace) -> AsyncIterator[bytes]:
    """*chunks*, refused once the sender goes quiet or falls behind *pace*."""
    iterator = aiter(chunks)
    started = time.monotonic()
    received = 0
    while True:
        behind = pace.deadline(started, received) - time.monotonic()
        try:
            with anyio.fail_after(max(0.0, min(pace.idle_timeout_s, behind))):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if behind <= pace.idle_timeout_s:
                raise RequestTimeout(
                    f"the upload arrived slower than {pace.min_bytes_per_s} bytes/s on average"
                    f" after {pace.grace_s:g} s and was stopped"
                ) from None
            raise InvalidRequest(
                f"the upload sent nothing for {pace.idle_timeout_s:g} s and was stopped"
            ) from None
        received += len(chunk)
        yield chunk


_BATCH = 1024 * 1024  # body pieces are handed over in batches of about this size
_QUEUED_BATCHES = 8
_FRAMING = 1024 * 1024  # the chunk framing adds less than this to a stream

_Batch = list[bytes]
_END: _Batch = []  # sentinels, compared by identity
_STOP: _Batch = []


class _Pump:
    def __init__(self, opener: StreamOpener) -> None:
        self._opener = opener
        self._queue: queue.Queue[_Batch] = queue.Queue(maxsize=_QUEUED_BATCHES)
        self._error: BaseException | None = None
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, args=(loop,), daemon=True, name="cleanroom-upload"
        )
        self._thread.start()

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            batch = self._queue.get()
            if batch is _END or batch is _STOP:
                break
            if self._error is not None:
                continue  # failed: drain until told to stop, so the loop never blocks
            try:
                for piece in batch:
                    self._opener.feed(piece)
            except BaseException as exc:
                self._error = exc
        loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if not self._done.done():
            if self._error is not None:
                self._done.set_exception(self._error)
            else:
                self._done.set_result(None)

    async def _enqueue(self, batch: _Batch) -> None:
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            await run_in_threadpool(self._queue.put, batch)

    async def put(self, batch: _Batch) -> None:
        if self._error is not None:
            raise self._error
        await self._enqueue(batch)

    async def end(self) -> None:
        """Wait until every batch was fed; raises what the opener or its sink raised."""
        await self._enqueue(_END)
        await self._done

    async def stop(self) -> None:
        """Stop after the batch being fed (the receiving side failed)."""
        await self._enqueue(_STOP)
        with contextlib.suppress(Exception):
            await self._done


async def relay_stream(
    opener: StreamOpener, chunks: AsyncIterator[bytes], max_size: int, *, pace: UploadPace
) -> str:
    """Feed every chunk of the body to *opener* on the pump thread; the ciphertext's digest.

    Returns once the opener has taken all of it (the caller then calls
    ``opener.end()`` or ``finish()``). A body longer than *max_size* plus the
    framing, a body that arrives slower than *pace* allows, or an error in the
    opener or its sink, stops the relay.
    """
    pump = _Pump(opener)
    ciphertext_hash = ContentHasher()
    received = 0
    batch: _Batch = []
    batched = 0
    try:
        async for chunk in _in_pace(chunks, pace):
            ciphertext_hash.update(chunk)
            received += len(chunk)
            if received > max_size + _FRAMING:
                raise PayloadTooLarge(f"the upload is larger than the limit of {max_size} bytes")
            batch.append(chunk)
            batched += len(chunk)
            if batched >= _BATCH:
                await pump.put(batch)
                batch, batched = [], 0
        if batch:
            await pump.put(batch)
    except BaseException:
        # Also when the request is cancelled: the pump must stop before the caller
        # cleans up what it fed (anyio cancels every await in a cancelled scope).
        with anyio.CancelScope(shield=True):
            await pump.stop()
        raise
    await pump.end()
    return ciphertext_hash.digest
