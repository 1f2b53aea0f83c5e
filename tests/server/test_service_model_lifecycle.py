"""An instance's model across uploads and deletion: an upload that attested a stale
key or configuration is refused before it takes a slot; a new model unloads the
workers of the one it replaces; deleting the instance unloads its workers and
removes its sealed file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from tests.models import single_input_model
from tests.server.party_keys import register
from tests.server.uploads import pieces, sealed_model

from cleanroom.crypto.keys import KeyPair
from cleanroom.errors import AccessDenied, Error, NotFound, StaleAttestation
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings

OWNER = "owner@example.org"
USER = "user@example.org"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CleanRoomService]:
    svc = CleanRoomService(ServerSettings(data_dir=tmp_path_factory.mktemp("lifecycle")))
    try:
        yield svc
    finally:
        svc.close()


def _instance(service: CleanRoomService) -> tuple[str, dict[str, KeyPair]]:
    record = service.create_instance(OWNER, "lifecycle", "onnx", [USER])
    keys = {OWNER: KeyPair(), USER: KeyPair()}
    for email, key in keys.items():
        register(service, email, record.id, key)
    return record.id, keys


def _upload(
    service: CleanRoomService,
    instance_id: str,
    sender: KeyPair,
    email: str = OWNER,
    **fresh: Any,
) -> None:
    parts = sealed_model(service, instance_id, sender, single_input_model())
    fresh = {"key_id_hex": None, "config": None} | fresh
    asyncio.run(service.upload_model(email, instance_id, pieces(parts), **fresh))


@pytest.mark.parametrize(
    ("who", "fresh", "error", "message"),
    [
        pytest.param(USER, {}, AccessDenied, "only the instance's owner", id="a data owner"),
        pytest.param(
            OWNER, {"key_id_hex": "00" * 8}, StaleAttestation, "key changed", id="a stale key"
        ),
        pytest.param(
            OWNER,
            {"config": "00" * 48},
            StaleAttestation,
            "configuration changed",
            id="a stale configuration",
        ),
    ],
)
def test_an_upload_is_refused_before_it_takes_a_slot(
    service: CleanRoomService,
    who: str,
    fresh: dict[str, Any],
    error: type[Error],
    message: str,
) -> None:
    instance_id, keys = _instance(service)
    with pytest.raises(error, match=message) as refused:
        _upload(service, instance_id, keys[who], who, **fresh)
    assert type(refused.value) is error
    assert service.store.instance(instance_id).model_digest is None
    assert instance_id not in service._uploading
    # What the caller attested is what is in force: the upload goes through.
    record = service.store.instance(instance_id)
    _upload(
        service,
        instance_id,
        keys[OWNER],
        key_id_hex=service.tee.hpke.public.key_id.hex(),
        config=service.current_config_digest(record),
    )
    assert service.store.instance(instance_id).model_digest is not None


def test_a_new_model_unloads_the_workers_of_the_one_it_replaces(
    service: CleanRoomService,
) -> None:
    instance_id, keys = _instance(service)
    _upload(service, instance_id, keys[OWNER])
    first = service._runner_keys[instance_id]
    assert service.supervisor.runner(first) is service._runners[instance_id]
    _upload(service, instance_id, keys[OWNER])
    second = service._runner_keys[instance_id]
    assert second != first
    assert service.supervisor.runner(second) is service._runners[instance_id]
    with pytest.raises(NotFound):
        service.supervisor.runner(first)


def test_deleting_an_instance_unloads_its_workers_and_removes_its_sealed_model(
    service: CleanRoomService,
) -> None:
    assert service.models is not None
    instance_id, keys = _instance(service)
    _upload(service, instance_id, keys[OWNER])
    key = service._runner_keys[instance_id]
    sealed = service.models.path(instance_id)
    assert sealed.exists()
    service.delete_instance(OWNER, instance_id)
    assert not sealed.exists()
    with pytest.raises(NotFound):
        service.supervisor.runner(key)
    assert instance_id not in service._runners
    with pytest.raises(NotFound):
        service.visible_instance(OWNER, instance_id)
