"""Cash-flow features of one deposit-account statement (an AA ``DEPOSIT`` FI document).

The bank computes these from its customer's statement, on its own side; only
the feature vector is sealed to the clean room. The lender's model was trained
on the same features of its own past borrowers, so both sides must compute
them identically: this module is that single definition.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from cleanroom.cli.loan.statements import BOUNCE_NARRATION

__all__ = ["FEATURES", "cash_flow_features", "feature_matrix"]

#: Names and order of the features; the model's input is ``features[N, len(FEATURES)]``.
FEATURES = (
    "monthly_inflow_k",  # mean of the monthly sums of CREDIT amounts, thousands of INR
    "monthly_outflow_k",  # mean of the monthly sums of DEBIT amounts, thousands of INR
    "net_flow_ratio",  # (inflows - outflows) / inflows over the whole period
    "average_balance_k",  # mean of the month-end balances, thousands of INR
    "minimum_balance_k",  # lowest balance after any transaction, thousands of INR
    "inflow_volatility",  # coefficient of variation of the monthly inflows
    "bounced_debits",  # count of debits returned for insufficient funds
    "deficit_months",  # share of months whose outflows exceeded their inflows
)


def cash_flow_features(fi: dict[str, Any]) -> npt.NDArray[np.float32]:
    """The :data:`FEATURES` of one FI document, as a float32 vector.

    Raises ``ValueError`` when the document is not a statement with
    transactions (a caller-side data problem, before anything is sent).
    """
    try:
        rows = fi["Account"]["Transactions"]["Transaction"]
    except (KeyError, TypeError):
        raise ValueError("not a DEPOSIT FI document with Transactions") from None
    if not isinstance(rows, list) or not rows:
        raise ValueError("the statement has no transactions")
    inflow: dict[str, float] = defaultdict(float)
    outflow: dict[str, float] = defaultdict(float)
    month_end: dict[str, float] = {}
    lowest = float("inf")
    bounced = 0
    for row in sorted(rows, key=lambda r: datetime.fromisoformat(r["transactionTimestamp"])):
        month = row["valueDate"][:7]
        amount = float(row["amount"])
        balance = float(row["currentBalance"])
        if row["type"] == "CREDIT":
            inflow[month] += amount
        elif row["type"] == "DEBIT":
            outflow[month] += amount
        else:
            raise ValueError(f"unknown transaction type {row['type']!r}")
        if row["narration"] == BOUNCE_NARRATION:
            bounced += 1
        month_end[month] = balance
        lowest = min(lowest, balance)
    months = sorted(month_end)
    ins = np.array([inflow[m] for m in months])
    outs = np.array([outflow[m] for m in months])
    total_in = float(ins.sum())
    vector = [
        float(ins.mean()) / 1000.0,
        float(outs.mean()) / 1000.0,
        (total_in - float(outs.sum())) / total_in if total_in > 0 else -1.0,
        float(np.mean([month_end[m] for m in months])) / 1000.0,
        lowest / 1000.0,
        float(ins.std() / ins.mean()) if ins.mean() > 0 else 0.0,
        float(bounced),
        float(np.mean(outs > ins)),
    ]
    return np.array(vector, dtype=np.float32)


def feature_matrix(documents: list[dict[str, Any]]) -> npt.NDArray[np.float32]:
    """The features of several FI documents, one row each."""
    return np.stack([cash_flow_features(d) for d in documents])
