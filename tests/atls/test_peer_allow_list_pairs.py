"""A route's allow-list admits (measurement, policy digest) PAIRS, not either half.

The route's attestation policy here accepts two measurements, and its allow-list
pairs each with its own policy digest: a caller that passes attestation with one
allowed measurement and the OTHER entry's policy digest is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from atls_fakes import make_identity, policy_for

from cleanroom.atls import PeerRoute, Upstream
from cleanroom.atls.peer import PeerProof, verify_peer
from cleanroom.attestation.measurement import package_measurement
from cleanroom.errors import PolicyViolation

CHALLENGE = b"\x09" * 32
ROUTE = "/v1/instances/*/predict"
M1 = package_measurement()
M2 = b"\x42" * 48
D1 = "sha256:" + "d1" * 32
D2 = "sha256:" + "d2" * 32

# (measurement, policy digest of the caller) -> admitted
CALLERS = [
    pytest.param(M1, D1, True, id="first pair"),
    pytest.param(M2, D2, True, id="second pair"),
    pytest.param(M2, D1, False, id="second measurement with the first digest"),
    pytest.param(M1, D2, False, id="first measurement with the second digest"),
    pytest.param(M1, None, False, id="first measurement, no digest"),
]


@pytest.mark.parametrize(("measurement", "digest", "admitted"), CALLERS)
def test_only_an_allowed_pair_is_admitted(
    measurement: bytes, digest: str | None, admitted: bool, tee_dir: Path
) -> None:
    route = PeerRoute(
        ROUTE,
        policy_for(tee_dir, measurements=[M1.hex(), M2.hex()]),
        (Upstream(M1.hex(), D1), Upstream(M2.hex(), D2)),
    )
    callee_spki = make_identity(tee_dir).spki_der
    caller = make_identity(tee_dir, measurement=measurement, policy_digest=digest)
    document = caller.document(CHALLENGE, role="client", peer_spki_der=callee_spki)
    proof = PeerProof(
        caller.certificate_der, document, caller.sign_proof(CHALLENGE, callee_spki, document)
    )

    def verify() -> frozenset[str]:
        peer = verify_peer(proof, challenge=CHALLENGE, own_spki_der=callee_spki, routes=(route,))
        return peer.routes

    if admitted:
        assert verify() == frozenset({ROUTE})
        return
    with pytest.raises(PolicyViolation) as refused:
        verify()
    assert any("not on the route's allow-list" in f for f in refused.value.failures)
