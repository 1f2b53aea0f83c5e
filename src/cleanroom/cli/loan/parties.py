"""Who is who in the lending scenario, and the requests they make.

The identifiers here are the ones the policy names (``policy.rego``): change
one, change the other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from cleanroom.cli.loan.consent import UNDERWRITING_PURPOSE, ConsentManager, ConsentTerms
from cleanroom.cli.loan.features import cash_flow_features, feature_matrix
from cleanroom.cli.loan.model import CreditModel, auc, train_credit_model
from cleanroom.cli.loan.statements import Borrower, fi_data_range, generate_borrowers

__all__ = [
    "BANK_ANALYST",
    "BANK_FIP_ID",
    "BANK_UNDERWRITER",
    "CONSENT_MANAGER_ID",
    "LENDER",
    "LENDER_FIU_ID",
    "Application",
    "TrainedModel",
    "consent_terms",
    "train_lender_model",
]

LENDER = "lender@lender.example"
"""The model owner: creates the instance and uploads the credit model."""
BANK_ANALYST = "analyst@bank.example"
BANK_UNDERWRITER = "underwriter@bank.example"
"""The bank's users named on the instance and in the policy."""
LENDER_FIU_ID = "LENDER-FIU"
BANK_FIP_ID = "SYNTHBANK-FIP"
CONSENT_MANAGER_ID = "consent-manager.aa.example"


@dataclass(frozen=True)
class TrainedModel:
    model: CreditModel
    onnx: bytes
    holdout_auc: float
    training_rows: int
    default_rate: float


def train_lender_model(*, borrowers: int = 600, seed: int = 2024) -> TrainedModel:
    """The lender's model, trained on its own past borrowers (statements and outcomes).

    Three quarters train, one quarter is held out to report the AUC.
    """
    history = generate_borrowers(borrowers, seed=seed)
    x = feature_matrix([b.fi for b in history])
    repaid = np.array([not b.defaulted for b in history])
    cut = (3 * len(history)) // 4
    model = train_credit_model(x[:cut], repaid[:cut])
    return TrainedModel(
        model=model,
        onnx=model.to_onnx(),
        holdout_auc=auc(model.score(x[cut:]), repaid[cut:]),
        training_rows=cut,
        default_rate=float(1.0 - repaid.mean()),
    )


def consent_terms(borrower: Borrower, *, now: int, valid_for: int = 3600) -> ConsentTerms:
    """What a borrower applying to the lender consents to: a one-time look at this statement."""
    fi_from, fi_to = fi_data_range(borrower.fi)
    account = borrower.fi["Account"]
    return ConsentTerms(
        consent_id=f"consent-{account['linkedAccRef']}-{now}",
        customer_id=borrower.customer_id,
        data_consumer_id=LENDER_FIU_ID,
        fip_id=BANK_FIP_ID,
        masked_acc_number=str(account["maskedAccNumber"]),
        link_ref_number=str(account["linkedAccRef"]),
        fi_from=fi_from,
        fi_to=fi_to,
        not_before=now - 60,
        expires=now + valid_for,
        purpose=dict(UNDERWRITING_PURPOSE),
    )


@dataclass(frozen=True)
class Application:
    """One borrower's loan application as the bank sends it: features and context."""

    borrower: Borrower
    consent: str

    @classmethod
    def make(
        cls, borrower: Borrower, manager: ConsentManager, *, now: int, **changes: Any
    ) -> Application:
        """The application with a consent signed by *manager*; *changes* alter the terms."""
        terms = replace(consent_terms(borrower, now=now), **changes)
        return cls(borrower, manager.issue(terms, issued_at=now))

    @property
    def features(self) -> dict[str, npt.NDArray[np.float32]]:
        return {"features": cash_flow_features(self.borrower.fi).reshape(1, -1)}

    @property
    def context(self) -> dict[str, Any]:
        """The sealed request context: the consent and the period the features come from."""
        fi_from, fi_to = fi_data_range(self.borrower.fi)
        return {"consent": self.consent, "FIDataRange": {"from": fi_from, "to": fi_to}}
