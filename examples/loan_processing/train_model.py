"""Train the lender's credit model on a generated history and export it to ONNX.

    python examples/loan_processing/train_model.py --data loan-data --out credit.onnx

Computes the cash-flow features of every statement, fits a logistic
regression (Newton's method, numpy only) on three quarters of the borrowers,
reports the AUC on the held-out quarter, and writes the ONNX graph
(``features[N,8] float32 -> score[N,1] float32, decision[N,1] int64``).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from cleanroom.cli.loan import FEATURES, auc, feature_matrix, train_credit_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("loan-data"), help="generated history")
    parser.add_argument("--out", type=Path, default=Path("credit.onnx"), help="ONNX file to write")
    parser.add_argument("--threshold", type=float, default=0.6, help="approve at or above")
    args = parser.parse_args()

    with open(args.data / "outcomes.csv", encoding="utf-8", newline="") as f:
        defaulted = {row["customer_id"]: row["defaulted"] == "1" for row in csv.DictReader(f)}
    with open(args.data / "statements.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    x = feature_matrix([r["fi"] for r in records])
    repaid = np.array([not defaulted[r["customer_id"]] for r in records])

    cut = (3 * len(records)) // 4
    model = train_credit_model(x[:cut], repaid[:cut], threshold=args.threshold)
    print(f"trained on {cut} borrowers; hold-out AUC {auc(model.score(x[cut:]), repaid[cut:]):.3f}")
    for name, weight in zip(FEATURES, model.weights, strict=True):
        print(f"  {name:<20} {weight:+.3f} per standard deviation")
    args.out.write_bytes(model.to_onnx())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
