"""A sealed model serves only as the model its instance's record names.

The host owns the models directory: it can copy one instance's sealed file
over another's, or put back an instance's earlier sealed model. Neither may
ever serve, at start-up or when a worker is restarted from sealed storage.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.models import identity_inputs, identity_model, single_input_model
from tests.server.party_keys import register
from tests.server.uploads import feed, pieces, sealed_model

from cleanroom.crypto.keys import KeyPair
from cleanroom.errors import DecryptionFailed, InferenceFailed, ModelNotReady
from cleanroom.runtime.sandbox.supervisor import SandboxedRunner
from cleanroom.server.models import SealedModelStore
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings

OWNER = "owner@example.org"


def _digest(model: bytes) -> str:
    return "sha256:" + hashlib.sha256(model).hexdigest()


# --- the store ------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> SealedModelStore:
    return SealedModelStore(tmp_path, os.urandom(32), os.urandom(32))


def _copy(store: SealedModelStore, source: str, target: str) -> None:
    store.path(target).write_bytes(store.path(source).read_bytes())


def test_the_same_model_sealed_for_another_instance_does_not_open(
    store: SealedModelStore,
) -> None:
    """Same plaintext, same digest: only the instance binding tells the files apart."""
    model = b"the same model"
    store.save("i1", model)
    store.save("i2", model)
    _copy(store, "i1", "i2")
    with pytest.raises(DecryptionFailed):
        store.load("i2", 1024, _digest(model))
    assert bytes(store.load("i1", 1024, _digest(model))) == model


def test_an_earlier_model_of_the_same_instance_does_not_open(store: SealedModelStore) -> None:
    store.save("i1", b"model A")
    earlier = store.path("i1").read_bytes()
    store.save("i1", b"model B")
    store.path("i1").write_bytes(earlier)  # the host puts the earlier sealed file back
    with pytest.raises(DecryptionFailed):
        store.load("i1", 1024, _digest(b"model B"))


def test_the_recorded_digest_must_match_exactly(store: SealedModelStore) -> None:
    store.save("i1", b"model A")
    for wrong in ("", "sha256:", _digest(b"model B"), _digest(b"model A").upper()):
        with pytest.raises(DecryptionFailed):
            store.load("i1", 1024, wrong)
    assert bytes(store.load("i1", 1024, _digest(b"model A"))) == b"model A"


# --- the service, across a restart ----------------------------------------------------------


def _upload(service: CleanRoomService, instance_id: str, sender: KeyPair, model: bytes) -> None:
    feed(service, OWNER, instance_id, pieces(sealed_model(service, instance_id, sender, model)))


def _serves(service: CleanRoomService, instance_id: str) -> bool:
    try:
        service._predictable(OWNER, instance_id, None)
    except ModelNotReady:
        return False
    return True


def _two_instances(data_dir: Path) -> tuple[str, str]:
    """i1 with one model and i2 with another, then the service stops."""
    service = CleanRoomService(ServerSettings(data_dir=data_dir))
    try:
        ids = []
        for name, model in (("first", single_input_model()), ("second", identity_model())):
            record = service.create_instance(OWNER, name, "onnx", [])
            sender = KeyPair()
            register(service, OWNER, record.id, sender)
            _upload(service, record.id, sender, model)
            ids.append(record.id)
        return ids[0], ids[1]
    finally:
        service.close()


def _swap_first_over_second(models: Path, first: str, second: str) -> None:
    (models / f"{second}.sealed").write_bytes((models / f"{first}.sealed").read_bytes())


def _rename_first_to_second(models: Path, first: str, second: str) -> None:
    os.replace(models / f"{first}.sealed", models / f"{second}.sealed")


Tamper = Callable[[Path, str, str], None]


@pytest.mark.parametrize(
    "tamper", [_swap_first_over_second, _rename_first_to_second], ids=["copy", "rename"]
)
def test_a_sealed_model_moved_to_another_instance_never_serves_after_a_restart(
    tmp_path: Path, tamper: Tamper
) -> None:
    first, second = _two_instances(tmp_path)
    settings = ServerSettings(data_dir=tmp_path)
    tamper(settings.models_dir, first, second)
    service = CleanRoomService(settings)
    try:
        assert not _serves(service, second)
        with pytest.raises(ModelNotReady):
            service._predictable(OWNER, second, None)
        if tamper is _swap_first_over_second:
            assert _serves(service, first)  # the untouched instance still serves
    finally:
        service.close()


def test_an_earlier_sealed_model_put_back_never_serves_after_a_restart(tmp_path: Path) -> None:
    service = CleanRoomService(ServerSettings(data_dir=tmp_path))
    try:
        assert service.models is not None
        record = service.create_instance(OWNER, "rollback", "onnx", [])
        sender = KeyPair()
        register(service, OWNER, record.id, sender)
        _upload(service, record.id, sender, single_input_model())
        earlier = service.models.path(record.id).read_bytes()
        _upload(service, record.id, sender, identity_model())
        sealed_path = service.models.path(record.id)
    finally:
        service.close()
    sealed_path.write_bytes(earlier)
    service = CleanRoomService(ServerSettings(data_dir=tmp_path))
    try:
        assert service.store.instance(record.id).model_digest == _digest(identity_model())
        assert not _serves(service, record.id)
    finally:
        service.close()


def test_a_worker_restarted_after_the_sealed_file_was_swapped_does_not_load_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = _two_instances(tmp_path)
    service = CleanRoomService(ServerSettings(data_dir=tmp_path))
    try:
        assert _serves(service, second)
        source = service._sealed_source(second)
        assert source is not None
        assert bytes(source()) == identity_model()
        _swap_first_over_second(service.settings.models_dir, first, second)
        with pytest.raises(DecryptionFailed):
            source()
        # The real restart path: every worker dies, the next request restarts one
        # from storage, which refuses the swapped file.
        _record, runner = service._predictable(OWNER, second, None)
        assert isinstance(runner, SandboxedRunner)
        for pid in runner.worker_pids:
            os.kill(pid, signal.SIGKILL)
        _wait_until_dead(runner)
        with pytest.raises(InferenceFailed, match="could not be restarted"):
            runner.run(identity_inputs())
        assert "could not be restarted (DecryptionFailed)" in caplog.text
    finally:
        service.close()


def _wait_until_dead(runner: SandboxedRunner) -> None:
    deadline = time.monotonic() + 10
    while runner.worker_pids and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not runner.worker_pids
