"""Sealed request/response envelopes: round trips and every refusal."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

import pytest

from cleanroom.crypto import envelope, hpke
from cleanroom.crypto.keys import KeyPair, PublicKey
from cleanroom.errors import AccessDenied, DecryptionFailed, InvalidRequest, UnsupportedEnvelope

SERVER = KeyPair()
ALICE = KeyPair()
MALLORY = KeyPair()
CONFIG = bytes(range(48))  # the digest of the configuration Alice attested


def resolve_alice(key_id: bytes) -> PublicKey:
    if key_id != ALICE.public.key_id:
        raise AccessDenied("unknown sender")
    return ALICE.public


def seal(
    body: bytes = b"payload" * 100, instance_id: str = "inst-1", config: bytes = CONFIG
) -> envelope.RequestSealer:
    return envelope.seal_request(
        recipient=SERVER.public,
        sender=ALICE,
        instance_id=instance_id,
        config_digest=config,
        action="predict",
        body=body,
    )


def open_(
    data: bytes, instance_id: str = "inst-1", config: bytes = CONFIG
) -> envelope.OpenedRequest:
    return envelope.open_request(
        data,
        recipient=SERVER,
        instance_id=instance_id,
        config_digest=config,
        resolve_sender=resolve_alice,
    )


def test_request_round_trip_carries_meta_and_body() -> None:
    sealed = seal(b"hello", instance_id="inst-1")
    opened = open_(sealed.envelope)
    assert bytes(opened.body) == b"hello"
    assert opened.action == "predict"
    assert opened.sender_key_id == ALICE.public.key_id
    assert len(opened.request_id) == 32
    assert opened.enc == sealed.enc


def test_a_body_in_parts_seals_like_the_joined_body() -> None:
    sealed = envelope.seal_request(
        recipient=SERVER.public,
        sender=ALICE,
        instance_id="inst-1",
        config_digest=CONFIG,
        action="predict",
        body=[b"he", memoryview(b"ll"), b"o"],
    )
    assert sealed.envelope == b"".join(sealed.parts)
    assert sealed.size == len(sealed.envelope)
    assert bytes(open_(sealed.envelope).body) == b"hello"


def test_response_opens_only_for_the_requester() -> None:
    sealed = seal()
    opened = open_(sealed.envelope)
    response = envelope.seal_response(opened, {"status": "ok"}, b"result")
    meta, body = envelope.open_response(sealed, response)
    assert meta == {"status": "ok"}
    assert bytes(body) == b"result"
    other = seal()
    with pytest.raises(DecryptionFailed):
        envelope.open_response(other, response)


def test_two_seals_of_the_same_body_differ() -> None:
    assert seal(b"x").envelope != seal(b"x").envelope


def flip(index: int) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        b = bytearray(data)
        b[index] ^= 0x01
        return bytes(b)

    return mutate


HEADER_END = envelope.HEADER_SIZE


@pytest.mark.parametrize(
    ("name", "mutate", "error"),
    [
        ("bad magic", flip(0), UnsupportedEnvelope),
        ("unknown version", lambda d: d[:4] + b"\x02" + d[5:], UnsupportedEnvelope),
        ("wrong kind", lambda d: d[:5] + b"\x02" + d[6:], UnsupportedEnvelope),
        ("unknown suite", lambda d: d[:6] + struct.pack(">H", 9) + d[8:], UnsupportedEnvelope),
        (
            "sender key id of a stranger",
            lambda d: d[:8] + MALLORY.public.key_id + d[40:],
            AccessDenied,
        ),
        ("tampered enc", flip(HEADER_END + 32 + 3), DecryptionFailed),
        ("tampered ciphertext", flip(-20), DecryptionFailed),
        ("tampered tag", flip(-1), DecryptionFailed),
        ("truncated", lambda d: d[:-1], DecryptionFailed),
        ("only the header", lambda d: d[:HEADER_END], DecryptionFailed),
        ("empty", lambda d: b"", UnsupportedEnvelope),
    ],
)
def test_request_mutations_are_refused(
    name: str, mutate: Callable[[bytes], bytes], error: type[Exception]
) -> None:
    with pytest.raises(error):
        open_(mutate(seal().envelope))


def test_request_for_another_instance_does_not_open() -> None:
    with pytest.raises(DecryptionFailed):
        open_(seal(instance_id="inst-1").envelope, instance_id="inst-2")


def test_request_made_under_another_configuration_does_not_open() -> None:
    # Sealed under the configuration Alice attested; the instance's policy (or
    # model, or users) has changed since: its digest differs, and no header can
    # make the request open under the new configuration.
    changed = bytes(47) + b"\x01"
    with pytest.raises(DecryptionFailed):
        open_(seal(config=CONFIG).envelope, config=changed)
    assert bytes(open_(seal(config=changed).envelope, config=changed).body) == b"payload" * 100


@pytest.mark.parametrize("size", [0, 32, 47, 49, 64])
def test_a_configuration_digest_is_a_sha384(size: int) -> None:
    with pytest.raises(ValueError, match="48 bytes"):
        seal(config=bytes(size))


def test_request_sealed_by_an_impostor_with_alices_key_id_does_not_open() -> None:
    forged = envelope.seal_request(
        recipient=SERVER.public,
        sender=MALLORY,
        instance_id="inst-1",
        config_digest=CONFIG,
        action="predict",
        body=b"x",
    )
    data = forged.envelope[:8] + ALICE.public.key_id + forged.envelope[40:]
    with pytest.raises(DecryptionFailed):
        open_(data)


def test_request_sealed_to_another_key_does_not_open() -> None:
    other = envelope.seal_request(
        recipient=KeyPair().public,
        sender=ALICE,
        instance_id="inst-1",
        config_digest=CONFIG,
        action="p",
        body=b"x",
    )
    with pytest.raises(DecryptionFailed):
        open_(other.envelope)


def test_decryption_failures_are_opaque() -> None:
    messages = set()
    for mutate in (flip(-1), flip(-30), lambda d: d[:-5]):
        with pytest.raises(DecryptionFailed) as info:
            open_(mutate(seal().envelope))
        messages.add(str(info.value))
    assert messages == {"the sealed data could not be opened"}


@pytest.mark.parametrize("index", [0, 9, 40, -1])
def test_response_mutations_are_refused(index: int) -> None:
    sealed = seal()
    response = envelope.seal_response(open_(sealed.envelope), {}, b"result")
    with pytest.raises((DecryptionFailed, UnsupportedEnvelope)):
        envelope.open_response(sealed, flip(index)(response))


def _sealed_with_meta(meta_json: bytes) -> bytes:
    """A request whose meta is *meta_json* as it is, sealed as a registered party would."""
    prefix_header = envelope.header(envelope.KIND_REQUEST)
    sealer = hpke.seal_auth(SERVER.public, ALICE, envelope.request_info("inst-1", CONFIG))
    prefix = prefix_header + ALICE.public.key_id + sealer.enc
    payload = struct.pack(">I", len(meta_json)) + meta_json + b"body"
    return prefix + sealer.seal(payload, aad=prefix)


GOOD_META = {"request_id": "ab" * 16, "created": 1_700_000_000, "action": "predict"}


@pytest.mark.parametrize(
    ("name", "meta_json"),
    [
        ("created is Infinity", b'{"request_id":"a","created":Infinity,"action":"predict"}'),
        ("created is NaN", b'{"request_id":"a","created":NaN,"action":"predict"}'),
        ("created is a float", b'{"request_id":"a","created":1.5,"action":"predict"}'),
        ("created is a bool", b'{"request_id":"a","created":true,"action":"predict"}'),
        ("created is a string", b'{"request_id":"a","created":"1","action":"predict"}'),
        ("created is negative", b'{"request_id":"a","created":-1,"action":"predict"}'),
        ("created is huge", b'{"request_id":"a","created":' + b"9" * 40 + b',"action":"p"}'),
        ("request id is a number", b'{"request_id":7,"created":1,"action":"predict"}'),
        ("request id is empty", b'{"request_id":"","created":1,"action":"predict"}'),
        ("request id is long", b'{"request_id":"' + b"a" * 300 + b'","created":1,"action":"p"}'),
        ("action is missing", b'{"request_id":"a","created":1}'),
        ("action is an object", b'{"request_id":"a","created":1,"action":{}}'),
        ("context is a list", b'{"request_id":"a","created":1,"action":"p","context":[1]}'),
        ("meta is a list", b"[1, 2]"),
        ("meta is deeply nested", b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("meta is not JSON", b"{nope"),
    ],
)
def test_malformed_meta_from_a_registered_party_is_refused_opaquely(
    name: str, meta_json: bytes
) -> None:
    with pytest.raises(DecryptionFailed) as caught:
        open_(_sealed_with_meta(meta_json))
    assert caught.value.__cause__ is None
    assert caught.value.message == DecryptionFailed().message


def test_well_formed_meta_opens() -> None:
    opened = open_(_sealed_with_meta(json.dumps(GOOD_META).encode()))
    assert (opened.request_id, opened.created, opened.action) == (
        "ab" * 16,
        1_700_000_000,
        "predict",
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}, b"bytes"])
def test_a_context_that_is_not_json_is_refused_when_sealing(value: object) -> None:
    with pytest.raises(InvalidRequest, match="context must be a JSON object"):
        envelope.seal_request(
            recipient=SERVER.public,
            sender=ALICE,
            instance_id="inst-1",
            config_digest=CONFIG,
            action="predict",
            body=b"x",
            context={"x": value},
        )
