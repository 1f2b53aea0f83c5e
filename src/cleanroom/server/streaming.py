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
from collections.abc import AsyncIterator

import anyio
from starlette.concurrency import run_in_threadpool

from cleanroom.crypto.stream import StreamOpener
from cleanroom.errors import InvalidRequest, PayloadTooLarge
from cleanroom.policy.decision_log import ContentHasher

__all__ = ["relay_stream"]


async def _until_idle(chunks: AsyncIterator[bytes], idle_timeout_s: float) -> AsyncIterator[bytes]:
    """*chunks*, refused once the sender has sent nothing for *idle_timeout_s*.

    A stalled upload would otherwise hold its workers and staging file forever.
    """
    iterator = aiter(chunks)
    while True:
        try:
            with anyio.fail_after(idle_timeout_s):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise InvalidRequest(
                f"the upload sent nothing for {idle_timeout_s:g} s and was stopped"
            ) from None
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
    opener: StreamOpener, chunks: AsyncIterator[bytes], max_size: int, *, idle_timeout_s: float
) -> str:
    """Feed every chunk of the body to *opener* on the pump thread; the ciphertext's digest.

    Returns once the opener has taken all of it (the caller then calls
    ``opener.end()`` or ``finish()``). A body longer than *max_size* plus the
    framing, a body that sends nothing for *idle_timeout_s*, or an error in the
    opener or its sink, stops the relay.
    """
    pump = _Pump(opener)
    ciphertext_hash = ContentHasher()
    received = 0
    batch: _Batch = []
    batched = 0
    try:
        async for chunk in _until_idle(chunks, idle_timeout_s):
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
