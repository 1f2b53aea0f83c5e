"""``cleanroom audit``: run privacy audits locally and verify audit certificates.

::

    cleanroom audit commit RECORDS            print a record set's commitment (for the spec)
    cleanroom audit split POOL --members M --nonmembers N
                                              split a pool at random: train on M; prints
                                              the spec's datasets (cleanroom.audit.split)
    cleanroom audit digest SPEC               print an audit spec's digest
    cleanroom audit run --spec SPEC --model MODEL.onnx --members M --nonmembers N
                        [--reference-trainer logistic-regression]
                        [--sign-key KEY.pem --out CERT.json] [--json]
    cleanroom audit verify CERT (--key PUBLIC.pem | --attestation-policy POLICY.json)
                        [--spec SPEC] [--model MODEL.onnx]

``verify --attestation-policy`` checks the certificate against the attestation
evidence it carries (``cleanroom.audit.attested``); ``--key`` against a key
the verifier already trusts.

Record files are .npz or .csv (layouts in ``cleanroom.audit.data``).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from cleanroom.attestation import AttestationPolicy
from cleanroom.audit.attested import verify_certificate_with_evidence
from cleanroom.audit.certificate import (
    SigningKey,
    VerifyingKey,
    certificate_payload,
    sign_certificate,
    verify_certificate,
)
from cleanroom.audit.data import LabelledRecords, load_records
from cleanroom.audit.local import load_onnx_model, model_digest
from cleanroom.audit.membership import ReferenceTrainer, run_membership_audit
from cleanroom.audit.reference import logistic_regression_trainer
from cleanroom.audit.report import format_report
from cleanroom.audit.spec import AuditSpec
from cleanroom.audit.split import split_pool
from cleanroom.errors import ConfigurationError, LogIntegrityError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = subparsers.add_parser("audit", help="privacy audits: run locally, verify certificates")
    commands = audit.add_subparsers(dest="audit_command", required=True)

    commit = commands.add_parser("commit", help="print the commitment of a record set")
    commit.add_argument("records", type=Path, help=".npz or .csv record set")
    commit.set_defaults(handler=_commit)

    split = commands.add_parser(
        "split",
        help="split a pool at random into the members to train on and the non-members; "
        "print the spec's datasets",
    )
    split.add_argument("pool", type=Path, help=".npz or .csv record pool")
    split.add_argument("--members", type=Path, required=True, help="where to write members (.npz)")
    split.add_argument(
        "--nonmembers", type=Path, required=True, help="where to write non-members (.npz)"
    )
    split.set_defaults(handler=_split)

    digest = commands.add_parser("digest", help="print the digest of an audit spec")
    digest.add_argument("spec", type=Path)
    digest.set_defaults(handler=_digest)

    run = commands.add_parser("run", help="run an audit on a local ONNX model")
    run.add_argument("--spec", type=Path, required=True, help="audit spec (JSON)")
    run.add_argument("--model", type=Path, required=True, help="ONNX model file")
    run.add_argument("--members", type=Path, required=True, help="member records")
    run.add_argument("--nonmembers", type=Path, required=True, help="non-member records")
    run.add_argument(
        "--reference-trainer",
        choices=["logistic-regression"],
        default=None,
        help="trainer for the reference-model attack (needs scikit-learn)",
    )
    run.add_argument("--sign-key", type=Path, help="PEM private key (Ed25519 or P-384)")
    run.add_argument("--out", type=Path, help="where to write the signed certificate")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.set_defaults(handler=_run)

    verify = commands.add_parser("verify", help="verify an audit certificate offline")
    verify.add_argument("certificate", type=Path)
    trust = verify.add_mutually_exclusive_group()
    trust.add_argument("--key", type=Path, help="trusted PEM public key of the signer")
    trust.add_argument(
        "--attestation-policy",
        type=Path,
        help="verify the evidence the certificate carries against this attestation policy",
    )
    verify.add_argument("--spec", type=Path, help="also require this audit spec's digest")
    verify.add_argument("--model", type=Path, help="also require this model file's digest")
    verify.set_defaults(handler=_verify)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None


def _commit(args: argparse.Namespace) -> int:
    print(load_records(args.records).commitment())
    return 0


def _split(args: argparse.Namespace) -> int:
    pool = load_records(args.pool)
    members, nonmembers = split_pool(pool)
    for path, records in ((args.members, members), (args.nonmembers, nonmembers)):
        _write_npz(path, records)
    datasets = {
        "members": members.commitment(),
        "nonmembers": nonmembers.commitment(),
        "pool": pool.commitment(),
    }
    print(json.dumps({"datasets": datasets}, indent=2))
    return 0


def _write_npz(path: Path, records: LabelledRecords) -> None:
    if path.exists():
        raise ConfigurationError(f"{path} exists; the split writes new files only")
    try:
        with path.open("xb") as file:
            np.savez(file, features=records.features, labels=records.labels)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror}") from None


def _digest(args: argparse.Namespace) -> int:
    print(AuditSpec.from_bytes(_read(args.spec)).digest)
    return 0


def _private_key(path: Path) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{path} is not an unencrypted PEM private key") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return key
    raise ConfigurationError("the signing key must be Ed25519 or ECDSA P-384")


def _public_key(path: Path) -> VerifyingKey:
    try:
        key = serialization.load_pem_public_key(_read(path))
    except (ValueError, TypeError):
        raise ConfigurationError(f"{path} is not a PEM public key") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):
        return key
    raise ConfigurationError("the verifying key must be Ed25519 or ECDSA P-384")


def _run(args: argparse.Namespace) -> int:
    if (args.sign_key is None) != (args.out is None):
        raise ConfigurationError("--sign-key and --out go together")
    signing_key = _private_key(args.sign_key) if args.sign_key is not None else None
    spec = AuditSpec.from_bytes(_read(args.spec))
    members = load_records(args.members)
    nonmembers = load_records(args.nonmembers)
    predict, digest = load_onnx_model(args.model)
    trainer: ReferenceTrainer | None = None
    if args.reference_trainer == "logistic-regression":
        classes = int(max(members.labels.max(), nonmembers.labels.max())) + 1
        trainer = logistic_regression_trainer(spec.model, classes)
    result = run_membership_audit(spec, predict, members, nonmembers, reference_trainer=trainer)
    body = certificate_payload(result, model_digest=digest, issued_at=datetime.now(UTC))
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        sys.stdout.write(format_report(body))
    if signing_key is not None:
        document = sign_certificate(body, signing_key)
        try:
            args.out.write_bytes(document)
        except OSError as exc:
            raise ConfigurationError(f"cannot write {args.out}: {exc.strerror}") from None
        print(f"signed certificate written to {args.out}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    document = _read(args.certificate)
    if args.attestation_policy is not None:
        policy = AttestationPolicy.from_file(args.attestation_policy)
        certificate = verify_certificate_with_evidence(document, policy)
    elif args.key is not None:
        certificate = verify_certificate(document, public_key=_public_key(args.key))
    else:
        raise ConfigurationError(
            "nothing to trust: give --attestation-policy (to verify the evidence the "
            "certificate carries) or --key (the clean room's attested signing key)"
        )
    failures = []
    if args.spec is not None:
        expected = AuditSpec.from_bytes(_read(args.spec)).digest
        if certificate.spec_digest != expected:
            failures.append("the certificate is for a different audit spec")
    if args.model is not None and certificate.model_digest != model_digest(_read(args.model)):
        failures.append("the certificate is for a different model")
    if failures:
        raise LogIntegrityError("; ".join(failures), failures=failures)
    sys.stdout.write(format_report(certificate.payload))
    print(f"signature OK ({certificate.algorithm}, key {certificate.key_id})")
    return 0
