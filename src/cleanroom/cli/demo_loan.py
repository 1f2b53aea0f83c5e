"""``cleanroom demo loan``: the cash-flow lending scenario against a local clean room."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

__all__ = ["run_loan"]


def _say(party: str, text: str) -> None:
    print(f"[{party:<6}] {text}")


def run_loan(args: argparse.Namespace) -> int:
    from cleanroom import AttestationPolicy
    from cleanroom.attestation.measurement import package_measurement
    from cleanroom.cli.loan.scenario import run_scenario
    from cleanroom.server.runner import ServerThread
    from cleanroom.server.settings import ServerSettings
    from cleanroom.server.tee import SIMULATION_WARNING

    keep: Path | None = getattr(args, "keep", None)
    with tempfile.TemporaryDirectory(prefix="cleanroom-loan-") as tmp:
        data_dir = keep or Path(tmp)
        print(f"WARNING: {SIMULATION_WARNING}\n")
        with ServerThread(ServerSettings(data_dir=data_dir)) as server:
            _say("serve", f"clean room listening on {server.url} (data in {data_dir})")
            attestation = AttestationPolicy(
                measurements=[package_measurement().hex()],
                allow_simulated=True,
                simulated_root=data_dir / "simulated-root.pem",
            )
            run_scenario(
                server.url,
                attestation,
                passwords=lambda email: f"a long passphrase for {email}",
                say=_say,
            )
        _say("serve", "stopped")
    return 0
