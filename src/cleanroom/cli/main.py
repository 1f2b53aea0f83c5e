"""``cleanroom``: one entry point; each subcommand lives in its own module.

Environment variables are read here only, as defaults of arguments
(``CLEANROOM_DATA_DIR``, ``CLEANROOM_HOST``, ``CLEANROOM_PORT``, ``CLEANROOM_TEE``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cleanroom.errors import Error

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from cleanroom.cli import attestation, audit, demo, log, measurement, serve, user

    parser = argparse.ArgumentParser(
        prog="cleanroom",
        description="Confidential Clean Room: confidential ML inference in a TEE.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (serve, demo, user, measurement, attestation, log, audit):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.handler(args)
    except Error as exc:
        print(f"cleanroom: {exc.diagnostics()}", file=sys.stderr)
        for failure in getattr(exc, "failures", []) or []:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
