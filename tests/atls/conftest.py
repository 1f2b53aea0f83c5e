"""Fixtures: two simulated TEE roots, and real attested-TLS clean rooms."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from atls_fakes import STAGE_POLICY_DIGEST, policy_for

from cleanroom.atls import AtlsSettings, PeerRoute, Upstream
from cleanroom.attestation import AttestationPolicy
from cleanroom.attestation.measurement import package_measurement
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings


@pytest.fixture(scope="session")
def tee_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated TEE root shared by the real servers and the test identities."""
    path = tmp_path_factory.mktemp("tee")
    SimulatedSnpTee.open(path)
    return path


@pytest.fixture(scope="session")
def other_tee_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another simulated root: evidence chained to it must not verify under tee_dir's."""
    path = tmp_path_factory.mktemp("other-tee")
    SimulatedSnpTee.open(path)
    return path


@pytest.fixture(scope="session")
def policy(tee_dir: Path) -> AttestationPolicy:
    return policy_for(tee_dir)


@pytest.fixture(scope="module")
def server(tee_dir: Path) -> Iterator[ServerThread]:
    """A real clean room over attested TLS whose predictions only an allowed stage may call."""
    route = PeerRoute(
        "/v1/instances/*/predict",
        policy_for(tee_dir),
        (Upstream(package_measurement().hex(), STAGE_POLICY_DIGEST),),
    )
    with ServerThread(ServerSettings(data_dir=tee_dir), tls=AtlsSettings(routes=(route,))) as s:
        yield s
