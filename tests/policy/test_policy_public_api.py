"""The public surface of cleanroom.policy is exactly the intended names."""

from __future__ import annotations

import cleanroom.policy as policy

EXPECTED = {
    "DEFAULT_POLICY",
    "EXPORT_FORMAT",
    "SMALL_OUTPUT_MAX_ELEMENTS",
    "Checkpoint",
    "Decision",
    "DecisionLog",
    "InstanceInfo",
    "LogEntry",
    "LogVerification",
    "OutputRule",
    "OutputShaping",
    "PolicyBundle",
    "Receipt",
    "TensorMeta",
    "content_digest",
    "egress_input",
    "ingress_input",
    "key_id",
    "load_public_key",
    "policy_digest",
    "verify_checkpoint",
    "verify_log",
    "verify_log_consistency",
    "verify_receipt",
}


def test_exported_names() -> None:
    assert set(policy.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(policy, name) is not None


def test_default_policy_is_rego_text_in_package_cleanroom() -> None:
    assert isinstance(policy.DEFAULT_POLICY, str)
    assert "\npackage cleanroom\n" in policy.DEFAULT_POLICY
