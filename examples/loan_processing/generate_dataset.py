"""Write a synthetic history of borrowers: their bank statements and whether they repaid.

    python examples/loan_processing/generate_dataset.py --count 600 --out loan-data

writes ``loan-data/statements.jsonl`` (one ``{"customer_id", "fi"}`` per line,
``fi`` an Account Aggregator DEPOSIT FI document) and ``loan-data/outcomes.csv``
(``customer_id,defaulted``). The lender trains on such a history; the bank
holds statements like these for its customers.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from cleanroom.cli.loan import generate_borrowers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600, help="borrowers (default 600)")
    parser.add_argument("--seed", type=int, default=2024, help="generator seed (default 2024)")
    parser.add_argument("--months", type=int, default=6, help="months of statements (default 6)")
    parser.add_argument("--out", type=Path, default=Path("loan-data"), help="output directory")
    args = parser.parse_args()

    borrowers = generate_borrowers(args.count, seed=args.seed, months=args.months)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "statements.jsonl", "w", encoding="utf-8") as f:
        for b in borrowers:
            f.write(json.dumps({"customer_id": b.customer_id, "fi": b.fi}) + "\n")
    with open(args.out / "outcomes.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["customer_id", "defaulted"])
        for b in borrowers:
            writer.writerow([b.customer_id, int(b.defaulted)])
    rate = sum(b.defaulted for b in borrowers) / len(borrowers)
    print(f"wrote {len(borrowers)} statements to {args.out} (default rate {rate:.0%})")


if __name__ == "__main__":
    main()
