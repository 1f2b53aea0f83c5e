"""Large blobs (models, datasets) sealed as a stream of authenticated chunks.

A random 256-bit data key encrypts the blob in chunks with AES-256-GCM using
the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, CRYPTO 2015):
each chunk's nonce is ``prefix (7) || counter (u32, big-endian) || last flag``,
so chunks cannot be reordered, dropped, duplicated or truncated without the
open failing. The data key and stream parameters travel in a wrapped header:

* kind 3 (in transit): HPKE Auth mode to the clean room's attested key —
  ``header | sender key id (32) | enc (32) | u32 len | HPKE(params)``;
* kind 4 (at rest): AES-256-GCM under the TEE's sealing key —
  ``header | sealing key label (32) | nonce (12) | u32 len | AEAD(params)``,
  whose associated data also carries a *context* naming what the blob is
  (``model`` and the instance id), so a sealed file opens only as that.

Then chunks follow: ``flag u8 | u32 ciphertext length | ciphertext``. Each
chunk's associated data is SHA-256 of the wrapped header, binding every chunk
to one stream. Neither side ever holds more than one chunk of ciphertext.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cleanroom.crypto import hpke
from cleanroom.crypto.envelope import (
    CONFIG_DIGEST_SIZE,
    HEADER_SIZE,
    KIND_AT_REST,
    KIND_STREAM,
    header,
    parse_header,
)
from cleanroom.crypto.keys import KEY_ID_SIZE, KeyPair, PublicKey
from cleanroom.errors import DecryptionFailed, PayloadTooLarge

__all__ = [
    "AT_REST_SUITE_ID",
    "CHUNK_SIZE",
    "ChunkSealer",
    "ParamsCheck",
    "PlaintextSink",
    "StreamOpener",
    "StreamParams",
    "at_rest_sealer",
    "seal_stream",
    "seal_stream_at_rest",
    "stream_info",
]

CHUNK_SIZE = 4 * 1024 * 1024
AT_REST_SUITE_ID = 0x0002  # AES-256-GCM key wrap under a TEE sealing key
_TAG = 16
_U32 = struct.Struct(">I")
_CHUNK_HEAD = struct.Struct(">BI")
_PREFIX_SIZE = 7
_WRAP_NONCE = 12
_MAX_WRAPPED = 4096
_MIN_CHUNK = 1024
_MAX_CHUNK = 64 * 1024 * 1024
_MAX_INT64 = 2**63 - 1  # sizes and times beyond int64 are malformed, not merely large
_MAX_REQUEST_ID = 256


def stream_info(instance_id: str, purpose: str, config_digest: bytes) -> bytes:
    """HPKE ``info`` of an upload: its purpose, the instance and the attested configuration.

    As for requests (:func:`cleanroom.crypto.envelope.request_info`), an upload
    opens only under the configuration its sender verified.
    """
    if len(config_digest) != CONFIG_DIGEST_SIZE:
        raise ValueError(f"a configuration digest is {CONFIG_DIGEST_SIZE} bytes")
    return (
        b"cleanroom/v1 stream\x00"
        + purpose.encode()
        + b"\x00"
        + instance_id.encode()
        + b"\x00"
        + config_digest
    )


@dataclass(frozen=True)
class StreamParams:
    total_size: int
    chunk_size: int = CHUNK_SIZE
    key: bytes = field(default_factory=lambda: AESGCM.generate_key(bit_length=256), repr=False)
    nonce_prefix: bytes = field(default_factory=lambda: os.urandom(_PREFIX_SIZE))
    request_id: str = field(default_factory=lambda: secrets.token_hex(16))
    created: int = field(default_factory=lambda: int(time.time()))

    def to_bytes(self) -> bytes:
        doc = {
            "total_size": self.total_size,
            "chunk_size": self.chunk_size,
            "key": base64.b64encode(self.key).decode(),
            "nonce_prefix": base64.b64encode(self.nonce_prefix).decode(),
            "request_id": self.request_id,
            "created": self.created,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> StreamParams:
        """Parameters opened from a wrapped header; anything malformed is
        :class:`DecryptionFailed`, as opaque as a failed open (no cause is
        chained: the parameters carry the data key)."""
        params = _parse_params(data)
        if params is None:
            raise DecryptionFailed()
        return params


def _no_constant(name: str) -> NoReturn:
    raise ValueError("NaN and Infinity are not JSON")


def _whole(value: object, low: int, high: int) -> int | None:
    """*value* if it is a JSON integer (not a boolean, not a float) in [low, high]."""
    return value if type(value) is int and low <= value <= high else None


def _b64(value: object, size: int) -> bytes | None:
    if not isinstance(value, str) or len(value) > 4 * size:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        return None
    return raw if len(raw) == size else None


def _parse_params(data: bytes) -> StreamParams | None:
    try:
        doc = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    total_size = _whole(doc.get("total_size"), 0, _MAX_INT64)
    chunk_size = _whole(doc.get("chunk_size"), _MIN_CHUNK, _MAX_CHUNK)
    created = _whole(doc.get("created"), 0, _MAX_INT64)
    key = _b64(doc.get("key"), 32)
    nonce_prefix = _b64(doc.get("nonce_prefix"), _PREFIX_SIZE)
    request_id = doc.get("request_id")
    if (
        total_size is None
        or chunk_size is None
        or created is None
        or key is None
        or nonce_prefix is None
        or not isinstance(request_id, str)
        or not 0 < len(request_id) <= _MAX_REQUEST_ID
    ):
        return None
    try:
        request_id.encode()  # the replay check keys on its UTF-8 bytes
    except UnicodeEncodeError:  # a lone surrogate
        return None
    if total_size // chunk_size >= 2**32:  # chunk counters are u32
        return None
    return StreamParams(
        total_size=total_size,
        chunk_size=chunk_size,
        key=key,
        nonce_prefix=nonce_prefix,
        request_id=request_id,
        created=created,
    )


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + _U32.pack(counter) + (b"\x01" if last else b"\x00")


class ChunkSealer:
    """Push-style STREAM encryption: plaintext in any pieces, sealed chunks out.

    Each sealed chunk is returned as soon as its plaintext is complete, so a
    piece may be a view into a buffer the caller reuses afterwards. The
    declared total size says which chunk is the last one.
    """

    def __init__(self, params: StreamParams, stream_header: bytes) -> None:
        self._params = params
        self._aead = AESGCM(params.key)
        self._aad = hashlib.sha256(stream_header).digest()
        self._pending = bytearray()
        self._counter = 0
        self._produced = 0
        self._ended = False

    def _emit(self, data: bytes | bytearray | memoryview, last: bool) -> bytes:
        # AES-GCM reads the buffer in place: no copy of the plaintext chunk.
        nonce = _nonce(self._params.nonce_prefix, self._counter, last)
        ciphertext = self._aead.encrypt(nonce, data, self._aad)
        self._counter += 1
        self._ended = last
        return _CHUNK_HEAD.pack(1 if last else 0, len(ciphertext)) + ciphertext

    def push(self, piece: bytes | bytearray | memoryview) -> list[bytes]:
        """Take the next plaintext piece; the chunks it completes, sealed."""
        size = memoryview(piece).nbytes
        chunk_size = self._params.chunk_size
        self._produced += size
        if self._produced > self._params.total_size:
            raise ValueError("the source is longer than the declared size")
        complete = self._produced == self._params.total_size
        if not self._pending and size == chunk_size:
            # The usual case (a file read or a buffer sliced chunk by chunk): no buffering.
            return [self._emit(piece, last=complete)]
        self._pending += piece
        sealed = []
        while len(self._pending) >= chunk_size and not self._ended:
            last = complete and len(self._pending) == chunk_size
            sealed.append(self._emit(memoryview(self._pending)[:chunk_size], last))
            del self._pending[:chunk_size]
        return sealed

    def close(self) -> list[bytes]:
        """Check the declared size was reached; the final chunk, if not sealed yet."""
        if self._produced != self._params.total_size:
            raise ValueError("the source is shorter than the declared size")
        if self._ended:
            return []
        return [self._emit(self._pending, last=True)]


def _chunks(
    params: StreamParams, stream_header: bytes, source: Iterable[bytes | memoryview]
) -> Iterator[bytes]:
    """Encrypt *source* (any chunking) into STREAM chunks of ``params.chunk_size``."""
    sealer = ChunkSealer(params, stream_header)
    for piece in source:
        yield from sealer.push(piece)
    yield from sealer.close()


def seal_stream(
    source: Iterable[bytes | memoryview],
    *,
    total_size: int,
    recipient: PublicKey,
    sender: KeyPair,
    info: bytes,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[bytes]:
    """Seal *source* to *recipient* (HPKE Auth mode); yields the wrapped header, then chunks."""
    params = StreamParams(total_size=total_size, chunk_size=chunk_size)
    prefix = header(KIND_STREAM) + sender.public.key_id
    sealer = hpke.seal_auth(recipient, sender, info)
    prefix += sealer.enc
    wrapped = sealer.seal(params.to_bytes(), aad=prefix + _U32.pack(0))
    stream_header = prefix + _U32.pack(len(wrapped)) + wrapped
    yield stream_header
    yield from _chunks(params, stream_header, source)


def _at_rest_aad(prefix: bytes, context: bytes) -> bytes:
    """The wrapped parameters' associated data: the prefix, ``u32 0``, then the context."""
    return prefix + _U32.pack(0) + context


def at_rest_sealer(
    *,
    total_size: int,
    sealing_key: bytes,
    key_label: bytes,
    context: bytes,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[bytes, ChunkSealer]:
    """The header of a blob sealed under a TEE sealing key, and the sealer of its chunks.

    *context* names what the blob is (for a model, its instance): the blob
    opens only with the same context, so a sealed file copied to another
    name does not open there.
    """
    if len(key_label) != KEY_ID_SIZE:
        raise ValueError("the sealing key label is 32 bytes")
    params = StreamParams(total_size=total_size, chunk_size=chunk_size)
    wrap_nonce = os.urandom(_WRAP_NONCE)
    prefix = header(KIND_AT_REST, AT_REST_SUITE_ID) + key_label + wrap_nonce
    wrapped = AESGCM(sealing_key).encrypt(
        wrap_nonce, params.to_bytes(), _at_rest_aad(prefix, context)
    )
    stream_header = prefix + _U32.pack(len(wrapped)) + wrapped
    return stream_header, ChunkSealer(params, stream_header)


def seal_stream_at_rest(
    source: Iterable[bytes | memoryview],
    *,
    total_size: int,
    sealing_key: bytes,
    key_label: bytes,
    context: bytes,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[bytes]:
    """Seal *source* under a TEE sealing key for storage; yields the header, then chunks."""
    stream_header, sealer = at_rest_sealer(
        total_size=total_size,
        sealing_key=sealing_key,
        key_label=key_label,
        context=context,
        chunk_size=chunk_size,
    )
    yield stream_header
    for piece in source:
        yield from sealer.push(piece)
    yield from sealer.close()


class PlaintextSink(Protocol):
    """Where a :class:`StreamOpener` puts each authenticated chunk instead of one buffer."""

    def begin(self, total_size: int) -> None:
        """The stream's declared size, once its header has been opened."""

    def write(self, chunk: memoryview) -> None:
        """The next authenticated plaintext chunk: a view valid only during the call."""


# Called with a stream's parameters as soon as its header is authenticated,
# before anything is allocated for it or handed to a sink: a refusal (replay,
# wrong sender) then stops the stream before any chunk is received.
ParamsCheck = Callable[[StreamParams], None]

# An unwrapper turns a stream header's fixed prefix and wrapped parameters
# into the parameters and, for in-transit streams, the sender's key id. It
# raises DecryptionFailed (or AccessDenied for an unknown sender).
Unwrapper = Callable[[bytes, bytes], tuple[StreamParams, bytes | None]]


class StreamOpener:
    """Incremental (sans-I/O) opener: feed ciphertext in any pieces.

    The plaintext is decrypted in place into one preallocated buffer of the
    declared size (``decrypt_into``), which :meth:`finish` returns. With a
    *sink*, each chunk is instead decrypted into one reusable chunk buffer and
    handed to the sink once authenticated, and :meth:`end` closes the stream:
    the opener never holds more than one chunk of plaintext. A declared size
    above ``max_size`` is refused before anything is allocated.
    """

    def __init__(
        self,
        kind: int,
        suite: int,
        prefix_size: int,
        unwrap: Unwrapper,
        *,
        max_size: int,
        sink: PlaintextSink | None = None,
        check_params: ParamsCheck | None = None,
    ) -> None:
        self._kind = kind
        self._check_params = check_params
        self._suite = suite
        self._prefix_size = prefix_size
        self._unwrap = unwrap
        self._max_size = max_size
        self._sink = sink
        self._pending = bytearray()
        self._params: StreamParams | None = None
        self._aead: AESGCM | None = None
        self._aad = b""
        self._buffer = bytearray()
        self._offset = 0
        self._counter = 0
        self._done = False
        self.sender_key_id: bytes | None = None

    @classmethod
    def in_transit(
        cls,
        *,
        recipient: KeyPair,
        info: bytes,
        resolve_sender: Callable[[bytes], PublicKey],
        max_size: int,
        sink: PlaintextSink | None = None,
        check_params: ParamsCheck | None = None,
    ) -> StreamOpener:
        """An opener for kind-3 streams sealed to *recipient* in HPKE Auth mode.

        *check_params* sees the authenticated parameters (request id, creation
        time) before any chunk: the place for a replay check.
        """

        def unwrap(prefix: bytes, wrapped: bytes) -> tuple[StreamParams, bytes | None]:
            sender_key_id = prefix[HEADER_SIZE : HEADER_SIZE + KEY_ID_SIZE]
            enc = prefix[HEADER_SIZE + KEY_ID_SIZE :]
            sender = resolve_sender(sender_key_id)
            opening = hpke.open_auth(enc, recipient, sender, info)
            plain = opening.open(wrapped, aad=prefix + _U32.pack(0))
            return StreamParams.from_bytes(plain), sender_key_id

        prefix_size = HEADER_SIZE + KEY_ID_SIZE + hpke.ENC_SIZE
        return cls(
            KIND_STREAM,
            hpke.SUITE_ID,
            prefix_size,
            unwrap,
            max_size=max_size,
            sink=sink,
            check_params=check_params,
        )

    @classmethod
    def at_rest(
        cls,
        *,
        sealing_key: bytes,
        key_label: bytes,
        context: bytes,
        max_size: int,
        sink: PlaintextSink | None = None,
    ) -> StreamOpener:
        """An opener for kind-4 blobs sealed under the TEE's sealing key with *context*."""

        def unwrap(prefix: bytes, wrapped: bytes) -> tuple[StreamParams, bytes | None]:
            if prefix[HEADER_SIZE : HEADER_SIZE + KEY_ID_SIZE] != key_label:
                raise DecryptionFailed("the blob was sealed under another sealing key")
            nonce = prefix[HEADER_SIZE + KEY_ID_SIZE :]
            try:
                plain = AESGCM(sealing_key).decrypt(nonce, wrapped, _at_rest_aad(prefix, context))
            except Exception as exc:
                raise DecryptionFailed() from exc
            return StreamParams.from_bytes(plain), None

        prefix_size = HEADER_SIZE + KEY_ID_SIZE + _WRAP_NONCE
        return cls(
            KIND_AT_REST, AT_REST_SUITE_ID, prefix_size, unwrap, max_size=max_size, sink=sink
        )

    @property
    def params(self) -> StreamParams | None:
        return self._params

    def feed(self, data: bytes | memoryview) -> None:
        self._pending += data
        if self._params is None and not self._try_header():
            return
        while self._try_chunk():
            pass

    def _try_header(self) -> bool:
        need = self._prefix_size + _U32.size
        if len(self._pending) < need:
            if len(self._pending) >= HEADER_SIZE:
                parse_header(bytes(self._pending[:HEADER_SIZE]), self._kind, self._suite)
            return False
        parse_header(bytes(self._pending[:HEADER_SIZE]), self._kind, self._suite)
        (wrapped_len,) = _U32.unpack_from(self._pending, self._prefix_size)
        if wrapped_len > _MAX_WRAPPED:
            raise DecryptionFailed()
        if len(self._pending) < need + wrapped_len:
            return False
        prefix = bytes(self._pending[: self._prefix_size])
        wrapped = bytes(self._pending[need : need + wrapped_len])
        params, self.sender_key_id = self._unwrap(prefix, wrapped)
        if params.total_size > self._max_size:
            raise PayloadTooLarge(
                f"the sealed blob declares {params.total_size} bytes; the limit is {self._max_size}"
            )
        if self._check_params is not None:
            self._check_params(params)
        stream_header = bytes(self._pending[: need + wrapped_len])
        del self._pending[: need + wrapped_len]
        self._params = params
        self._aead = AESGCM(params.key)
        self._aad = hashlib.sha256(stream_header).digest()
        if self._sink is None:
            self._buffer = bytearray(params.total_size)
        else:
            self._buffer = bytearray(min(params.chunk_size, params.total_size))
            self._sink.begin(params.total_size)
        return True

    def _try_chunk(self) -> bool:
        assert self._params is not None
        assert self._aead is not None
        if len(self._pending) < _CHUNK_HEAD.size:
            return False
        if self._done:
            raise DecryptionFailed()  # bytes after the last chunk
        flag, ct_len = _CHUNK_HEAD.unpack_from(self._pending)
        if flag not in (0, 1) or ct_len < _TAG or ct_len > self._params.chunk_size + _TAG:
            raise DecryptionFailed()
        if len(self._pending) < _CHUNK_HEAD.size + ct_len:
            return False
        plain_len = ct_len - _TAG
        last = flag == 1
        if self._offset + plain_len > self._params.total_size:
            raise DecryptionFailed()
        if not last and plain_len != self._params.chunk_size:
            raise DecryptionFailed()
        ciphertext = memoryview(self._pending)[_CHUNK_HEAD.size : _CHUNK_HEAD.size + ct_len]
        start = self._offset if self._sink is None else 0
        target = memoryview(self._buffer)[start : start + plain_len]
        try:
            self._aead.decrypt_into(
                _nonce(self._params.nonce_prefix, self._counter, last),
                ciphertext,
                self._aad,
                target,
            )
        except Exception as exc:
            raise DecryptionFailed() from exc
        finally:
            ciphertext.release()
            target.release()
        del self._pending[: _CHUNK_HEAD.size + ct_len]
        self._offset += plain_len
        self._counter += 1
        if last:
            self._done = True
        if self._sink is not None:
            with memoryview(self._buffer) as chunk, chunk[:plain_len] as authenticated:
                self._sink.write(authenticated)
        return True

    def end(self) -> None:
        """Check the stream ended with its last chunk (all of it is then authenticated)."""
        if self._params is None or not self._done or self._pending:
            raise DecryptionFailed()
        if self._offset != self._params.total_size:
            raise DecryptionFailed()
        if self._sink is not None:
            self.discard()  # the last chunk's plaintext is not kept

    def finish(self) -> bytearray:
        """Check the stream ended with its last chunk and return the plaintext."""
        self.end()
        buffer, self._buffer = self._buffer, bytearray()
        return buffer

    def discard(self) -> None:
        """Zero and drop any partial plaintext (on failure)."""
        self._buffer[:] = bytes(len(self._buffer))
        self._buffer = bytearray()
