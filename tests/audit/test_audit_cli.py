"""``cleanroom audit``: commit, digest, run (local ONNX) and offline verify."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from cleanroom.audit import AuditSpec
from cleanroom.cli import audit as audit_cli
from cleanroom.errors import ConfigurationError, Error, LogIntegrityError

SpecFactory = Callable[..., dict[str, Any]]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cleanroom")
    audit_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


@pytest.fixture
def files(task: Any, tmp_path: Path, spec_doc: SpecFactory) -> dict[str, Path]:
    members = tmp_path / "members.npz"
    np.savez(members, features=task.members.features, labels=task.members.labels)
    nonmembers = tmp_path / "nonmembers.csv"
    header = ",".join([f"f{i}" for i in range(task.nonmembers.features.shape[1])] + ["label"])
    rows = [
        ",".join([*(repr(float(v)) for v in row), str(int(y))])
        for row, y in zip(task.nonmembers.features, task.nonmembers.labels, strict=True)
    ]
    nonmembers.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_doc(epsilon_claim=0.5)), encoding="utf-8")
    key = ec.generate_private_key(ec.SECP384R1())
    private = tmp_path / "room.key"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = tmp_path / "room.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return {
        "members": members,
        "nonmembers": nonmembers,
        "spec": spec,
        "key": private,
        "pub": public,
        "cert": tmp_path / "certificate.json",
    }


def test_commit_and_digest(
    files: dict[str, Path], task: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["audit", "commit", str(files["members"])]) == 0
    assert capsys.readouterr().out.strip() == task.members.commitment()
    # The CSV round trip gives the same commitment as the in-memory records.
    assert _run(["audit", "commit", str(files["nonmembers"])]) == 0
    assert capsys.readouterr().out.strip() == task.nonmembers.commitment()
    assert _run(["audit", "digest", str(files["spec"])]) == 0
    expected = AuditSpec.from_bytes(files["spec"].read_bytes()).digest
    assert capsys.readouterr().out.strip() == expected


def test_run_sign_and_verify_offline(
    files: dict[str, Path], overfit_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        [
            "audit",
            "run",
            "--spec",
            str(files["spec"]),
            "--model",
            str(overfit_model),
            "--members",
            str(files["members"]),
            "--nonmembers",
            str(files["nonmembers"]),
            "--sign-key",
            str(files["key"]),
            "--out",
            str(files["cert"]),
        ]
    )
    assert code == 0
    report = capsys.readouterr().out
    assert "Verdict: VIOLATION" in report
    assert "estimates, NOT bounds" in report
    assert "Lower bounds on epsilon" in report
    assert files["cert"].exists()

    code = _run(
        [
            "audit",
            "verify",
            str(files["cert"]),
            "--key",
            str(files["pub"]),
            "--spec",
            str(files["spec"]),
            "--model",
            str(overfit_model),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "signature OK (ES384" in out
    assert "Verdict: VIOLATION" in out


def test_run_json_output_and_consistent_verdict(
    files: dict[str, Path],
    private_model: Path,
    spec_doc: SpecFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files["spec"].write_text(json.dumps(spec_doc(epsilon_claim=1.0)), encoding="utf-8")
    argv = ["audit", "run", "--spec", str(files["spec"]), "--model", str(private_model)]
    argv += ["--members", str(files["members"]), "--nonmembers", str(files["nonmembers"])]
    assert _run([*argv, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["verdict"] == "CONSISTENT"
    assert body["epsilon_lower_bound"]["kind"] == "lower-bound"
    assert _run(argv) == 0
    assert "CONSISTENT is not a proof of privacy" in capsys.readouterr().out


def _signed(files: dict[str, Path], overfit_model: Path) -> None:
    argv = ["audit", "run", "--spec", str(files["spec"]), "--model", str(overfit_model)]
    argv += ["--members", str(files["members"]), "--nonmembers", str(files["nonmembers"])]
    argv += ["--sign-key", str(files["key"]), "--out", str(files["cert"])]
    assert _run(argv) == 0


def _other_public_key(path: Path) -> Path:
    other = path.parent / "other.pub"
    other.write_bytes(
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return other


@pytest.mark.parametrize(
    ("name", "extra", "error"),
    [
        ("no key", lambda f, m: [], ConfigurationError),
        ("other key", lambda f, m: ["--key", str(_other_public_key(f["pub"]))], LogIntegrityError),
        ("key file missing", lambda f, m: ["--key", str(f["pub"]) + ".gone"], ConfigurationError),
        ("not a key", lambda f, m: ["--key", str(f["spec"])], ConfigurationError),
        (
            "other model",
            lambda f, m: ["--key", str(f["pub"]), "--model", str(f["members"])],
            LogIntegrityError,
        ),
    ],
)
def test_verify_refusals(
    files: dict[str, Path],
    overfit_model: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    extra: Callable[[dict[str, Path], Path], list[str]],
    error: type[Error],
) -> None:
    _signed(files, overfit_model)
    capsys.readouterr()
    with pytest.raises(error):
        _run(["audit", "verify", str(files["cert"]), *extra(files, overfit_model)])


def test_verify_refuses_another_spec(
    files: dict[str, Path], overfit_model: Path, spec_doc: SpecFactory
) -> None:
    _signed(files, overfit_model)
    other_spec = files["spec"].parent / "other-spec.json"
    other_spec.write_text(json.dumps(spec_doc(epsilon_claim=3.0)), encoding="utf-8")
    with pytest.raises(LogIntegrityError, match="different audit spec"):
        _run(
            [
                "audit",
                "verify",
                str(files["cert"]),
                "--key",
                str(files["pub"]),
                "--spec",
                str(other_spec),
            ]
        )


@pytest.mark.parametrize(
    ("name", "argv_for", "error"),
    [
        ("sign key without out", lambda f: ["--sign-key", str(f["key"])], ConfigurationError),
        (
            "public key as signing key",
            lambda f: ["--sign-key", str(f["pub"]), "--out", str(f["cert"])],
            ConfigurationError,
        ),
    ],
)
def test_run_refusals(
    files: dict[str, Path],
    overfit_model: Path,
    name: str,
    argv_for: Callable[[dict[str, Path]], list[str]],
    error: type[Error],
) -> None:
    argv = ["audit", "run", "--spec", str(files["spec"]), "--model", str(overfit_model)]
    argv += ["--members", str(files["members"]), "--nonmembers", str(files["nonmembers"])]
    with pytest.raises(error):
        _run([*argv, *argv_for(files)])


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as caught:
        _run(["audit", "run", "--spec", "x"])
    assert caught.value.code == 2
