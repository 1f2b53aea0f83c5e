"""A deleted sealed log key is not replaced while the data directory holds a logged history.

Otherwise the host could restore an older store, delete
``receipt-signing-key.sealed`` and restart: the forked log would be re-signed
under a fresh key, and receipts kept under the old key could no longer be
compared with it (see docs/receipts.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cleanroom.errors import ConfigurationError
from cleanroom.policy import content_digest
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings
from cleanroom.server.tee import Tee

SEALED_KEY = "receipt-signing-key.sealed"


def _start(data_dir: Path) -> CleanRoomService:
    return CleanRoomService(ServerSettings(data_dir=data_dir))


def _run_with_entries(data_dir: Path, n: int) -> str:
    """Start, log *n* decisions, stop; the log key's PEM."""
    service = _start(data_dir)
    try:
        for i in range(n):
            service.gate.log.append(
                "inst-0",
                "predict",
                "bank-a@example.com",
                True,
                None,
                content_digest(b"policy"),
                None,
                content_digest(f"request {i}".encode()),
                content_digest(f"response {i}".encode()),
            )
        return service.tee.signing_public_key_pem()
    finally:
        service.close()


def test_a_fresh_data_directory_starts_and_keeps_its_log_key(tmp_path: Path) -> None:
    key = _run_with_entries(tmp_path, 3)
    assert (tmp_path / SEALED_KEY).exists()
    again = _start(tmp_path)
    try:
        assert again.tee.signing_public_key_pem() == key
        assert again.gate.log.size == 3
    finally:
        again.close()


def test_a_deleted_sealed_key_with_a_logged_history_refuses_to_start(tmp_path: Path) -> None:
    _run_with_entries(tmp_path, 3)
    (tmp_path / SEALED_KEY).unlink()
    for _ in range(2):  # refusing writes no new key: the next start refuses too
        with pytest.raises(ConfigurationError, match="3 entries") as info:
            _start(tmp_path)
        assert "move" in info.value.remedy
        assert "start a new log" in info.value.remedy
        assert not (tmp_path / SEALED_KEY).exists()
    # The Tee alone refuses as well (whoever constructs it).
    with pytest.raises(ConfigurationError, match="is missing"):
        Tee("simulated", tmp_path)


def test_a_deleted_sealed_key_with_an_empty_log_starts(tmp_path: Path) -> None:
    _run_with_entries(tmp_path, 0)
    (tmp_path / SEALED_KEY).unlink()
    service = _start(tmp_path)
    try:
        assert (tmp_path / SEALED_KEY).exists()
    finally:
        service.close()


def test_moving_the_old_store_aside_starts_a_new_log(tmp_path: Path) -> None:
    old_key = _run_with_entries(tmp_path, 2)
    (tmp_path / SEALED_KEY).unlink()
    aside = tmp_path / "old"
    aside.mkdir()
    for part in tmp_path.glob("cleanroom.sqlite3*"):
        part.rename(aside / part.name)
    service = _start(tmp_path)
    try:
        assert service.gate.log.size == 0
        assert service.tee.signing_public_key_pem() != old_key
    finally:
        service.close()
