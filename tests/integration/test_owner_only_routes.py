"""A data owner named on an instance is still not its owner: the owner-only routes
for the policy and the privacy audit refuse them, whatever they send."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.client.instance import Instance
from cleanroom.errors import AccessDenied

Party = Callable[[str], Client]


def _attested(inst: Instance, policy: AttestationPolicy) -> Instance:
    inst.validate_attestation(policy)
    inst.set_secret(Secret())
    return inst


def test_a_data_owner_is_refused_the_owner_only_policy_and_audit_routes(
    party: Party, policy: AttestationPolicy
) -> None:
    owner = party("owner@routes.example")
    created = owner.create_instance("Owned", ModelFormat.ONNX, ["data@routes.example"])
    _attested(created, policy)
    data_owner = _attested(party("data@routes.example").get_instance(created.id), policy)
    for attempt in (
        lambda: data_owner.set_policy("package cleanroom\n"),
        lambda: data_owner.upload_audit_data(b"members", b"nonmembers"),
        data_owner.run_audit,
    ):
        with pytest.raises(AccessDenied, match="owner"):
            attempt()
    # Nothing changed: the policy in force is the one the owner attested.
    assert owner.get_instance(created.id).policy_digest == created.policy_digest
