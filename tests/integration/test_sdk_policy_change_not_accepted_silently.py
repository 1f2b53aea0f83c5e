"""A changed policy is never accepted on the SDK's own initiative.

When the clean room's configuration changes, the SDK validates the attestation
again and retries once. If the change is a new *policy*, it raises
:class:`StaleAttestation` instead: the party must read the new policy and
call ``validate_attestation`` to accept it. Until then nothing is sealed to
the instance, not by the call that found the change, nor by any later one:
the new configuration the SDK saw while checking is not kept as attested.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from tests.models import single_input_model

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.client.instance import Instance
from cleanroom.errors import AttestationError, StaleAttestation

Party = Callable[[str], Client]
OWNER = "olivia@policy-change.example"
BOB = "bob@policy-change.example"
X = np.ones((1, 3), np.float32)

NEW_POLICY = """
package cleanroom

default allow_ingress := true
default allow_egress := true
"""


def _set_up(party: Party, policy: AttestationPolicy) -> tuple[Instance, Instance]:
    owner = party(OWNER).create_instance("Changing", ModelFormat.ONNX, [BOB])
    owner.validate_attestation(policy)
    owner.set_secret(Secret())
    owner.upload_model(single_input_model())
    bob = party(BOB).get_instance(owner.id)
    bob.validate_attestation(policy)
    bob.set_secret(Secret())
    bob.predict(X)
    return owner, bob


SEALING_CALLS = [
    pytest.param(lambda inst: inst.predict(X), id="predict"),
    pytest.param(lambda inst: inst.set_secret(Secret()), id="set_secret"),
]


@pytest.mark.parametrize("call", SEALING_CALLS)
def test_after_a_policy_change_nothing_is_sealed_until_validated_again(
    party: Party, policy: AttestationPolicy, call: Callable[[Instance], object]
) -> None:
    owner, bob = _set_up(party, policy)
    before = bob.policy_digest
    owner.set_policy(NEW_POLICY)
    with pytest.raises(StaleAttestation, match="policy changed"):
        bob.predict(X)
    assert bob.attested_config is None
    # Neither a retry nor any other call seals under the new policy unasked.
    with pytest.raises(AttestationError, match="not been validated"):
        call(bob)
    assert bob.attested_config is None
    # Accepting it is an explicit validation.
    bob.validate_attestation(policy)
    assert bob.policy_digest != before
    assert set(bob.predict(X)) == {"y"}


def test_the_owner_too_must_accept_its_own_new_policy(
    party: Party, policy: AttestationPolicy
) -> None:
    owner, _bob = _set_up(party, policy)
    owner.set_policy(NEW_POLICY)
    with pytest.raises(StaleAttestation, match="policy changed"):
        owner.upload_model(single_input_model())
    with pytest.raises(AttestationError, match="not been validated"):
        owner.upload_model(single_input_model())
    owner.validate_attestation(policy)
    owner.upload_model(single_input_model())
