"""State survives restarts; nothing plaintext ever reaches the data directory."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.models import single_input_model

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.attestation.measurement import package_measurement
from cleanroom.errors import AccessDenied
from cleanroom.policy import verify_log
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings

PASSWORD = "correct horse battery staple"


def _all_bytes(directory: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in directory.rglob("*") if p.is_file()]


def test_restart_keeps_state_and_the_sdk_reattests(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = single_input_model()
    marker = np.full((4, 3), 1234.5678, dtype=np.float32)  # a distinctive input byte pattern
    first = ServerThread(ServerSettings(data_dir=tmp_path)).start()
    policy = AttestationPolicy(
        measurements=[package_measurement().hex()],
        allow_simulated=True,
        simulated_root=tmp_path / "simulated-root.pem",
    )
    port = int(first.url.rsplit(":", 1)[1])
    alice, bob = Client(first.url), Client(first.url)
    alice.sign_up("alice@lender.example", PASSWORD)
    alice.sign_in("alice@lender.example", PASSWORD)
    bob.sign_up("bob@bank.example", PASSWORD)
    bob.sign_in("bob@bank.example", PASSWORD)
    inst = alice.create_instance("Persist", ModelFormat.ONNX, ["bob@bank.example"])
    inst.validate_attestation(policy)
    inst.set_secret(Secret())
    inst.upload_model(model)
    b = bob.get_instance(inst.id)
    b.validate_attestation(policy)
    b.set_secret(Secret())
    before = b.predict(marker)["y"]
    first.stop()

    # No file in the data directory holds the plaintext model or the input.
    model_probe = model[-64:]  # the serialized weights sit at the end of the protobuf
    input_probe = marker.tobytes()[:32]
    for path, content in _all_bytes(tmp_path):
        assert model_probe not in content, path
        assert input_probe not in content, path
        assert before.tobytes()[:16] not in content, path

    second = ServerThread(ServerSettings(data_dir=tmp_path), port=port).start()
    try:
        # Accounts, instances and allow-lists survived; the model was reloaded from sealed storage.
        again = Client(second.url)
        again.sign_in("bob@bank.example", PASSWORD)
        assert inst.id in [i.id for i in again.list_instances()]
        assert again.get_instance(inst.id).model_ready
        again.close()
        # The attested key changed with the restart: the SDK re-attests by itself, and says so.
        with caplog.at_level(logging.WARNING, logger="cleanroom.client"):
            after = b.predict(marker)["y"]
        np.testing.assert_array_equal(after, before)
        assert "validating the attestation again" in caplog.text
        # The decision log survived too, under the same sealed signing key.
        exported = inst.usage_log()
        assert [(e["action"], e["decision"]) for e in exported["entries"]] == [
            ("upload_model", "allow"),
            ("predict", "allow"),
            ("predict", "allow"),
        ]
        assert b.attested_config is not None
        verify_log(exported, b.attested_config["keys"]["signing"])
        with pytest.raises(AccessDenied):
            _stranger(second.url, inst.id)
    finally:
        alice.close()
        bob.close()
        second.stop()


def _stranger(url: str, instance_id: str) -> None:
    client = Client(url)
    client.sign_up("eve@elsewhere.example", PASSWORD)
    client.sign_in("eve@elsewhere.example", PASSWORD)
    try:
        client.get_instance(instance_id)
    finally:
        client.close()


def test_cli_measurement_matches_what_the_server_reports(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cleanroom.cli.main", "measurement"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == package_measurement().hex()


def test_serve_subprocess_with_closed_registration_and_user_add(tmp_path: Path) -> None:
    add = subprocess.run(
        [
            sys.executable,
            "-m",
            "cleanroom.cli.main",
            "user",
            "add",
            "admin@lender.example",
            "--data-dir",
            str(tmp_path),
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
    )
    assert add.returncode == 0, add.stderr
    assert "admin@lender.example" in add.stdout
    short = subprocess.run(
        [
            sys.executable,
            "-m",
            "cleanroom.cli.main",
            "user",
            "add",
            "x@lender.example",
            "--data-dir",
            str(tmp_path),
        ],
        input="short\n",
        capture_output=True,
        text=True,
    )
    assert short.returncode == 1
    assert short.stderr.startswith("cleanroom: ")
    assert len(short.stderr.strip().splitlines()) == 1

    with (
        ServerThread(ServerSettings(data_dir=tmp_path, open_registration=False)) as server,
        Client(server.url) as client,
    ):
        with pytest.raises(AccessDenied, match="registration is closed"):
            client.sign_up("new@bank.example", PASSWORD)
        client.sign_in("admin@lender.example", PASSWORD)
        assert client.list_instances() == []
        health = httpx.get(f"{server.url}/v1/health").json()
        assert health["simulated"] is True
        assert "NO confidentiality" in health["warning"]
