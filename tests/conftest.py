"""Shared fixtures: a real clean-room server on a loopback port, and its parties."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cleanroom import AttestationPolicy, Client
from cleanroom.attestation.measurement import package_measurement
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cleanroom-data")


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[ServerThread]:
    with ServerThread(ServerSettings(data_dir=data_dir, max_request_bytes=8 * 1024 * 1024)) as s:
        yield s


@pytest.fixture(scope="module")
def policy(data_dir: Path, server: ServerThread) -> AttestationPolicy:
    return AttestationPolicy(
        measurements=[package_measurement().hex()],
        allow_simulated=True,
        simulated_root=data_dir / "simulated-root.pem",
    )


@pytest.fixture(scope="module")
def party(server: ServerThread) -> Iterator[Callable[[str], Client]]:
    """Sign up (once) and sign in a party by email."""
    clients: list[Client] = []
    known: set[str] = set()

    def make(email: str) -> Client:
        client = Client(server.url)
        if email not in known:
            client.sign_up(email, PASSWORD)
            known.add(email)
        client.sign_in(email, PASSWORD)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
