"""The default policy: owner and named users, bounded requests, no shaping."""

from __future__ import annotations

import pytest

from cleanroom.policy import DEFAULT_POLICY, InstanceInfo, PolicyBundle, egress_input, ingress_input

INSTANCE = InstanceInfo(id="i", owner="owner@example.com", users=["user@example.com"])
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def default() -> PolicyBundle:
    return PolicyBundle.compile(DEFAULT_POLICY)


def test_default_policy_declares_no_shaping(default: PolicyBundle) -> None:
    assert not default.shaping
    assert default.shaping.to_json() == {}


@pytest.mark.parametrize(
    ("name", "user", "action", "nbytes", "reason"),
    [
        ("owner predicts", "owner@example.com", "predict", MiB, None),
        ("user predicts", "user@example.com", "predict", MiB, None),
        ("owner uploads", "owner@example.com", "upload_model", 2048 * MiB, None),
        (
            "stranger predicts",
            "eve@example.com",
            "predict",
            MiB,
            "the caller is neither the owner nor a named user of the instance",
        ),
        (
            "user uploads",
            "user@example.com",
            "upload_model",
            MiB,
            'the action "upload_model" is not permitted to this caller',
        ),
        (
            "unknown action",
            "owner@example.com",
            "delete_everything",
            1,
            'the action "delete_everything" is not permitted to this caller',
        ),
        ("prediction at the bound", "user@example.com", "predict", 64 * MiB, None),
        (
            "prediction over the bound",
            "user@example.com",
            "predict",
            64 * MiB + 1,
            "the request is larger than 67108864 bytes",
        ),
        (
            "upload over the bound",
            "owner@example.com",
            "upload_model",
            4096 * MiB + 1,
            "the request is larger than 4294967296 bytes",
        ),
    ],
)
def test_default_ingress(
    default: PolicyBundle, name: str, user: str, action: str, nbytes: int, reason: str | None
) -> None:
    doc = ingress_input(
        action=action, user=user, instance=INSTANCE, queries=0, payload_nbytes=nbytes
    )
    decision = default.evaluate_ingress(doc)
    assert decision.allowed is (reason is None)
    assert decision.reason == reason


@pytest.mark.parametrize(
    ("user", "allowed"),
    [("owner@example.com", True), ("user@example.com", True), ("eve@example.com", False)],
)
def test_default_egress(default: PolicyBundle, user: str, allowed: bool) -> None:
    doc = egress_input(action="predict", user=user, instance=INSTANCE, queries=0, outputs={})
    assert default.evaluate_egress(doc).allowed is allowed


def test_a_revoked_user_is_denied(default: PolicyBundle) -> None:
    revoked = InstanceInfo(id="i", owner="owner@example.com", users=[])
    doc = ingress_input(action="predict", user="user@example.com", instance=revoked, queries=0)
    assert not default.evaluate_ingress(doc).allowed
