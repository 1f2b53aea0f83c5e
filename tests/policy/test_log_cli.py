"""``cleanroom log verify``: receipts and exports, keyed by PEM or by attested evidence."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.cli import log as log_cli
from cleanroom.crypto.binding import config_digest, report_data
from cleanroom.errors import (
    AttestationError,
    ConfigurationError,
    LogIntegrityError,
    PolicyViolation,
)
from cleanroom.policy import DecisionLog

MEASUREMENT = bytes(range(48))
HPKE_RAW = bytes(range(100, 132))
NONCE = bytes(range(16))


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cleanroom")
    subparsers = parser.add_subparsers(dest="command", required=True)
    log_cli.register(subparsers)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def _pem(key: Any) -> bytes:
    data: bytes = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


@pytest.fixture
def files(tmp_path: Path, filled_log: DecisionLog, other_key: Any) -> dict[str, Path]:
    paths = {
        "key": tmp_path / "log-key.pem",
        "other": tmp_path / "other-key.pem",
        "export": tmp_path / "export.json",
        "filtered": tmp_path / "filtered.json",
        "receipt": tmp_path / "receipt.json",
    }
    paths["key"].write_bytes(_pem(filled_log.public_key))
    paths["other"].write_bytes(_pem(other_key.public_key()))
    paths["export"].write_text(json.dumps(filled_log.export()))
    paths["filtered"].write_text(json.dumps(filled_log.export(party="bank-a@example.com")))
    paths["receipt"].write_text(json.dumps(filled_log.receipt(4).to_json()))
    return paths


def test_verify_receipt_with_key(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["log", "verify", str(files["receipt"]), "--key", str(files["key"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: receipt verified: entry 4 (allow predict by bank-b@example.com")


def test_verify_export_with_key(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["log", "verify", str(files["export"]), "--key", str(files["key"])]) == 0
    out = capsys.readouterr().out
    assert "OK: log export verified: 9 entries" in out
    assert "complete: no entry is missing" in out
    assert "decisions: 6 allowed, 3 denied" in out


def test_verify_filtered_export_says_what_it_cannot_show(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["log", "verify", str(files["filtered"]), "--key", str(files["key"])]) == 0
    out = capsys.readouterr().out
    assert "filtered (party=bank-a@example.com)" in out
    assert "cannot show that none of its entries was left out" in out


def _tamper_export(path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["entries"].pop(3)
    path.write_text(json.dumps(doc))


def _tamper_receipt(path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["entry"]["decision"] = "deny"
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("name", "file", "key", "tamper", "error", "message"),
    [
        (
            "removed entry",
            "export",
            "key",
            _tamper_export,
            LogIntegrityError,
            "removed entry: seq 3",
        ),
        ("altered receipt", "receipt", "key", _tamper_receipt, LogIntegrityError, "altered entry"),
        ("export, wrong key", "export", "other", None, LogIntegrityError, "bad signature"),
        ("receipt, wrong key", "receipt", "other", None, LogIntegrityError, "bad signature"),
        ("key not PEM", "receipt", "export", None, ConfigurationError, "not a PEM public key"),
        (
            "neither log nor receipt",
            "key",
            "key",
            lambda p: p.write_text('{"format": "x"}'),
            LogIntegrityError,
            "neither an exported log nor a receipt",
        ),
        ("not JSON", "export", "key", lambda p: p.write_text("{"), ConfigurationError, "not JSON"),
    ],
)
def test_verify_refuses(
    files: dict[str, Path],
    tmp_path: Path,
    name: str,
    file: str,
    key: str,
    tamper: Any,
    error: type[Exception],
    message: str,
) -> None:
    target = files[file]
    if tamper is not None:
        target = tmp_path / "tampered.json"
        target.write_bytes(files[file].read_bytes())
        tamper(target)
    with pytest.raises(error, match=message):
        _run(["log", "verify", str(target), "--key", str(files[key])])


def test_missing_files_are_configuration_errors(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the key"):
        _run(["log", "verify", str(files["export"]), "--key", str(tmp_path / "none.pem")])
    with pytest.raises(ConfigurationError, match="cannot read the file"):
        _run(["log", "verify", str(tmp_path / "none.json"), "--key", str(files["key"])])


def test_a_key_source_is_required(files: dict[str, Path]) -> None:
    with pytest.raises(SystemExit) as info:
        _run(["log", "verify", str(files["export"])])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        _run(
            [
                "log",
                "verify",
                str(files["export"]),
                "--key",
                str(files["key"]),
                "--evidence",
                str(files["export"]),
            ]
        )


# ---------------------------------------------------------------- --evidence


@pytest.fixture(scope="module")
def tee(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSnpTee:
    # Creating the simulated chain generates RSA keys: once per module.
    return SimulatedSnpTee.open(tmp_path_factory.mktemp("tee"))


def _attestation_doc(
    tee: SimulatedSnpTee, signing_key: Any, *, signing: Any = None, **config_changes: Any
) -> dict[str, Any]:
    """What ``GET /v1/instances/{id}/attestation`` serves, for a log key (PEM, as served).

    *signing* replaces ``config.keys.signing`` before the TEE attests to the
    configuration; *config_changes* are made after it.
    """
    config: dict[str, Any] = {
        "version": 1,
        "keys": {
            "hpke": base64.b64encode(HPKE_RAW).decode(),
            "signing": _pem(signing_key).decode() if signing is None else signing,
        },
        "instance": {"id": "inst-1"},
    }
    data = report_data(hpke_public_key=HPKE_RAW, nonce=NONCE, config_digest=config_digest(config))
    config.update(config_changes)
    evidence = tee.evidence(data, measurement=MEASUREMENT)
    return {
        "evidence": evidence.to_json(),
        "config": config,
        "hpke_public_key": base64.b64encode(HPKE_RAW).decode(),
        "nonce": NONCE.hex(),
    }


def _policy_file(tmp_path: Path, tee: SimulatedSnpTee, measurement: bytes = MEASUREMENT) -> Path:
    path = tmp_path / "attestation-policy.json"
    path.write_text(
        json.dumps(
            {
                "allow_simulated": True,
                "simulated_root": str(tee.root_pem_path),
                "sev-snp": {"measurements": [measurement.hex()]},
            }
        )
    )
    return path


def _evidence_run(files: dict[str, Path], tmp_path: Path, doc: Any, policy: Path, file: str) -> int:
    evidence = tmp_path / "evidence.json"
    evidence.write_text(json.dumps(doc))
    return _run(
        [
            "log",
            "verify",
            str(files[file]),
            "--evidence",
            str(evidence),
            "--attestation-policy",
            str(policy),
        ]
    )


@pytest.mark.parametrize("file", ["export", "receipt"])
def test_verify_with_attested_key(
    files: dict[str, Path],
    tmp_path: Path,
    tee: SimulatedSnpTee,
    filled_log: DecisionLog,
    file: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = _attestation_doc(tee, filled_log.public_key)
    assert _evidence_run(files, tmp_path, doc, _policy_file(tmp_path, tee), file) == 0
    assert capsys.readouterr().out.startswith("OK:")


def test_evidence_naming_another_key_fails_the_log(
    files: dict[str, Path], tmp_path: Path, tee: SimulatedSnpTee, other_key: Any
) -> None:
    doc = _attestation_doc(tee, other_key.public_key())
    with pytest.raises(LogIntegrityError, match="bad signature"):
        _evidence_run(files, tmp_path, doc, _policy_file(tmp_path, tee), "export")


def test_a_p384_key_from_evidence(tmp_path: Path, tee: SimulatedSnpTee, conn: Any) -> None:
    # A decision log kept with an ECDSA P-384 key (ecdsa-p384-sha384) verifies too.
    key = ec.generate_private_key(ec.SECP384R1())
    log = DecisionLog(conn, key)
    log.append(
        "i", "predict", "p", True, None, "sha256:" + "00" * 32, None, "sha256:" + "11" * 32, None
    )
    export = tmp_path / "p384.json"
    export.write_text(json.dumps(log.export()))
    doc = _attestation_doc(tee, key.public_key())
    assert (
        _evidence_run({"export": export}, tmp_path, doc, _policy_file(tmp_path, tee), "export") == 0
    )


@pytest.mark.parametrize(
    ("name", "mutate", "error"),
    [
        # The configuration no longer matches what REPORT_DATA committed to.
        (
            "config swapped after attestation",
            lambda d: d["config"].update(version=2),
            PolicyViolation,
        ),
        ("nonce changed", lambda d: d.update(nonce="ff" * 16), PolicyViolation),
        ("evidence missing", lambda d: d.pop("evidence"), AttestationError),
        (
            "signing key not a string, after attestation",
            lambda d: d["config"]["keys"].update(signing=7),
            AttestationError,
        ),
        ("no keys", lambda d: d["config"].pop("keys"), AttestationError),
    ],
)
def test_unverifiable_evidence_is_refused(
    files: dict[str, Path],
    tmp_path: Path,
    tee: SimulatedSnpTee,
    filled_log: DecisionLog,
    name: str,
    mutate: Any,
    error: type[Exception],
) -> None:
    doc = _attestation_doc(tee, filled_log.public_key)
    mutate(doc)
    with pytest.raises(error):
        _evidence_run(files, tmp_path, doc, _policy_file(tmp_path, tee), "export")


def _der_base64(key: Any) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.mark.parametrize(
    ("name", "signing", "message"),
    [
        ("not a key", lambda key: "***", "not a PEM public key"),
        ("base64 DER, not PEM", _der_base64, "not a PEM public key"),
        (
            "a key that cannot sign",
            lambda key: _pem(x25519.X25519PrivateKey.generate().public_key()).decode(),
            "must be an Ed25519 or an ECDSA",
        ),
        ("not a string", lambda key: 7, "malformed"),
    ],
)
def test_an_attested_signing_key_that_is_not_a_log_key_is_refused(
    files: dict[str, Path],
    tmp_path: Path,
    tee: SimulatedSnpTee,
    filled_log: DecisionLog,
    name: str,
    signing: Any,
    message: str,
) -> None:
    # Attested as it is: only the key check itself can refuse it.
    doc = _attestation_doc(tee, filled_log.public_key, signing=signing(filled_log.public_key))
    with pytest.raises(AttestationError, match=message) as caught:
        _evidence_run(files, tmp_path, doc, _policy_file(tmp_path, tee), "export")
    assert not isinstance(caught.value, PolicyViolation)


def test_evidence_outside_the_attestation_policy_is_refused(
    files: dict[str, Path], tmp_path: Path, tee: SimulatedSnpTee, filled_log: DecisionLog
) -> None:
    doc = _attestation_doc(tee, filled_log.public_key)
    policy = _policy_file(tmp_path, tee, measurement=bytes(48))
    with pytest.raises(PolicyViolation):
        _evidence_run(files, tmp_path, doc, policy, "export")


def test_evidence_needs_an_attestation_policy(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--attestation-policy"):
        _run(["log", "verify", str(files["export"]), "--evidence", str(files["export"])])


def test_export_checked_against_kept_receipts(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["log", "verify", str(files["export"]), "--key", str(files["key"])]
    assert (
        _run([*argv, "--receipt", str(files["receipt"]), "--receipt", str(files["receipt"])]) == 0
    )
    assert "consistent with 2 receipt(s)" in capsys.readouterr().out


def test_receipts_only_check_exports(files: dict[str, Path]) -> None:
    argv = ["log", "verify", str(files["receipt"]), "--key", str(files["key"])]
    with pytest.raises(ConfigurationError, match="--receipt checks an exported log"):
        _run([*argv, "--receipt", str(files["receipt"])])


def test_a_removed_receipted_entry_fails_the_cli(files: dict[str, Path], tmp_path: Path) -> None:
    doc = json.loads(files["export"].read_text())
    doc["entries"].pop(4)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(doc))
    argv = ["log", "verify", str(tampered), "--key", str(files["key"])]
    with pytest.raises(LogIntegrityError, match="removed entry: seq 4"):
        _run([*argv, "--receipt", str(files["receipt"])])
