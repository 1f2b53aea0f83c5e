"""An audit run as in a clean room instance, its certificate verified offline against evidence.

The room side uses the service's simulated TEE (``cleanroom.server.tee.Tee``):
real SEV-SNP report format, signed by a locally generated ARK → ASK → VCEK
chain, and the room's attested Ed25519 signing key. Issuing follows the
recipe in docs/privacy-audits.md; only the HTTP plumbing is left out.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.attestation import AttestationPolicy
from cleanroom.attestation.measurement import package_measurement
from cleanroom.audit import (
    AuditSpec,
    certificate_nonce,
    certificate_payload,
    run_membership_audit,
    sign_certificate,
    verify_certificate_with_evidence,
)
from cleanroom.audit.local import load_onnx_model
from cleanroom.cli import audit as audit_cli
from cleanroom.errors import (
    AttestationError,
    EvidenceFormatError,
    LogIntegrityError,
    PolicyViolation,
)
from cleanroom.server.tee import Tee

ISSUED = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tee, Path]:
    data_dir = tmp_path_factory.mktemp("room")
    return Tee("simulated", data_dir), data_dir


@pytest.fixture(scope="module")
def policy(room: tuple[Tee, Path]) -> AttestationPolicy:
    return AttestationPolicy(
        measurements=[package_measurement().hex()],
        allow_simulated=True,
        simulated_root=room[1] / "simulated-root.pem",
    )


@pytest.fixture(scope="module")
def audited(task: Any, overfit_model: Path) -> tuple[AuditSpec, dict[str, Any]]:
    spec = AuditSpec.from_json(
        {
            "format": "cleanroom-audit-spec/v1",
            "model": {"input": "X", "output": "probabilities", "output_kind": "probabilities"},
            "datasets": {
                "members": task.members.commitment(),
                "nonmembers": task.nonmembers.commitment(),
            },
            "attacks": [
                {"name": "loss-threshold", "threshold": {"policy": "split", "seed": 9}},
                {"name": "train-test-gap"},
            ],
            "confidence": 0.95,
            "delta": 0.0,
            "epsilon_claim": 1.0,
            "seed": 9,
        }
    )
    # Inside the room: the model and the record sets arrive sealed and are
    # opened in memory; here they come from the fixtures.
    predict, digest = load_onnx_model(overfit_model)
    result = run_membership_audit(spec, predict, task.members, task.nonmembers)
    return spec, certificate_payload(result, model_digest=digest, issued_at=ISSUED)


def _config(tee: Tee, *, spec_digest: str, model_digest: str) -> dict[str, Any]:
    """The attested configuration, shaped as the service's config_document()."""
    return {
        "version": 1,
        "service": {"tee": tee.kind, "simulated": tee.simulated},
        "keys": {
            "hpke": base64.b64encode(tee.hpke.public.raw).decode(),
            "signing": tee.signing_public_key_pem(),
        },
        "instance": {
            "id": "inst-1",
            "name": "credit model",
            "owner": "owner@bank.example",
            "format": "onnx",
            "users": ["analyst@lender.example"],
            "model_digest": model_digest,
            "policy_digest": "sha256:" + "0" * 64,
            "audit_spec_digest": spec_digest,
        },
    }


def _issue(
    tee: Tee,
    payload: dict[str, Any],
    config: dict[str, Any],
    *,
    nonce: bytes | None = None,
    signer: Any = None,
) -> bytes:
    nonce = certificate_nonce(payload) if nonce is None else nonce
    block = {
        "evidence": tee.evidence(nonce, config).to_json(),
        "config": config,
        "hpke_public_key": base64.b64encode(tee.hpke.public.raw).decode(),
        "nonce": nonce.hex(),
    }
    return sign_certificate(payload, signer or tee.signing_key, evidence=block)


def test_certificate_verifies_offline_against_the_evidence(
    room: tuple[Tee, Path],
    policy: AttestationPolicy,
    audited: tuple[AuditSpec, dict[str, Any]],
) -> None:
    tee, _ = room
    spec, payload = audited
    config = _config(tee, spec_digest=spec.digest, model_digest=payload["model_digest"])
    certificate = verify_certificate_with_evidence(_issue(tee, payload, config), policy)
    assert certificate.spec_digest == spec.digest
    assert certificate.verdict == "VIOLATION"
    assert certificate.algorithm == "Ed25519"


def _reissue_with(
    mutate_config: Callable[[dict[str, Any]], None] | None = None,
    *,
    other_nonce: bool = False,
    other_signer: bool = False,
    mutate_block: Callable[[dict[str, Any]], None] | None = None,
) -> Callable[[Tee, dict[str, Any], dict[str, Any]], bytes]:
    def build(tee: Tee, payload: dict[str, Any], config: dict[str, Any]) -> bytes:
        config = copy.deepcopy(config)
        if mutate_config is not None:
            mutate_config(config)
        document = _issue(
            tee,
            payload,
            config,
            nonce=bytes(32) if other_nonce else None,
            signer=ed25519.Ed25519PrivateKey.generate() if other_signer else None,
        )
        if mutate_block is None:
            return document
        doc = json.loads(document)
        mutate_block(doc["evidence"])
        return json.dumps(doc).encode()

    return build


@pytest.mark.parametrize(
    ("name", "build", "error", "reason"),
    [
        (
            "room attested another audit spec",
            _reissue_with(lambda c: c["instance"].update(audit_spec_digest="sha256:" + "1" * 64)),
            LogIntegrityError,
            "audit_spec_digest",
        ),
        (
            "room attested no audit spec",
            _reissue_with(lambda c: c["instance"].pop("audit_spec_digest")),
            LogIntegrityError,
            "audit_spec_digest",
        ),
        (
            "room serves another model",
            _reissue_with(lambda c: c["instance"].update(model_digest="sha256:" + "2" * 64)),
            LogIntegrityError,
            "model_digest",
        ),
        (
            "evidence made for another certificate",
            _reissue_with(other_nonce=True),
            LogIntegrityError,
            "nonce",
        ),
        (
            "signed by a key the room did not attest",
            _reissue_with(other_signer=True),
            LogIntegrityError,
            "different key",
        ),
        (
            "configuration edited after attesting",
            _reissue_with(mutate_block=lambda b: b["config"]["instance"].update(id="other")),
            PolicyViolation,
            "breaks the attestation policy",
        ),
        (
            "attested signing key swapped after attesting",
            _reissue_with(mutate_block=lambda b: b["config"]["keys"].update(signing="x")),
            PolicyViolation,
            "breaks the attestation policy",
        ),
        (
            "malformed attestation document",
            _reissue_with(mutate_block=lambda b: b.pop("nonce")),
            EvidenceFormatError,
            "malformed",
        ),
    ],
)
def test_evidence_binding_refusals(
    room: tuple[Tee, Path],
    policy: AttestationPolicy,
    audited: tuple[AuditSpec, dict[str, Any]],
    name: str,
    build: Callable[[Tee, dict[str, Any], dict[str, Any]], bytes],
    error: type[Exception],
    reason: str,
) -> None:
    tee, _ = room
    spec, payload = audited
    config = _config(tee, spec_digest=spec.digest, model_digest=payload["model_digest"])
    with pytest.raises(error, match=reason):
        verify_certificate_with_evidence(build(tee, payload, config), policy)


@pytest.mark.parametrize(
    ("name", "make_policy"),
    [
        (
            "simulation not allowed",
            lambda root: AttestationPolicy(measurements=[package_measurement().hex()]),
        ),
        (
            "other measurement",
            lambda root: AttestationPolicy(
                measurements=["00" * 48], allow_simulated=True, simulated_root=root
            ),
        ),
    ],
)
def test_attestation_policy_refusals(
    room: tuple[Tee, Path],
    audited: tuple[AuditSpec, dict[str, Any]],
    name: str,
    make_policy: Callable[[Path], AttestationPolicy],
) -> None:
    tee, data_dir = room
    spec, payload = audited
    config = _config(tee, spec_digest=spec.digest, model_digest=payload["model_digest"])
    with pytest.raises(AttestationError):
        verify_certificate_with_evidence(
            _issue(tee, payload, config), make_policy(data_dir / "simulated-root.pem")
        )


def test_cli_verifies_against_the_evidence(
    room: tuple[Tee, Path],
    audited: tuple[AuditSpec, dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tee, data_dir = room
    spec, payload = audited
    config = _config(tee, spec_digest=spec.digest, model_digest=payload["model_digest"])
    cert = tmp_path / "certificate.json"
    cert.write_bytes(_issue(tee, payload, config))
    policy_file = tmp_path / "attestation-policy.json"
    policy_file.write_text(
        json.dumps(
            {
                "sev-snp": {"measurements": [package_measurement().hex()]},
                "allow_simulated": True,
                "simulated_root": str(data_dir / "simulated-root.pem"),
            }
        ),
        encoding="utf-8",
    )
    parser = argparse.ArgumentParser(prog="cleanroom")
    audit_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["audit", "verify", str(cert), "--attestation-policy", str(policy_file)]
    )
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "signature OK (Ed25519" in out
    assert "Verdict: VIOLATION" in out


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        ("another instance's certificate", {"id": "inst-2"}, "id"),
        ("a certificate of an older model", {"model_digest": "sha256:" + "1" * 64}, "model_digest"),
        (
            "under another audit spec",
            {"audit_spec_digest": "sha256:" + "2" * 64},
            "audit_spec_digest",
        ),
    ],
)
def test_a_genuine_certificate_of_something_else_is_refused(
    room: tuple[Tee, Path],
    policy: AttestationPolicy,
    audited: tuple[AuditSpec, dict[str, Any]],
    name: str,
    change: dict[str, str],
    field: str,
) -> None:
    # The certificate verifies on its own; it is not of the instance the caller attested.
    tee, _ = room
    spec, payload = audited
    config = _config(tee, spec_digest=spec.digest, model_digest=payload["model_digest"])
    document = _issue(tee, payload, config)
    attested = {**config["instance"], **change}
    verify_certificate_with_evidence(document, policy, instance=config["instance"])
    with pytest.raises(LogIntegrityError, match=f"instance.{field}: the certificate is for"):
        verify_certificate_with_evidence(document, policy, instance=attested)
