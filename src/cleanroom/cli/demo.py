"""``cleanroom demo``: the whole Alice/Bob workflow against a local clean room."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="start a local clean room, run the model-owner/data-owner workflow, stop",
        description="Starts a clean room on a loopback port with a temporary data directory "
        "and the SIMULATED TEE, then runs the workflow end to end: Alice (model owner) "
        "creates an instance naming Bob, verifies the attestation, uploads a sealed model; "
        "Bob verifies the attestation and gets sealed predictions.",
    )
    parser.add_argument(
        "scenario",
        nargs="?",
        choices=("inference", "loan"),
        default="inference",
        help="inference (default): the basic two-party workflow; loan: the consented "
        "cash-flow lending scenario (docs/loan-scenario.md)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="use (and keep) this data directory"
    )
    parser.set_defaults(handler=run)


def _say(party: str, text: str) -> None:
    print(f"[{party:<5}] {text}")


def run(args: argparse.Namespace) -> int:
    if args.scenario == "loan":
        from cleanroom.cli.demo_loan import run_loan

        return run_loan(args)
    return run_inference(args)


def run_inference(args: argparse.Namespace) -> int:
    from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
    from cleanroom.attestation.measurement import package_measurement
    from cleanroom.cli.demo_model import FEATURES, loan_scoring_model
    from cleanroom.server.runner import ServerThread
    from cleanroom.server.settings import ServerSettings
    from cleanroom.server.tee import SIMULATION_WARNING

    with tempfile.TemporaryDirectory(prefix="cleanroom-demo-") as tmp:
        data_dir = args.keep or Path(tmp)
        print(f"WARNING: {SIMULATION_WARNING}\n")
        with ServerThread(ServerSettings(data_dir=data_dir)) as server:
            _say("serve", f"clean room listening on {server.url} (data in {data_dir})")
            measurement = package_measurement().hex()
            _say("both", f"expected measurement (cleanroom measurement): {measurement[:32]}…")
            policy = AttestationPolicy(
                measurements=[measurement],
                allow_simulated=True,
                simulated_root=data_dir / "simulated-root.pem",
            )

            alice = Client(server.url)
            alice.sign_up("alice@lender.example", "a long passphrase for alice")
            alice.sign_in("alice@lender.example", "a long passphrase for alice")
            bob = Client(server.url)
            bob.sign_up("bob@bank.example", "a long passphrase for bob")
            bob.sign_in("bob@bank.example", "a long passphrase for bob")

            inst = alice.create_instance("LoanScoring", ModelFormat.ONNX, ["bob@bank.example"])
            _say("alice", f"created instance {inst.id} naming bob@bank.example")
            evidence = inst.validate_attestation(policy)
            _say(
                "alice",
                f"attestation verified: platform={evidence.platform} "
                f"simulated={evidence.simulated} measurement={evidence.measurement.hex()[:16]}…",
            )
            inst.set_secret(Secret())
            model = loan_scoring_model()
            inst.upload_model(model)
            _say("alice", f"uploaded the model sealed to the attested key ({len(model)} bytes)")
            _say("alice", f"instance id handed to Bob: {inst.id}")

            b = bob.get_instance(inst.id)
            b.validate_attestation(policy)
            _say("bob", "attestation verified; the key I seal to lives in the attested clean room")
            b.set_secret(Secret())
            features = np.array([[5.2, 3.1, 2.4, 0.0], [2.0, 2.9, 0.3, 3.0]], dtype=np.float32)
            outputs = b.predict({"features": features})
            for row, score, approved in zip(
                features, outputs["score"][:, 0], outputs["approved"][:, 0], strict=True
            ):
                shown = ", ".join(f"{n}={v:g}" for n, v in zip(FEATURES, row, strict=True))
                _say("bob", f"{shown} -> score={score:.3f} approved={bool(approved)}")
            _say("alice", "saw: instance metadata and ciphertext sizes only — never Bob's data")
            _say("bob", "saw: his inputs and the predictions — never Alice's model")
            alice.close()
            bob.close()
        _say("serve", "stopped")
    return 0
