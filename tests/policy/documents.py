"""An ingress document for policy tests: a named user's small prediction."""

from __future__ import annotations

from typing import Any

from cleanroom.policy import InstanceInfo, ingress_input

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
