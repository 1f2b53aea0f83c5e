"""The consent manager: make its key, render the policy that pins it, sign consents.

    python examples/loan_processing/issue_consent.py keygen --key cm-key.pem
    python examples/loan_processing/issue_consent.py policy --key cm-key.pem > loan-policy.rego
    python examples/loan_processing/issue_consent.py issue --key cm-key.pem \\
        --data loan-data --customer borrower0007@aa.example > consent.jws

``keygen`` writes an ES256 (P-256) private key readable by its owner only.
``policy`` prints policy.rego with the consent manager's public key pinned:
the lender creates the instance with it, and the bank recomputes the same
text to compare its digest with the attested one. ``issue`` prints a signed
consent artefact (compact JWS) for one customer's statement.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from cleanroom.cli.loan import (
    CONSENT_MANAGER_ID,
    UNDERWRITING_PURPOSE,
    Borrower,
    ConsentManager,
    consent_terms,
    render_policy,
)


def _manager(path: Path) -> ConsentManager:
    return ConsentManager.from_pem(CONSENT_MANAGER_ID, path.read_bytes())


def keygen(args: argparse.Namespace) -> None:
    manager = ConsentManager.generate(CONSENT_MANAGER_ID)
    try:
        fd = os.open(args.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        sys.exit(f"{args.key} exists; a consent manager keeps its key (remove it to start over)")
    with os.fdopen(fd, "wb") as f:
        f.write(manager.private_key_pem())
    print(manager.public_key_pem, end="")


def policy(args: argparse.Namespace) -> None:
    print(render_policy(_manager(args.key).public_key_pem), end="")


def issue(args: argparse.Namespace) -> None:
    with open(args.data / "statements.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    found = [r for r in records if r["customer_id"] == args.customer]
    if not found:
        sys.exit(f"no statement for {args.customer} in {args.data}")
    borrower = Borrower(customer_id=args.customer, fi=found[0]["fi"], defaulted=False)
    now = int(time.time())
    purpose = dict(UNDERWRITING_PURPOSE, code=args.purpose)
    terms = replace(consent_terms(borrower, now=now, valid_for=args.valid_for), purpose=purpose)
    print(_manager(args.key).issue(terms, issued_at=now))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("keygen", help="make the consent manager's signing key")
    p.add_argument("--key", type=Path, required=True)
    p.set_defaults(run=keygen)
    p = commands.add_parser("policy", help="print the policy with the public key pinned")
    p.add_argument("--key", type=Path, required=True)
    p.set_defaults(run=policy)
    p = commands.add_parser("issue", help="print a signed consent for one customer")
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--data", type=Path, default=Path("loan-data"))
    p.add_argument("--customer", required=True)
    p.add_argument("--purpose", default="105", help="ReBIT purpose code (policy wants 105)")
    p.add_argument("--valid-for", type=int, default=3600, help="seconds (default 3600)")
    p.set_defaults(run=issue)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
