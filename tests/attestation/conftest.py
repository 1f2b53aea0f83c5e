"""Shared fixtures: simulated TEEs (one chain per session) and the SNP vectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cleanroom.attestation.simulated import SimulatedSnpTee

SNP_ASSETS = Path(__file__).resolve().parents[1] / "assets" / "attestation" / "snp"


@pytest.fixture(scope="session")
def snp_assets() -> Path:
    """The stored real SEV-SNP vectors (see each set's PROVENANCE.md)."""
    return SNP_ASSETS


@pytest.fixture(scope="session")
def simulated_tee(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSnpTee:
    return SimulatedSnpTee.open(tmp_path_factory.mktemp("tee"))


@pytest.fixture(scope="session")
def other_simulated_tee(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSnpTee:
    """A second, independent simulated TEE: an attacker's chain."""
    return SimulatedSnpTee.open(tmp_path_factory.mktemp("other-tee"))
