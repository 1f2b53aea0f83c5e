"""The public surface of ``cleanroom.audit`` is exactly the intended names."""

from __future__ import annotations

import cleanroom.audit as audit

EXPECTED = {
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
}


def test_exported_names() -> None:
    assert set(audit.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(audit, name) is not None


def test_estimates_are_never_exported_as_bounds() -> None:
    bound_types = {audit.EpsilonLowerBound, audit.GaussianDPBound, audit.OneRunBound}
    for cls in bound_types:
        assert cls.kind == "lower-bound"
    assert audit.EpsilonEstimate.kind == "bayesian-estimate"
    assert not issubclass(audit.EpsilonEstimate, tuple(bound_types))
    assert audit.MembershipMetrics.kind == "empirical"
