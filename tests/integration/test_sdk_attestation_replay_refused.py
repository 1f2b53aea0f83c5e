"""A recorded attestation answer does not validate again: each validation uses a fresh nonce.

``validate_attestation`` asks for evidence over a nonce it has just drawn,
and checks that REPORT_DATA commits to that nonce. An operator who recorded
a genuine answer (say, from before a key or configuration change, or from a
TEE since compromised) and serves it again is refused, and nothing is left
to seal to. The answer is replayed in the client's request layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.errors import AttestationError, PolicyViolation

Party = Callable[[str], Client]
OWNER = "olivia@replay.example"


def test_a_replayed_attestation_answer_is_refused(
    party: Party, policy: AttestationPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = party(OWNER)
    inst = client.create_instance("Replayed", ModelFormat.ONNX)
    original = client.request
    recorded: list[httpx.Response] = []
    nonces: list[str] = []

    def request(method: str, path: str, **kwargs: Any) -> httpx.Response:
        if not path.endswith("/attestation"):
            return original(method, path, **kwargs)
        nonces.append(kwargs["params"]["nonce"])
        if recorded:
            return recorded[0]
        recorded.append(original(method, path, **kwargs))
        return recorded[0]

    monkeypatch.setattr(client, "request", request)
    inst.validate_attestation(policy)
    assert inst.attested_config is not None
    with pytest.raises(PolicyViolation, match="breaks the attestation policy") as refused:
        inst.validate_attestation(policy)
    # Refused by the evidence's REPORT_DATA (it commits to the old nonce), and by nothing else.
    assert [f.split(":")[0] for f in refused.value.failures] == ["REPORT_DATA"]
    assert len(nonces) == 2
    assert nonces[0] != nonces[1]
    assert len(bytes.fromhex(nonces[0])) == 32
    assert inst.attested_config is None
    with pytest.raises(AttestationError, match="not been validated"):
        inst.set_secret(Secret())
