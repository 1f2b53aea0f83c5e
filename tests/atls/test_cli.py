"""`cleanroom serve --tls --peers FILE` in a subprocess, and the peer-routes file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from atls_fakes import STAGE_POLICY_DIGEST, policy_for

from cleanroom import Client
from cleanroom.atls.settings import load_peer_routes
from cleanroom.attestation.measurement import package_measurement
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.errors import AccessDenied, ConfigurationError, ServiceUnavailable

PEERS = f"""
[[route]]
prefix = "/v1/instances/*/predict"
policy = "upstream.json"

[[route.upstream]]
measurement = "{package_measurement().hex()}"
policy_digest = "{STAGE_POLICY_DIGEST}"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _write_peers(directory: Path) -> Path:
    (directory / "upstream.json").write_text(
        '{"allow_simulated": true, "simulated_root": "simulated-root.pem",'
        f' "sev-snp": {{"measurements": ["{package_measurement().hex()}"]}}}}'
    )
    (directory / "peers.toml").write_text(PEERS)
    return directory / "peers.toml"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    SimulatedSnpTee.open(tmp_path)  # the root the peers file's policy names
    peers = _write_peers(tmp_path)
    argv = [sys.executable, "-m", "cleanroom.cli.main", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--data-dir", str(tmp_path), "--tls", "--peers", str(peers)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
    try:
        yield f"https://127.0.0.1:{port}", tmp_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def _wait_for(url: str, data_dir: Path) -> Client:
    deadline = time.monotonic() + 60
    while True:
        client = Client(url, attestation=policy_for(data_dir))
        try:
            client.health()
            return client
        except ServiceUnavailable:
            client.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_serve_tls_attests_and_guards_the_peer_routes(served: tuple[str, Path]) -> None:
    url, data_dir = served
    with _wait_for(url, data_dir) as client:
        (seen,) = client.server_attestations
        assert seen.evidence.measurement == package_measurement()
        client.sign_up("bob@bank.example", "correct horse battery staple")
        client.sign_in("bob@bank.example", "correct horse battery staple")
        with pytest.raises(AccessDenied, match="attested upstream"):
            client.request("POST", "/v1/instances/abc/predict", content=b"x")


def test_no_tls_with_peers_is_refused(tmp_path: Path) -> None:
    peers = _write_peers(tmp_path)
    argv = [sys.executable, "-m", "cleanroom.cli.main", "serve", "--no-tls", "--peers", str(peers)]
    done = subprocess.run(
        [*argv, "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "--peers needs attested TLS" in done.stderr


BAD_FILES = [
    ("not a route list", '{"route": {}}'),
    ("unknown top-level field", '{"route": [], "extra": 1}'),
    ("route without policy", '{"route": [{"prefix": "/v1"}]}'),
    ("unknown route field", '{"route": [{"prefix": "/v1", "policy": "u.json", "x": 1}]}'),
    (
        "upstream without policy digest",
        '{"route": [{"prefix": "/v1", "policy": "u.json", "upstream": [{"measurement": "00"}]}]}',
    ),
    ("not json", "route = "),
]


@pytest.mark.parametrize(("name", "text"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_peer_files_are_refused(name: str, text: str, tmp_path: Path) -> None:
    (tmp_path / "peers.json").write_text(text)
    with pytest.raises(ConfigurationError):
        load_peer_routes(tmp_path / "peers.json")


def test_peer_file_loads_routes_with_their_policy(tmp_path: Path, tee_dir: Path) -> None:
    (tmp_path / "simulated-root.pem").write_bytes((tee_dir / "simulated-root.pem").read_bytes())
    (route,) = load_peer_routes(_write_peers(tmp_path))
    assert route.prefix == "/v1/instances/*/predict"
    assert route.policy.allow_simulated
    assert [u.policy_digest for u in route.upstreams] == [STAGE_POLICY_DIGEST]
