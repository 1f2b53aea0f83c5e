"""Policy enforcement and the decision log.

Every request into a clean-room instance and every result out of it is
checked by the instance's Rego policy (:class:`PolicyBundle`), outputs are
shaped as the policy declares (:class:`OutputShaping`), and every decision
is appended to a hash-chained, signed :class:`DecisionLog` whose
:class:`Receipt` objects and exports verify offline
(:func:`verify_receipt`, :func:`verify_log`).

The policy contract and input documents: ``docs/policies.md``. The log,
checkpoint and receipt formats: ``docs/receipts.md``.
"""

from __future__ import annotations

from cleanroom.policy.decision_log import EXPORT_FORMAT, DecisionLog, content_digest
from cleanroom.policy.defaults import DEFAULT_POLICY
from cleanroom.policy.engine import Decision, PolicyBundle, policy_digest
from cleanroom.policy.inputs import (
    SMALL_OUTPUT_MAX_ELEMENTS,
    InstanceInfo,
    TensorMeta,
    egress_input,
    ingress_input,
)
from cleanroom.policy.records import Checkpoint, LogEntry, Receipt
from cleanroom.policy.shaping import OutputRule, OutputShaping
from cleanroom.policy.signing import key_id, load_public_key
from cleanroom.policy.verify import (
    LogVerification,
    verify_checkpoint,
    verify_log,
    verify_log_consistency,
    verify_receipt,
)

__all__ = [
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
]
