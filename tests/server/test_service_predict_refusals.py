"""What ``predict`` refuses, and in which order: who may call, whether the instance
has a model, whether the caller attested what is in force now, the body's size,
then the sealed request itself (its sender's key, a replay, its action).

Each row sends one request that is wrong in one way and names the refusal; a
request wrong in several ways is refused for the earliest check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from tests.models import single_input_model
from tests.server.party_keys import register
from tests.server.uploads import feed, pieces, sealed_model

from cleanroom.crypto import envelope
from cleanroom.crypto.keys import KeyPair
from cleanroom.errors import (
    AccessDenied,
    Error,
    InferenceFailed,
    InvalidRequest,
    ModelNotReady,
    PayloadTooLarge,
    ReplayDetected,
    StaleAttestation,
)
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings
from cleanroom.wire.tensors import encode_tensors

OWNER = "owner@example.org"
USER = "user@example.org"
STRANGER = "stranger@example.org"
LIMIT = 16 * 1024  # the service's max_request_bytes here
UPSTREAM = {"measurement": "ab" * 48, "policy_digest": "sha256:" + "cd" * 32}


@dataclass
class Room:
    service: CleanRoomService
    instance_id: str
    empty_id: str  # an instance with no model
    staged_id: str  # an instance with no model that serves only a declared upstream
    keys: dict[str, KeyPair]

    def config(self) -> str:
        return self.service.current_config_digest(self.service.store.instance(self.instance_id))

    def sealed(self, sender: str = USER, action: str = "predict") -> bytes:
        x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
        return envelope.seal_request(
            recipient=self.service.tee.hpke.public,
            sender=self.keys[sender],
            instance_id=self.instance_id,
            config_digest=bytes.fromhex(self.config()),
            action=action,
            body=encode_tensors({"x": x}),
        ).envelope


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    service = CleanRoomService(
        ServerSettings(data_dir=tmp_path_factory.mktemp("predict"), max_request_bytes=LIMIT)
    )
    try:
        record = service.create_instance(OWNER, "predict", "onnx", [USER])
        empty = service.create_instance(OWNER, "empty", "onnx", [USER])
        staged = service.create_instance(OWNER, "stage", "onnx", [USER], upstreams=[UPSTREAM])
        keys = {OWNER: KeyPair(), USER: KeyPair()}
        for email, key in keys.items():
            register(service, email, record.id, key)
        parts = sealed_model(service, record.id, keys[OWNER], single_input_model())
        feed(service, OWNER, record.id, pieces(parts))
        yield Room(service, record.id, empty.id, staged.id, keys)
    finally:
        service.close()


@dataclass(frozen=True)
class Call:
    """One predict call: by *email*, on the instance with or without a model."""

    email: str = USER
    on_empty: bool = False
    on_stage: bool = False
    key_id_hex: Callable[[Room], str | None] = lambda _room: None
    config: Callable[[Room], str | None] = lambda _room: None
    body: Callable[[Room], bytes] = lambda room: room.sealed()


STALE_KEY = "00" * 8
STALE_CONFIG = "00" * 48


def OVERSIZE(_room: Room) -> bytes:
    return b"\0" * (LIMIT + 1)


REFUSALS: list[tuple[str, Call, type[Error], str]] = [
    ("a stranger", Call(email=STRANGER), AccessDenied, "is not named"),
    (
        "a stranger, with every other fault too",
        Call(
            email=STRANGER,
            on_empty=True,
            key_id_hex=lambda _r: STALE_KEY,
            body=OVERSIZE,
        ),
        AccessDenied,
        "is not named",
    ),
    (
        "a direct call to an instance that serves only its upstream",
        Call(on_stage=True),
        AccessDenied,
        "serves only attested upstream",
    ),
    ("no model yet", Call(on_empty=True), ModelNotReady, "no model"),
    (
        "no model yet, attested a stale key, oversized",
        Call(on_empty=True, key_id_hex=lambda _r: STALE_KEY, body=OVERSIZE),
        ModelNotReady,
        "no model",
    ),
    (
        "the clean room's key changed",
        Call(key_id_hex=lambda _r: STALE_KEY),
        StaleAttestation,
        "key changed",
    ),
    (
        "the configuration changed",
        Call(config=lambda _r: STALE_CONFIG),
        StaleAttestation,
        "configuration changed",
    ),
    (
        "a stale configuration and an oversized body",
        Call(config=lambda _r: STALE_CONFIG, body=OVERSIZE),
        StaleAttestation,
        "configuration changed",
    ),
    ("one byte over the limit", Call(body=OVERSIZE), PayloadTooLarge, "larger than the limit"),
    (
        "sealed with the owner's key, sent by a data owner",
        Call(body=lambda room: room.sealed(sender=OWNER)),
        AccessDenied,
        "not registered for you",
    ),
    (
        "another action than predict",
        Call(body=lambda room: room.sealed(action="upload")),
        InvalidRequest,
        "cannot carry action 'upload'",
    ),
]


def _predict(room: Room, call: Call) -> Any:
    return room.service.predict(
        call.email,
        room.staged_id if call.on_stage else room.empty_id if call.on_empty else room.instance_id,
        call.body(room),
        key_id_hex=call.key_id_hex(room),
        config=call.config(room),
    )


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [pytest.param(c, e, m, id=name) for name, c, e, m in REFUSALS],
)
def test_predict_refuses_for_the_earliest_failed_check(
    room: Room, call: Call, error: type[Error], message: str
) -> None:
    with pytest.raises(error, match=message) as refused:
        _predict(room, call)
    assert type(refused.value) is error


def test_a_request_that_attested_what_is_in_force_is_answered(room: Room) -> None:
    key_id = room.service.tee.hpke.public.key_id.hex()
    sealed, receipt = _predict(
        room, Call(key_id_hex=lambda _r: key_id, config=lambda r: r.config())
    )
    assert sealed
    assert receipt


def test_a_body_exactly_at_the_limit_is_opened_not_refused_for_its_size(room: Room) -> None:
    with pytest.raises(Error) as refused:
        _predict(room, Call(body=lambda _r: b"\0" * LIMIT))
    assert not isinstance(refused.value, PayloadTooLarge)


def test_a_sealed_request_is_answered_once(room: Room) -> None:
    body = room.sealed()
    _predict(room, Call(body=lambda _r: body))
    with pytest.raises(ReplayDetected, match="already received"):
        _predict(room, Call(body=lambda _r: body))


class _Failing:
    def run(self, _inputs: Any) -> Any:
        raise InferenceFailed("the model failed")


def test_a_failed_run_gives_its_place_in_the_budget_back(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = room.service.gate
    before = gate.queries(room.instance_id, USER)
    monkeypatch.setattr(room.service, "compose_runner", lambda _record, _runner: _Failing())
    with pytest.raises(InferenceFailed):
        _predict(room, Call())
    assert gate.queries(room.instance_id, USER) == before
