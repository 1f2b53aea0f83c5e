"""Synthetic deposit-account statements shaped like Account Aggregator FI data.

The documents follow the ReBIT Financial Information schema for the
``DEPOSIT`` FI type (``Account`` with ``Profile``, ``Summary`` and
``Transactions``; each ``Transaction`` with ``type`` CREDIT/DEBIT, ``mode``,
``amount``, ``currentBalance``, ``transactionTimestamp``, ``valueDate``,
``txnId``, ``narration``, ``reference``). Amounts are decimal strings in INR,
timestamps RFC 3339 in IST, as Financial Information Providers send them.

Everything is synthetic: names, account numbers and amounts come from a
seeded generator. Each borrower has hidden traits (income, its regularity,
spending, an instalment); whether the borrower later defaulted is drawn from
those traits, never from the statement, so a model trained on features of the
statement has something real to learn and cannot simply read the label.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "BOUNCE_NARRATION",
    "IST",
    "Borrower",
    "generate_borrowers",
    "month_starts",
]

IST = timezone(timedelta(hours=5, minutes=30), "IST")
#: Narration of the charge a bank debits when an instalment mandate bounces
#: for want of funds (NACH return); the only trace a failed debit leaves in
#: a statement, so the features count it.
BOUNCE_NARRATION = "NACH RTN CHG INSUFFICIENT FUNDS"
_BOUNCE_CHARGE = 590.0
_MERCHANTS = ("GROCERY", "PHARMACY", "FUEL", "RESTAURANT", "ONLINE RETAIL", "TELECOM", "TRANSIT")


@dataclass(frozen=True)
class Borrower:
    """One synthetic borrower: the FI document a bank would hold, and the outcome."""

    customer_id: str
    fi: dict[str, Any]
    """The ``DEPOSIT`` FI document (``{"Account": {...}}``)."""
    defaulted: bool
    """Whether the loan later went unpaid: the label, known to the lender's history only."""


def month_starts(first: date, months: int) -> list[date]:
    """The first day of *months* consecutive calendar months starting at *first*'s month."""
    out: list[date] = []
    year, month = first.year, first.month
    for _ in range(months):
        out.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _timestamp(day: date, rng: random.Random) -> datetime:
    seconds = rng.randrange(8 * 3600, 22 * 3600)
    return datetime(day.year, day.month, day.day, tzinfo=IST) + timedelta(seconds=seconds)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


class _Ledger:
    """Appends transactions in time order and keeps the running balance."""

    def __init__(self, account_ref: str, opening: float) -> None:
        self.balance = round(opening, 2)
        self.rows: list[dict[str, Any]] = []
        self._ref = account_ref

    def post(self, kind: str, mode: str, amount: float, when: datetime, narration: str) -> None:
        amount = round(amount, 2)
        self.balance = round(self.balance + (amount if kind == "CREDIT" else -amount), 2)
        serial = len(self.rows) + 1
        self.rows.append(
            {
                "txnId": f"{self._ref}-{serial:05d}",
                "type": kind,
                "mode": mode,
                "amount": f"{amount:.2f}",
                "currentBalance": f"{self.balance:.2f}",
                "transactionTimestamp": _rfc3339(when),
                "valueDate": when.date().isoformat(),
                "narration": narration,
                "reference": f"REF{serial:07d}",
            }
        )


def _shares(rng: random.Random, parts: int) -> list[float]:
    """*parts* positive shares summing to one (a flat Dirichlet draw)."""
    draws = [rng.expovariate(1.0) for _ in range(parts)]
    total = sum(draws)
    return [d / total for d in draws]


def _month_events(
    traits: dict[str, float], month: date, rng: random.Random
) -> Iterator[tuple[datetime, str, str, float, str]]:
    """(when, type, mode, amount, narration) of one month, before balance checks."""
    days = (month_starts(month, 2)[1] - month).days
    income = traits["income"] * (1.0 + rng.gauss(0.0, 0.6 * (1.0 - traits["regularity"])))
    income = max(income, 0.1 * traits["income"])
    if traits["regularity"] > 0.6:  # salaried: one transfer at the start of the month
        yield (_timestamp(month, rng), "CREDIT", "FT", income, "NEFT SALARY")
    else:  # self-employed: several payments received over the month
        for share in _shares(rng, rng.randrange(3, 8)):
            day = month + timedelta(days=rng.randrange(days))
            yield (_timestamp(day, rng), "CREDIT", "UPI", income * share, "UPI RECEIVED")
    spend = income * traits["spending"] * rng.lognormvariate(0.0, 0.15)
    rent = 0.3 * spend
    yield (_timestamp(month + timedelta(days=2), rng), "DEBIT", "FT", rent, "IMPS RENT")
    for share in _shares(rng, rng.randrange(6, 14)):
        day = month + timedelta(days=rng.randrange(days))
        mode = rng.choices(("UPI", "CARD", "ATM"), weights=(0.6, 0.25, 0.15))[0]
        narration = "ATM WDL" if mode == "ATM" else f"{mode} {rng.choice(_MERCHANTS)}"
        yield (_timestamp(day, rng), "DEBIT", mode, 0.7 * spend * share, narration)


def _borrower(index: int, first: date, months: int, rng: random.Random) -> Borrower:
    traits = {
        "income": rng.lognormvariate(math.log(45_000.0), 0.5),
        "regularity": rng.betavariate(2.0, 1.5),
        "spending": rng.uniform(0.55, 1.15),
        "instalment": rng.uniform(0.05, 0.35),
    }
    account_ref = f"XXXXXXXX{1000 + index:04d}"
    ledger = _Ledger(account_ref, rng.lognormvariate(math.log(20_000.0), 0.8))
    emi = traits["instalment"] * traits["income"]
    bounces = 0
    starts = month_starts(first, months)
    for month in starts:
        events = sorted(_month_events(traits, month, rng), key=lambda e: e[0])
        emi_at = datetime(month.year, month.month, 5, 10, 0, tzinfo=IST)
        emi_done = False
        for when, kind, mode, amount, narration in events:
            if not emi_done and when >= emi_at:
                emi_done = True
                bounces += _instalment(ledger, emi, emi_at)
            if kind == "DEBIT" and amount > ledger.balance:
                continue  # declined at the point of sale: leaves no trace in the statement
            ledger.post(kind, mode, amount, when, narration)
        if not emi_done:
            bounces += _instalment(ledger, emi, emi_at)
    # The outcome depends on the hidden traits and on how often the borrower
    # was already short of funds; coefficients chosen to give a default rate
    # of roughly one in four.
    risk = (
        -1.6
        + 3.5 * (traits["spending"] - 0.85)
        + 5.0 * (traits["instalment"] - 0.2)
        - 1.5 * (traits["regularity"] - 0.55)
        - 0.8 * math.log(traits["income"] / 45_000.0)
        + 0.5 * bounces
    )
    defaulted = bool(rng.random() < 1.0 / (1.0 + math.exp(-risk)))
    end = month_starts(starts[-1], 2)[1] - timedelta(days=1)
    fi = _fi_document(index, account_ref, ledger, starts[0], end)
    return Borrower(customer_id=f"borrower{index:04d}@aa.example", fi=fi, defaulted=defaulted)


def _instalment(ledger: _Ledger, emi: float, when: datetime) -> int:
    """Debit the monthly instalment, or the bounce charge when funds fall short."""
    if ledger.balance >= emi:
        ledger.post("DEBIT", "OTHERS", emi, when, "NACH DR LOAN EMI")
        return 0
    ledger.post("DEBIT", "OTHERS", _BOUNCE_CHARGE, when, BOUNCE_NARRATION)
    return 1


def _fi_document(
    index: int, account_ref: str, ledger: _Ledger, start: date, end: date
) -> dict[str, Any]:
    closing = datetime(end.year, end.month, end.day, 23, 59, 59, tzinfo=IST)
    return {
        "Account": {
            "type": "deposit",
            "maskedAccNumber": account_ref,
            "version": "1.1",
            "linkedAccRef": f"linked-{index:06d}",
            "Profile": {
                "Holders": {
                    "type": "SINGLE",
                    "Holder": {"name": f"Borrower {index:04d}", "ckycCompliance": True},
                }
            },
            "Summary": {
                "currentBalance": f"{ledger.balance:.2f}",
                "currency": "INR",
                "balanceDateTime": _rfc3339(closing),
                "type": "SAVINGS",
                "branch": "SYNTHETIC BRANCH",
                "ifscCode": "SYNT0000001",
                "openingDate": "2019-04-01",
                "status": "ACTIVE",
            },
            "Transactions": {
                "startDate": start.isoformat(),
                "endDate": end.isoformat(),
                "Transaction": ledger.rows,
            },
        }
    }


def generate_borrowers(
    count: int, *, seed: int, first_month: date = date(2025, 4, 1), months: int = 6
) -> list[Borrower]:
    """*count* borrowers with *months* months of statements each, reproducible from *seed*."""
    if count < 1 or months < 2:
        raise ValueError("need at least one borrower and two months of statements")
    # Not for secrets: a seeded generator makes the data set reproducible.
    rng = random.Random(seed)  # noqa: S311
    return [_borrower(i, first_month, months, rng) for i in range(count)]


def fi_data_range(fi: dict[str, Any]) -> tuple[str, str]:
    """The period a statement covers, as RFC 3339 instants (start of first day, end of last)."""
    txns = fi["Account"]["Transactions"]
    start = date.fromisoformat(txns["startDate"])
    end = date.fromisoformat(txns["endDate"])
    first = datetime(start.year, start.month, start.day, tzinfo=IST).astimezone(UTC)
    last = datetime(end.year, end.month, end.day, 23, 59, 59, tzinfo=IST).astimezone(UTC)
    return (
        first.isoformat(timespec="seconds").replace("+00:00", "Z"),
        last.isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
