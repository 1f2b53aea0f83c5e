"""``cleanroom attestation verify|show`` driven through argparse, as main() does."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from snp_fakes import crl

from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.cli import attestation as cli
from cleanroom.errors import ConfigurationError, EvidenceFormatError

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "attestation" / "snp"
MS = ASSETS / "ms-tav-milan-genoa-turin"
COCO = ASSETS / "coco-trustee-milan-vcek-vlek"
GO = ASSETS / "go-sev-guest-milan-v2"


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cleanroom")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def _at(cert: Path) -> str:
    first = parse_certificate(split_certificates(cert.read_bytes())[0])
    return (first.not_before + timedelta(days=1)).isoformat()


MILAN = [
    str(MS / "milan_attestation_report.bin"),
    "--certs",
    str(MS / "milan_vcek.pem"),
    str(MS / "milan_ask.pem"),
    "--at",
    _at(MS / "milan_vcek.pem"),
]


# The stored vectors come without AMD CRLs, so revocation cannot be checked:
# refused unless the verifier opts out.
NO_CRL = "--no-require-crl"


def test_verify_real_milan_report_without_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["attestation", "verify", *MILAN]) == 1
    assert capsys.readouterr().out.startswith(
        "rejected: CRL: got none current, expected a current AMD CRL of ARK-Milan"
    )
    assert _run(["attestation", "verify", *MILAN, NO_CRL]) == 0
    assert capsys.readouterr().out == "accepted: sev-snp evidence, root ARK-Milan\n"


def test_no_require_crl_is_for_runs_without_a_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[sev-snp]\nmeasurements = ["' + "00" * 48 + '"]\n')
    with pytest.raises(ConfigurationError, match="without --policy"):
        _run(["attestation", "verify", *MILAN, "--policy", str(policy), NO_CRL])


def test_verify_json_prints_claims(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["attestation", "verify", *MILAN, NO_CRL, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["accepted"] is True
    assert doc["failures"] == []
    assert doc["claims"]["revocation_checked"] is False
    assert doc["claims"]["platform"] == "sev-snp"
    assert doc["claims"]["measurement"].startswith("5feee30d6d7e1a29")
    assert doc["claims"]["tcb"] == {"BOOT_LOADER": 4, "TEE": 0, "SNP": 24, "MICROCODE": 219}
    assert doc["claims"]["tcb_status"] == "NotApplicable"
    assert doc["claims"]["advisory_ids"] == []


def test_verify_with_policy_lists_every_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[sev-snp]\nmeasurements = ["' + "00" * 48 + '"]\nmin_tcb = { SNP = 30, MICROCODE = 250 }\n'
        "require_crl = false\n"
    )
    code = _run(["attestation", "verify", *MILAN, "--policy", str(policy), "--json"])
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["accepted"] is False
    assert [f.split(":")[0] for f in doc["failures"]] == [
        "MEASUREMENT",
        "REPORTED_TCB.SNP",
        "REPORTED_TCB.MICROCODE",
    ]
    assert doc["claims"]["measurement"].startswith("5feee30d")  # claims even when rejected
    code = _run(["attestation", "verify", *MILAN, "--policy", str(policy)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert len(lines) == 3
    assert all(line.startswith("rejected: ") for line in lines)


def test_verify_report_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["attestation", "verify", *MILAN, NO_CRL, "--report-data", "00" * 64]) == 0
    assert _run(["attestation", "verify", *MILAN, NO_CRL, "--report-data", "01" * 64]) == 1
    assert "REPORT_DATA: got" in capsys.readouterr().out


def test_tampered_report_is_rejected_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = bytearray((MS / "milan_attestation_report.bin").read_bytes())
    report[100] ^= 0xFF
    (tmp_path / "r.bin").write_bytes(bytes(report))
    argv = ["attestation", "verify", str(tmp_path / "r.bin"), *MILAN[1:], "--json"]
    assert _run(argv) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["claims"] is None
    assert doc["report"]["VERSION"] == 3  # the parsed, unauthenticated report
    assert any("SIGNATURE" in f for f in doc["failures"])


def test_vlek_report_with_der_and_bundle_certificates(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "attestation",
        "verify",
        str(COCO / "test-vlek-report.bin"),
        "--certs",
        str(COCO / "test-vlek.der"),
        str(COCO / "milan_ask_ark_asvk.pem"),
        "--at",
        _at(COCO / "test-vlek.der"),
        NO_CRL,
    ]
    assert _run(argv) == 0


def test_missing_certificates_are_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["attestation", "verify", str(GO / "attestation.bin")]) == 1
    assert "SEV-VCEK" in capsys.readouterr().out


def test_simulated_evidence_json_document(
    tmp_path: Path, simulated_tee: SimulatedSnpTee, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(simulated_tee.evidence(bytes(64)).to_json()))
    assert _run(["attestation", "verify", str(path)]) == 1
    assert "simulated" in capsys.readouterr().out
    argv = [
        "attestation",
        "verify",
        str(path),
        "--simulated-root",
        str(simulated_tee.root_pem_path),
    ]
    assert _run(argv) == 0
    captured = capsys.readouterr()
    assert "SIMULATED" in captured.out
    assert "SIMULATED" in captured.err


def test_show_lists_certificates(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["attestation", "show", *MILAN[:4]]) == 0
    out = capsys.readouterr().out
    assert "certificate  CN=SEV-VCEK issuer CN=SEV-Milan serial 0x0" in out
    assert "certificate  CN=SEV-Milan issuer CN=ARK-Milan" in out
    assert "POLICY              0x3001f (ABI 0.31, SMT)" in out
    assert "KEY_INFO            0x0 (SIGNING_KEY VCEK)" in out


def test_show_prints_decoded_turin_tcb(capsys: pytest.CaptureFixture[str]) -> None:
    turin = ASSETS / "openanolis-trustee-turin-v5-and-vlek" / "turin-report.bin"
    assert _run(["attestation", "show", str(turin)]) == 0
    out = capsys.readouterr().out
    assert "platform  sev-snp" in out
    assert "REPORTED_TCB:" in out
    assert "FMC" in out
    assert _run(["attestation", "show", str(turin), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["report"]["REPORTED_TCB"]["MICROCODE"] == 97
    assert doc["report"]["PRODUCT"] == "Turin"


@pytest.mark.parametrize(
    ("name", "argv", "error"),
    [
        ("garbage evidence", ["--garbage"], EvidenceFormatError),
        ("bad --at", ["--at", "yesterday"], ConfigurationError),
        ("short --report-data", ["--report-data", "00"], ConfigurationError),
        ("missing policy", ["--policy", "/nonexistent.toml"], ConfigurationError),
        ("missing certificate file", ["--certs", "/nonexistent.pem"], ConfigurationError),
    ],
)
def test_cli_errors_raise_for_main_to_report(
    tmp_path: Path, name: str, argv: list[str], error: type[Exception]
) -> None:
    evidence = str(MS / "milan_attestation_report.bin")
    if argv == ["--garbage"]:
        (tmp_path / "g.bin").write_bytes(b"not a report")
        evidence, argv = str(tmp_path / "g.bin"), []
    with pytest.raises(error):
        _run(["attestation", "verify", evidence, *argv])


def test_fetch_completes_bare_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cleanroom.attestation import fetch
    from cleanroom.attestation.snp import abi

    report = (MS / "milan_attestation_report.bin").read_bytes()
    kds = fetch.KdsFetcher()
    # No real AMD CRL is stored: the fake KDS serves one in ARK-Milan's name
    # signed by another key, which the verifier must refuse.
    not_amd = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ark_name = x509.load_pem_x509_certificate((MS / "milan_ark.pem").read_bytes()).subject
    pages = {
        kds.vcek_url(abi.parse_report(report), "Milan"): split_certificates(
            (MS / "milan_vcek.pem").read_bytes()
        )[0],
        kds.chain_url("Milan"): (MS / "milan_ask.pem").read_bytes()
        + (MS / "milan_ark.pem").read_bytes(),
        kds.crl_url("Milan"): crl(ark_name, not_amd),
    }
    requested: list[str] = []

    def fake_get(url: str) -> fetch.HttpResponse:
        requested.append(url)
        return fetch.HttpResponse(200, pages[url], {})

    monkeypatch.setattr(fetch, "httpx_get", fake_get)
    argv = ["attestation", "verify", str(MS / "milan_attestation_report.bin"), "--at", MILAN[-1]]
    assert _run(argv) == 1  # offline by default: no VCEK, rejected
    assert requested == []
    capsys.readouterr()
    assert _run([*argv, "--fetch", "--cache-dir", str(tmp_path)]) == 1
    assert requested == list(pages)  # the VCEK, its chain, and the CRL
    # The chain was completed and verifies; only the (forged) CRL is refused.
    assert capsys.readouterr().out.splitlines() == [
        "rejected: the SEV-SNP evidence is not authentic: CRL of ARK-Milan:"
        " signature does not verify"
    ]


SGX = ASSETS.parent / "sgx" / "dcap-qvl-sgx-v3"
SGX_AT = "2025-07-19T10:01:17+00:00"  # inside the collateral window (see its PROVENANCE.md)


def test_verify_dispatches_intel_evidence_to_its_verifier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "attestation",
        "verify",
        str(SGX / "sgx_quote_v3.bin"),
        "--collateral",
        str(SGX / "sgx_quote_v3_collateral.json"),
        "--at",
        SGX_AT,
        "--json",
    ]
    # Without a policy only UpToDate is accepted: this platform needs configuration.
    assert _run(argv) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["platform"] == "sgx"
    assert doc["claims"]["tcb_status"] == "ConfigurationAndSWHardeningNeeded"
    assert doc["claims"]["advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]
    assert [f.split(":")[0] for f in doc["failures"]] == ["TCB status", "advisory IDs"]
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'accepted_tcb_statuses = ["ConfigurationAndSWHardeningNeeded"]\n'
        'tolerated_advisory_ids = ["INTEL-SA-00289", "INTEL-SA-00615"]\n'
        '[sgx]\nmrenclave = ["' + doc["claims"]["measurements"]["MRENCLAVE"] + '"]\n'
    )
    assert _run([*argv, "--policy", str(policy)]) == 0
