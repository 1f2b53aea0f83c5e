"""Where an uploaded model goes while it is opened, one authenticated chunk at a time.

Each plaintext chunk is sent to every starting worker (each receives it into
its own buffer), sealed for storage (a second thread writes it) and hashed,
then the chunk buffer is reused: the service never holds the whole model.
The workers load it only once the upload is complete and allowed
(:meth:`ModelSink.install`); otherwise :meth:`ModelSink.abort` kills them
and drops the staged file, so the previous model and its sealed file stay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from cleanroom.background import in_background
from cleanroom.runtime.memory import wipe
from cleanroom.runtime.sandbox.supervisor import ModelLoad, SandboxedRunner
from cleanroom.server.models import SealedModelStore, SealingWriter

__all__ = ["ModelSink"]


class ModelSink:
    """A :class:`~cleanroom.crypto.stream.PlaintextSink` for a model upload.

    The model is *instance_id*'s; *start* begins loading a model of the given
    size (the workers are started as soon as the stream's header declares it).
    Without sealed storage (*models* None) the plaintext is also collected, in
    memory only, for the supervisor to restart workers with.
    """

    def __init__(
        self,
        instance_id: str,
        start: Callable[[int], ModelLoad],
        models: SealedModelStore | None,
    ) -> None:
        self._instance_id = instance_id
        self._start = start
        self._models = models
        self._hash = hashlib.sha256()
        self.size = 0
        self._loading: ModelLoad | None = None
        self._writer: SealingWriter | None = None
        self._kept: bytearray | None = None
        self._offset = 0

    def begin(self, total_size: int) -> None:
        self.size = total_size
        self._loading = self._start(total_size)
        if self._models is not None:
            self._writer = self._models.stage_stream(self._instance_id, total_size)
        else:
            self._kept = bytearray(total_size)

    def write(self, chunk: memoryview) -> None:
        assert self._loading is not None
        # The digest runs on the second core while the chunk is sent and sealed;
        # all of them only read the chunk, which is reused once this returns.
        hashing = in_background(self._hash.update, chunk)
        try:
            self._loading.write(chunk)
            if self._writer is not None:
                self._writer.write(chunk)
            if self._kept is not None:
                self._kept[self._offset : self._offset + len(chunk)] = chunk
        finally:
            hashing.result()
        self._offset += len(chunk)

    @property
    def digest(self) -> str:
        """The plaintext's digest, once all of it was written."""
        return "sha256:" + self._hash.hexdigest()

    def install(self) -> tuple[SandboxedRunner, Path | None]:
        """Let the workers load the model while the sealed copy is synced.

        Returns the runner and the staged sealed file (to commit); on failure
        everything is dropped, as by :meth:`abort`.
        """
        loading, writer = self._loading, self._writer
        assert loading is not None
        try:
            if writer is not None:
                writer.close()  # the final chunk and the fsync, on the writer thread
            # Without storage the collected plaintext is handed over, not copied.
            kept, self._kept = self._kept, None
            runner = loading.finish(b"" if kept is None else kept)
            staged = None if writer is None else writer.wait()
        except BaseException:
            self.abort()
            raise
        return runner, staged

    def abort(self) -> None:
        """Stop the workers (unloading them if they were serving already) and drop the
        staged file: nothing of the upload remains."""
        if self._loading is not None:
            self._loading.abort()
        if self._writer is not None:
            self._writer.discard()
        self._wipe_kept()

    def _wipe_kept(self) -> None:
        if self._kept is not None:
            wipe(self._kept)
            self._kept = None
