"""Models at rest: sealed files under the TEE's sealing key, never plaintext.

A model is written in the at-rest STREAM format (``cleanroom.crypto.stream``)
to a temporary file, synced, then renamed into place, so a crash leaves
either the old sealed model or the new one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cleanroom.crypto.stream import CHUNK_SIZE, StreamOpener, seal_stream_at_rest
from cleanroom.errors import NotFound

__all__ = ["SealedModelStore"]


def _pieces(data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_SIZE):
        yield view[start : start + CHUNK_SIZE]


class SealedModelStore:
    def __init__(self, directory: Path, sealing_key: bytes, key_label: bytes) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._dir = directory
        self._key = sealing_key
        self._label = key_label

    def path(self, instance_id: str) -> Path:
        return self._dir / f"{instance_id}.sealed"

    def save(self, instance_id: str, model: bytes | bytearray | memoryview) -> None:
        self.commit(instance_id, self.stage(model))

    def stage(self, model: bytes | bytearray | memoryview) -> Path:
        """Seal *model* into a new synced temporary file; :meth:`commit` puts it in place.

        Staging apart from committing lets the service seal a model while its
        workers start, and keep the previous sealed model if they refuse it.
        """
        fd, name = tempfile.mkstemp(dir=self._dir, suffix=".partial")
        staged = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                for piece in seal_stream_at_rest(
                    _pieces(model),
                    total_size=len(model),
                    sealing_key=self._key,
                    key_label=self._label,
                ):
                    f.write(piece)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        return staged

    def commit(self, instance_id: str, staged: Path) -> None:
        os.replace(staged, self.path(instance_id))

    def discard(self, staged: Path) -> None:
        staged.unlink(missing_ok=True)

    def load(self, instance_id: str, max_size: int) -> bytearray:
        path = self.path(instance_id)
        if not path.exists():
            raise NotFound(f"no sealed model for instance {instance_id}")
        opener = StreamOpener.at_rest(
            sealing_key=self._key, key_label=self._label, max_size=max_size
        )
        try:
            with open(path, "rb") as f:
                while piece := f.read(CHUNK_SIZE):
                    opener.feed(piece)
            return opener.finish()
        except BaseException:
            opener.discard()
            raise

    def delete(self, instance_id: str) -> None:
        self.path(instance_id).unlink(missing_ok=True)
