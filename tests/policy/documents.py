"""Documents for policy tests: a named user's small prediction, and a log entry's fields."""

from __future__ import annotations

from typing import Any

from cleanroom.policy import InstanceInfo, content_digest, ingress_input

INSTANCE = InstanceInfo(id="inst-1", owner="owner@example.com", users=["user@example.com"])


def ingress_doc(**changes: Any) -> dict[str, Any]:
    """``ingress_input`` for user@example.com on :data:`INSTANCE`, with *changes* applied."""
    args: dict[str, Any] = {
        "action": "predict",
        "user": "user@example.com",
        "instance": INSTANCE,
        "queries": 0,
        "payload_nbytes": 4,
        "now_ns": 1,
    }
    args.update(changes)
    return ingress_input(**args)


DIGEST = content_digest(b"x")


def entry_args(**changes: Any) -> dict[str, Any]:
    """Keyword arguments of ``DecisionLog.append`` for one allowed prediction, with *changes*."""
    args: dict[str, Any] = {
        "instance_id": "i",
        "action": "predict",
        "party": "p",
        "decision": True,
        "reason": None,
        "policy_digest": DIGEST,
        "model_digest": DIGEST,
        "request_digest": DIGEST,
        "response_digest": DIGEST,
    }
    args.update(changes)
    return args
