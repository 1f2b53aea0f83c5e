"""Run the whole lending scenario against a local clean room (simulated TEE).

    python examples/loan_processing/run.py          # same as: cleanroom demo loan

Starts a clean room on a loopback port with a temporary data directory, then
plays every party: the consent manager, the lender, the bank. The code that
does it is ``cleanroom/cli/loan/scenario.py``; read it next to the README.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cleanroom.cli.demo_loan import run_loan

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="use (and keep) this data dir")
    sys.exit(run_loan(parser.parse_args()))
