"""``cleanroom serve``'s arguments: the service's settings, and one-line refusals."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cleanroom.attestation.fetch import AMD_KDS, INTEL_PCS
from cleanroom.cli import serve
from cleanroom.cli.defaults import ENVIRONMENT
from cleanroom.cli.main import build_parser
from cleanroom.server.settings import MIB, ServerSettings


def _serve_args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_defaults_are_the_services_own(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLEANROOM_DATA_DIR", "CLEANROOM_HOST", "CLEANROOM_PORT", "CLEANROOM_TEE"):
        monkeypatch.delenv(name, raising=False)
    args = _serve_args([])
    settings = serve.settings_from(args, open_registration=False)
    assert settings == ServerSettings(data_dir=Path(".cleanroom"), open_registration=False)
    assert (args.host, args.port) == ("127.0.0.1", 8000)


def test_limits_from_flags() -> None:
    args = _serve_args(
        [
            "--data-dir",
            "/srv/cr",
            "--max-request-mib",
            "8",
            "--max-model-mib",
            "2048",
            "--session-hours",
            "1",
            "--replay-window",
            "60",
        ]
    )
    settings = serve.settings_from(args, open_registration=True)
    assert settings.data_dir == Path("/srv/cr")
    assert settings.max_request_bytes == 8 * MIB
    assert settings.max_model_bytes == 2048 * MIB
    assert settings.token_ttl_s == 3600
    assert settings.replay_window_s == 60


def test_environment_sets_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEANROOM_DATA_DIR", "/var/lib/cleanroom")
    monkeypatch.setenv("CLEANROOM_HOST", "0.0.0.0")
    monkeypatch.setenv("CLEANROOM_PORT", "9443")
    monkeypatch.setenv("CLEANROOM_TEE", "sev-snp")
    args = _serve_args([])
    assert (args.data_dir, args.host, args.port, args.tee) == (
        Path("/var/lib/cleanroom"),
        "0.0.0.0",
        9443,
        "sev-snp",
    )
    assert _serve_args(["--port", "8443"]).port == 8443  # a flag wins


@pytest.mark.parametrize(
    ("argv", "environment", "message"),
    [
        (["--port", "http"], {}, "'http' is not a port number"),
        (["--port", "0"], {}, "'0' is not a port number"),
        (["--port", "70000"], {}, "'70000' is not a port number"),
        ([], {"CLEANROOM_PORT": "abc"}, "'abc' is not a port number"),
        ([], {"CLEANROOM_TEE": "sgx"}, "'sgx' is not a TEE this service runs on"),
        (["--tee", "sgx"], {}, "'sgx' is not a TEE this service runs on"),
        (["--max-request-mib", "0"], {}, "'0' is not a whole number above zero"),
        (["--max-model-mib", "-1"], {}, "'-1' is not a whole number above zero"),
        (["--session-hours", "1.5"], {}, "'1.5' is not a whole number above zero"),
        (["--replay-window", "x"], {}, "'x' is not a whole number above zero"),
    ],
)
def test_bad_values_are_refused_in_one_line(
    argv: list[str],
    environment: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        _serve_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_the_readme_names_every_environment_variable_read() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for variable, flag in ENVIRONMENT.items():
        assert f"`{variable}` (`{flag}`" in readme


@pytest.mark.parametrize(
    ("argv", "setting", "url"),
    [
        ([], "amd_kds_url", AMD_KDS),
        (["--amd-kds", "https://kds.mirror.example"], "amd_kds_url", "https://kds.mirror.example"),
        (["--no-amd-kds"], "amd_kds_url", None),
        ([], "intel_pcs_url", INTEL_PCS),
        (
            ["--intel-pcs", "https://pcs.mirror.example"],
            "intel_pcs_url",
            "https://pcs.mirror.example",
        ),
        (["--no-intel-pcs"], "intel_pcs_url", None),
    ],
)
def test_where_evidence_is_completed_from(argv: list[str], setting: str, url: str | None) -> None:
    settings = serve.settings_from(_serve_args(argv), open_registration=False)
    assert getattr(settings, setting) == url


@pytest.mark.parametrize(
    "argv",
    [
        ["--amd-kds", "https://kds.mirror.example", "--no-amd-kds"],
        ["--intel-pcs", "https://pcs.mirror.example", "--no-intel-pcs"],
    ],
)
def test_a_service_and_no_service_together_are_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _serve_args(argv)
    assert "not allowed with argument" in capsys.readouterr().err
