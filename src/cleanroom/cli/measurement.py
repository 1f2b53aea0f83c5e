"""``cleanroom measurement``: the measurement the simulated TEE reports for this code."""

from __future__ import annotations

import argparse

from cleanroom.attestation.measurement import package_measurement


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "measurement",
        help="print the expected measurement of the installed code (hex)",
        description="Print the SHA-384 measurement of the installed cleanroom package, as the "
        "simulated TEE reports it in MEASUREMENT. Put it in an attestation policy.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print(package_measurement().hex())
    return 0
