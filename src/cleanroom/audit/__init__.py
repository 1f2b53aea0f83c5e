"""Privacy audits: ε lower bounds, membership and attribute inference, certificates.

Statistics (all bounds hold at the stated confidence; estimates are labelled
as estimates and are never bounds):

* :func:`epsilon_lower_bound` — Clopper-Pearson ε_LB from fixed decisions,
  with its ``ceiling`` and the Bayesian ``estimate``;
* :func:`epsilon_lower_bound_from_scores` — the same when the threshold is
  searched, with the search paid for (split or Bonferroni);
* :func:`gdp_mu_lower_bound` — μ-GDP lower bound; :func:`gdp_epsilon`;
* :func:`one_run_epsilon_lower_bound` — one-training-run canary audits;
* :func:`membership_metrics` — AUC, advantage, TPR at low FPR.

Audits: :func:`run_membership_audit` (spec-driven, aggregates only) and
:func:`check_dp_claim` / :func:`check_gdp_claim`. Certificates: :func:`certificate_payload`,
:func:`sign_certificate`, :func:`verify_certificate`,
:func:`verify_certificate_with_evidence`, :func:`certificate_nonce`,
:func:`require_current_certificate`.
"""

from cleanroom.audit.attested import certificate_nonce, verify_certificate_with_evidence
from cleanroom.audit.certificate import (
    CERTIFICATE_FORMAT,
    Certificate,
    certificate_payload,
    key_id,
    require_current_certificate,
    sign_certificate,
    verify_certificate,
)
from cleanroom.audit.conformance import (
    ConformanceResult,
    GaussianConformanceResult,
    check_dp_claim,
    check_gdp_claim,
)
from cleanroom.audit.data import LabelledRecords, load_records
from cleanroom.audit.epsilon import (
    ConfusionCounts,
    EpsilonEstimate,
    EpsilonLowerBound,
    epsilon_ceiling,
    epsilon_lower_bound,
    epsilon_lower_bound_from_counts,
)
from cleanroom.audit.gaussian import (
    GaussianDPBound,
    gdp_epsilon,
    gdp_mu_lower_bound,
    gdp_mu_lower_bound_from_counts,
)
from cleanroom.audit.membership import AttackResult, AuditResult, run_membership_audit
from cleanroom.audit.metrics import MembershipMetrics, TprAtFpr, membership_metrics
from cleanroom.audit.model_queries import PredictFn
from cleanroom.audit.one_run import OneRunBound, one_run_epsilon_lower_bound, one_run_guesses
from cleanroom.audit.spec import AuditSpec
from cleanroom.audit.split import split_pool
from cleanroom.audit.thresholds import (
    BonferroniThresholds,
    FixedThreshold,
    SplitThreshold,
    epsilon_lower_bound_from_scores,
)

__all__ = [
    "CERTIFICATE_FORMAT",
    "AttackResult",
    "AuditResult",
    "AuditSpec",
    "BonferroniThresholds",
    "Certificate",
    "ConfusionCounts",
    "ConformanceResult",
    "EpsilonEstimate",
    "EpsilonLowerBound",
    "FixedThreshold",
    "GaussianConformanceResult",
    "GaussianDPBound",
    "LabelledRecords",
    "MembershipMetrics",
    "OneRunBound",
    "PredictFn",
    "SplitThreshold",
    "TprAtFpr",
    "certificate_nonce",
    "certificate_payload",
    "check_dp_claim",
    "check_gdp_claim",
    "epsilon_ceiling",
    "epsilon_lower_bound",
    "epsilon_lower_bound_from_counts",
    "epsilon_lower_bound_from_scores",
    "gdp_epsilon",
    "gdp_mu_lower_bound",
    "gdp_mu_lower_bound_from_counts",
    "key_id",
    "load_records",
    "membership_metrics",
    "one_run_epsilon_lower_bound",
    "one_run_guesses",
    "require_current_certificate",
    "run_membership_audit",
    "sign_certificate",
    "split_pool",
    "verify_certificate",
    "verify_certificate_with_evidence",
]
