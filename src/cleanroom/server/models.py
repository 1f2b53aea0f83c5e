"""Models at rest: sealed files under the TEE's sealing key, never plaintext.

A model is written in the at-rest STREAM format (``cleanroom.crypto.stream``)
to a temporary file, synced, then renamed into place, so a crash leaves
either the old sealed model or the new one. It can be sealed as it streams
in (:meth:`SealedModelStore.stage_stream`): each plaintext chunk is
encrypted when it arrives and written by a second thread, so sealing ends
with the transfer and only the final ``fsync`` remains.

A sealed model is bound to its instance (the instance id is in the
associated data of its wrapped key), and it opens only as the model the
instance's record names (its SHA-256 is checked against the recorded
digest): a host that copies one instance's sealed file over another's, or
puts back an instance's earlier sealed model, gets a model that does not
open, never one that serves.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from cleanroom.crypto.stream import CHUNK_SIZE, StreamOpener, at_rest_sealer
from cleanroom.errors import DecryptionFailed, NotFound
from cleanroom.runtime.memory import wipe

__all__ = ["SealedModelStore", "SealingWriter"]

_SYNC = b"sync"  # sentinels, compared by identity
_DROP = b"drop"
_QUEUED_CHUNKS = 4


def model_context(instance_id: str) -> bytes:
    """What a sealed model is bound to: its instance."""
    return b"cleanroom/v1 model\x00" + instance_id.encode()


def _pieces(data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_SIZE):
        yield view[start : start + CHUNK_SIZE]


class SealingWriter:
    """Seals a model of a declared size chunk by chunk into a staged file.

    :meth:`write` encrypts on the caller's thread (the plaintext may be a view
    into a buffer reused afterwards) and queues the sealed chunk for a writer
    thread; :meth:`close` queues the final chunk and the ``fsync`` and returns
    at once; :meth:`wait` gives the synced file. :meth:`discard` drops it all.
    """

    def __init__(
        self, directory: Path, key: bytes, label: bytes, context: bytes, total_size: int
    ) -> None:
        fd, name = tempfile.mkstemp(dir=directory, suffix=".partial")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=0)
        try:
            header, self._sealer = at_rest_sealer(
                total_size=total_size, sealing_key=key, key_label=label, context=context
            )
        except BaseException:
            self._file.close()
            self.path.unlink(missing_ok=True)
            raise
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self._error: BaseException | None = None
        self._queue.put(header)
        self._thread = threading.Thread(target=self._drain, daemon=True, name="cleanroom-seal")
        self._thread.start()

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DROP:
                return
            if item is _SYNC:
                # The last item, whatever happened before: wait() must never block
                # on a writer that failed.
                if self._error is None:
                    try:
                        os.fsync(self._file.fileno())
                    except BaseException as exc:
                        self._error = exc
                return
            if self._error is not None:
                continue  # failed: keep the producer unblocked until told to stop
            try:
                self._file.write(item)
            except BaseException as exc:
                self._error = exc

    def _put(self, item: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        for sealed in self._sealer.push(chunk):
            self._put(sealed)

    def close(self) -> None:
        """Seal the final chunk and queue the ``fsync``; :meth:`wait` for it."""
        for sealed in self._sealer.close():
            self._put(sealed)
        self._put(_SYNC)

    def wait(self) -> Path:
        """The staged file, once written and synced; on failure it is removed."""
        self._thread.join()
        self._file.close()
        if self._error is not None:
            self.path.unlink(missing_ok=True)
            raise self._error
        return self.path

    def discard(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_DROP)
            self._thread.join()
        self._file.close()
        self.path.unlink(missing_ok=True)


class SealedModelStore:
    def __init__(self, directory: Path, sealing_key: bytes, key_label: bytes) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._dir = directory
        self._key = sealing_key
        self._label = key_label

    def path(self, instance_id: str) -> Path:
        return self._dir / f"{instance_id}.sealed"

    def save(self, instance_id: str, model: bytes | bytearray | memoryview) -> None:
        self.commit(instance_id, self.stage(instance_id, model))

    def stage(self, instance_id: str, model: bytes | bytearray | memoryview) -> Path:
        """Seal *model* into a new synced temporary file; :meth:`commit` puts it in place.

        Staging apart from committing lets the service keep the previous
        sealed model if the workers refuse the new one.
        """
        writer = self.stage_stream(instance_id, memoryview(model).nbytes)
        try:
            for piece in _pieces(model):
                writer.write(piece)
            writer.close()
        except BaseException:
            writer.discard()
            raise
        return writer.wait()

    def stage_stream(self, instance_id: str, total_size: int) -> SealingWriter:
        """A writer sealing *instance_id*'s model of *total_size* bytes as it arrives."""
        return SealingWriter(
            self._dir, self._key, self._label, model_context(instance_id), total_size
        )

    def commit(self, instance_id: str, staged: Path) -> None:
        os.replace(staged, self.path(instance_id))

    def discard(self, staged: Path) -> None:
        staged.unlink(missing_ok=True)

    def load(self, instance_id: str, max_size: int, expected_digest: str) -> bytearray:
        """The plaintext of *instance_id*'s sealed model, which must be *expected_digest*.

        *expected_digest* (``sha256:<hex>``) is the model the instance's record
        names. A file sealed for another instance, or another model of this
        one, raises :class:`DecryptionFailed` and nothing of it is kept.
        """
        path = self.path(instance_id)
        if not path.exists():
            raise NotFound(f"no sealed model for instance {instance_id}")
        opener = StreamOpener.at_rest(
            sealing_key=self._key,
            key_label=self._label,
            context=model_context(instance_id),
            max_size=max_size,
        )
        try:
            with open(path, "rb") as f:
                while piece := f.read(CHUNK_SIZE):
                    opener.feed(piece)
            plaintext = opener.finish()
        except BaseException:
            opener.discard()
            raise
        digest = "sha256:" + hashlib.sha256(plaintext).hexdigest()
        if not hmac.compare_digest(digest, expected_digest):
            wipe(plaintext)
            raise DecryptionFailed("the sealed model is not the one the instance's record names")
        return plaintext

    def delete(self, instance_id: str) -> None:
        self.path(instance_id).unlink(missing_ok=True)
