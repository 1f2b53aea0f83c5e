"""The policy text the SDK returns is the one the attestation committed to.

``Instance.policy()`` fetches the Rego module in force from the service, which
could serve any text: the SDK returns it only if its digest is the
``policy_digest`` of the attested configuration, and raises
:class:`PolicyViolation` otherwise. It needs a validated attestation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cleanroom import AttestationPolicy, Client, ModelFormat
from cleanroom.errors import AttestationError, PolicyViolation
from cleanroom.policy.engine import policy_digest

Party = Callable[[str], Client]
OWNER = "olivia@policy-text.example"

POLICY = """
package cleanroom

default allow_ingress := true
default allow_egress := true
"""


def _serving(client: Client, monkeypatch: pytest.MonkeyPatch, text: Any) -> None:
    original = client.request

    def request(method: str, path: str, **kwargs: Any) -> httpx.Response:
        if method == "GET" and path.endswith("/policy"):
            return httpx.Response(200, json={"policy": text})
        return original(method, path, **kwargs)

    monkeypatch.setattr(client, "request", request)


@pytest.mark.parametrize(
    "served",
    [
        pytest.param(POLICY.replace("true", "false", 1), id="another policy"),
        pytest.param(POLICY + "\n", id="one more newline"),
        pytest.param("", id="an empty policy"),
    ],
)
def test_a_policy_text_other_than_the_attested_one_is_refused(
    party: Party, policy: AttestationPolicy, monkeypatch: pytest.MonkeyPatch, served: str
) -> None:
    client = party(OWNER)
    inst = client.create_instance("PolicyText", ModelFormat.ONNX, policy=POLICY)
    inst.validate_attestation(policy)
    assert inst.policy() == POLICY
    _serving(client, monkeypatch, served)
    with pytest.raises(PolicyViolation, match="does not match the attested policy digest") as info:
        inst.policy()
    assert info.value.failures == [
        f"policy_digest: got {policy_digest(served)}, expected {policy_digest(POLICY)}"
    ]


def test_the_policy_text_needs_a_validated_attestation(party: Party) -> None:
    inst = party(OWNER).create_instance("PolicyText", ModelFormat.ONNX, policy=POLICY)
    with pytest.raises(AttestationError, match="not been validated"):
        inst.policy()
