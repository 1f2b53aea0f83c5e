"""Sealed request and response envelopes (see docs/envelope.md).

Every sealed object starts with the same 8-byte header::

    magic "CLRM" | version u8 (=1) | kind u8 | suite u16 (big-endian)

Request (kind 1), sealed by a party to the clean room's attested key in HPKE
Auth mode with ``info = "cleanroom/v1 request" || 0x00 || instance id || 0x00 ||
configuration digest`` (the SHA-384 of the attested configuration the sender
verified, 48 bytes)::

    header | sender key id (32) | enc (32) | HPKE ciphertext

The plaintext is ``u32 meta length | meta JSON | body``; ``meta`` carries a
random request id and the creation time (for replay refusal), the action,
and an optional caller context.

Response (kind 2), sealed back with a key only the requester can derive: the
RFC 9458 §4.4 construction over the request's HPKE exporter secret::

    header | response nonce (32) | AES-256-GCM ciphertext

Additional authenticated data is always every byte that precedes the
ciphertext, so no header field can be changed without detection.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from cleanroom.crypto import hpke
from cleanroom.crypto.keys import KEY_ID_SIZE, KeyPair, PublicKey
from cleanroom.errors import DecryptionFailed, InvalidRequest, UnsupportedEnvelope

__all__ = [
    "CONFIG_DIGEST_SIZE",
    "HEADER_SIZE",
    "KIND_REQUEST",
    "KIND_RESPONSE",
    "KIND_STREAM",
    "OpenedRequest",
    "RequestSealer",
    "open_request",
    "open_response",
    "parse_header",
    "seal_request",
    "seal_response",
]

MAGIC = b"CLRM"
VERSION = 1
KIND_REQUEST = 1
KIND_RESPONSE = 2
KIND_STREAM = 3
KIND_AT_REST = 4
_HEADER = struct.Struct(">4sBBH")
HEADER_SIZE = _HEADER.size
_U32 = struct.Struct(">I")
RESPONSE_NONCE_SIZE = 32
CONFIG_DIGEST_SIZE = 48  # SHA-384, cleanroom.crypto.binding.config_digest
_RESPONSE_LABEL = b"cleanroom/v1 response"


def header(kind: int, suite: int = hpke.SUITE_ID) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, kind, suite)


def parse_header(
    data: bytes | memoryview, expected_kind: int, expected_suite: int = hpke.SUITE_ID
) -> None:
    """Check the 8-byte header; raise :class:`UnsupportedEnvelope` with what is wrong."""
    if len(data) < HEADER_SIZE:
        raise UnsupportedEnvelope("the sealed data is shorter than its header")
    magic, version, kind, suite = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise UnsupportedEnvelope("the body is not a cleanroom sealed object (bad magic)")
    if version != VERSION:
        raise UnsupportedEnvelope(f"envelope version {version} is not supported (expected 1)")
    if kind != expected_kind:
        raise UnsupportedEnvelope(f"envelope kind {kind} where kind {expected_kind} was expected")
    if suite != expected_suite:
        raise UnsupportedEnvelope(f"cipher suite 0x{suite:04x} is not supported")


def request_info(instance_id: str, config_digest: bytes) -> bytes:
    """HPKE ``info`` of a request: the instance and the configuration the sender attested.

    A request opens only under the configuration its sender verified: one
    sealed before the instance's policy, model or users changed does not open
    after, whatever the request's headers say.
    """
    if len(config_digest) != CONFIG_DIGEST_SIZE:
        raise ValueError(f"a configuration digest is {CONFIG_DIGEST_SIZE} bytes")
    return b"cleanroom/v1 request\x00" + instance_id.encode() + b"\x00" + config_digest


Body = bytes | memoryview | Sequence[bytes | memoryview]


def _pack_payload(meta: Mapping[str, Any], body: Body) -> bytes:
    meta_bytes = json.dumps(meta, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    parts = [body] if isinstance(body, (bytes, memoryview)) else list(body)
    # One allocation for the whole plaintext, however many parts the body has.
    return b"".join((_U32.pack(len(meta_bytes)), meta_bytes, *parts))


def _unpack_payload(payload: bytes) -> tuple[dict[str, Any], memoryview]:
    view = memoryview(payload)
    if len(view) < _U32.size:
        raise DecryptionFailed()
    (meta_len,) = _U32.unpack_from(view)
    if _U32.size + meta_len > len(view):
        raise DecryptionFailed()
    try:
        meta = json.loads(bytes(view[_U32.size : _U32.size + meta_len]), parse_constant=_refuse)
    except (ValueError, RecursionError):
        raise DecryptionFailed() from None
    if not isinstance(meta, dict):
        raise DecryptionFailed()
    return meta, view[_U32.size + meta_len :]


def _refuse(constant: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


_MAX_CREATED = 2**63 - 1
_MAX_TEXT = 256


def _text(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_TEXT:
        raise TypeError
    return value


def _response_key(secret: bytes, enc: bytes, response_nonce: bytes) -> tuple[bytes, bytes]:
    # RFC 9458 §4.4: salt = enc || response_nonce; prk = Extract(salt, secret);
    # aead_key = Expand(prk, "key", Nk); aead_nonce = Expand(prk, "nonce", Nn).
    prk = HKDF.extract(hashes.SHA256(), enc + response_nonce, secret)
    key = HKDFExpand(hashes.SHA256(), 32, info=b"key").derive(prk)
    nonce = HKDFExpand(hashes.SHA256(), 12, info=b"nonce").derive(prk)
    return key, nonce


@dataclass
class RequestSealer:
    """What a party keeps after sealing a request, to open the response.

    The envelope is ``parts`` concatenated; sending the parts as they are saves
    copying a large ciphertext once more.
    """

    parts: tuple[bytes, bytes]
    enc: bytes
    response_secret: bytes = field(repr=False)

    @property
    def envelope(self) -> bytes:
        return b"".join(self.parts)

    @property
    def size(self) -> int:
        return sum(len(part) for part in self.parts)


def seal_request(
    *,
    recipient: PublicKey,
    sender: KeyPair,
    instance_id: str,
    config_digest: bytes,
    action: str,
    body: Body,
    context: Mapping[str, Any] | None = None,
) -> RequestSealer:
    """Seal *body* (bytes, or a sequence of parts to concatenate) for *recipient*.

    *config_digest* is the SHA-384 of the attested configuration the sender
    verified (:func:`cleanroom.crypto.binding.config_digest`).
    """
    hdr = header(KIND_REQUEST)
    sealer = hpke.seal_auth(recipient, sender, request_info(instance_id, config_digest))
    prefix = hdr + sender.public.key_id + sealer.enc
    meta: dict[str, Any] = {
        "request_id": secrets.token_hex(16),
        "created": int(time.time()),
        "action": action,
    }
    if context:
        meta["context"] = dict(context)
    try:
        payload = _pack_payload(meta, body)
    except (TypeError, ValueError):
        raise InvalidRequest(
            "the request context must be a JSON object (no NaN, Infinity or other types)"
        ) from None
    ciphertext = sealer.seal(payload, aad=prefix)
    return RequestSealer(
        parts=(prefix, ciphertext),
        enc=sealer.enc,
        response_secret=sealer.export(_RESPONSE_LABEL, 32),
    )


@dataclass
class OpenedRequest:
    sender_key_id: bytes
    enc: bytes
    request_id: str
    created: int
    action: str
    context: dict[str, Any]
    body: memoryview
    response_secret: bytes = field(repr=False)


def open_request(
    envelope: bytes,
    *,
    recipient: KeyPair,
    instance_id: str,
    config_digest: bytes,
    resolve_sender: Callable[[bytes], PublicKey],
) -> OpenedRequest:
    """Open a sealed request made under the configuration *config_digest*.

    ``resolve_sender`` maps the sender key id to the registered public key
    (and raises if the key is not registered for this instance).
    """
    parse_header(envelope, KIND_REQUEST)
    fixed = HEADER_SIZE + KEY_ID_SIZE + hpke.ENC_SIZE
    if len(envelope) <= fixed:
        raise DecryptionFailed()
    sender_key_id = bytes(envelope[HEADER_SIZE : HEADER_SIZE + KEY_ID_SIZE])
    enc = bytes(envelope[HEADER_SIZE + KEY_ID_SIZE : fixed])
    sender = resolve_sender(sender_key_id)
    context = hpke.open_auth(enc, recipient, sender, request_info(instance_id, config_digest))
    payload = context.open(memoryview(envelope)[fixed:], aad=bytes(envelope[:fixed]))
    meta, body = _unpack_payload(payload)
    try:
        request_id = _text(meta["request_id"])
        created = meta["created"]
        if type(created) is not int or not 0 <= created <= _MAX_CREATED:
            raise TypeError
        action = _text(meta["action"])
        ctx = meta.get("context") or {}
        if not isinstance(ctx, dict):
            raise TypeError
    except (KeyError, TypeError):
        raise DecryptionFailed() from None
    return OpenedRequest(
        sender_key_id=sender_key_id,
        enc=enc,
        request_id=request_id,
        created=created,
        action=action,
        context=ctx,
        body=body,
        response_secret=context.export(_RESPONSE_LABEL, 32),
    )


def seal_response(
    request: OpenedRequest, meta: Mapping[str, Any], body: bytes | memoryview
) -> bytes:
    response_nonce = os.urandom(RESPONSE_NONCE_SIZE)
    key, nonce = _response_key(request.response_secret, request.enc, response_nonce)
    prefix = header(KIND_RESPONSE) + response_nonce
    return prefix + AESGCM(key).encrypt(nonce, _pack_payload(meta, body), prefix)


def open_response(sealer: RequestSealer, envelope: bytes) -> tuple[dict[str, Any], memoryview]:
    parse_header(envelope, KIND_RESPONSE)
    fixed = HEADER_SIZE + RESPONSE_NONCE_SIZE
    if len(envelope) < fixed + 16:
        raise DecryptionFailed()
    response_nonce = bytes(envelope[HEADER_SIZE:fixed])
    key, nonce = _response_key(sealer.response_secret, sealer.enc, response_nonce)
    try:
        payload = AESGCM(key).decrypt(nonce, bytes(envelope[fixed:]), bytes(envelope[:fixed]))
    except Exception as exc:
        raise DecryptionFailed() from exc
    return _unpack_payload(payload)
