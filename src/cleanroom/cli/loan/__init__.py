"""The cash-flow lending scenario: a lender's credit model scores a bank's customer.

The lender trains a model on its own past borrowers' statements and uploads it
sealed; the bank computes features from a consenting borrower's statement and
sends them sealed, with the consent artefact a consent manager signed. The
instance policy (``policy.rego``) admits only the bank's users, only under a
valid consent, a bounded number of times, and lets out only a coarsened score
and a decision. ``cleanroom demo loan`` runs it; ``examples/loan_processing``
tells the story.
"""

from __future__ import annotations

from cleanroom.cli.loan.consent import UNDERWRITING_PURPOSE, ConsentManager, ConsentTerms
from cleanroom.cli.loan.features import FEATURES, cash_flow_features, feature_matrix
from cleanroom.cli.loan.model import CreditModel, auc, train_credit_model
from cleanroom.cli.loan.parties import (
    BANK_ANALYST,
    BANK_FIP_ID,
    BANK_UNDERWRITER,
    CONSENT_MANAGER_ID,
    LENDER,
    LENDER_FIU_ID,
    Application,
    TrainedModel,
    consent_terms,
    train_lender_model,
)
from cleanroom.cli.loan.policy import policy_template, render_policy
from cleanroom.cli.loan.statements import Borrower, fi_data_range, generate_borrowers

__all__ = [
    "BANK_ANALYST",
    "BANK_FIP_ID",
    "BANK_UNDERWRITER",
    "CONSENT_MANAGER_ID",
    "FEATURES",
    "LENDER",
    "LENDER_FIU_ID",
    "UNDERWRITING_PURPOSE",
    "Application",
    "Borrower",
    "ConsentManager",
    "ConsentTerms",
    "CreditModel",
    "TrainedModel",
    "auc",
    "cash_flow_features",
    "consent_terms",
    "feature_matrix",
    "fi_data_range",
    "generate_borrowers",
    "policy_template",
    "render_policy",
    "train_credit_model",
    "train_lender_model",
]
