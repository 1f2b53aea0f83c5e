"""An instance's declared upstreams: which attested callers count as one."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from cleanroom.atls.peer import VerifiedPeer
from cleanroom.atls.serving import CONNECTION_KEY, PeerConnection
from cleanroom.atls.settings import AtlsSettings, PeerRoute
from cleanroom.attestation import AttestationPolicy
from cleanroom.errors import AccessDenied
from cleanroom.server.app import attested_upstream
from cleanroom.server.upstreams import UpstreamCaller, check_upstream

STAGE = "ab" * 48
DIGEST = "sha256:" + "cd" * 32
DECLARED = [{"measurement": STAGE, "policy_digest": DIGEST}]
GENUINE = UpstreamCaller(STAGE, DIGEST, simulated=False, debug=False)


@pytest.mark.parametrize(
    ("name", "declared", "caller", "service_simulated", "refusal"),
    [
        ("no upstreams declared: anyone", None, None, False, None),
        ("a declared upstream", DECLARED, GENUINE, False, None),
        ("a direct call", DECLARED, None, False, "serves only attested upstream"),
        (
            "another measurement",
            DECLARED,
            replace(GENUINE, measurement="ef" * 48),
            False,
            "not declared",
        ),
        (
            "another policy",
            DECLARED,
            replace(GENUINE, policy_digest="sha256:" + "0" * 64),
            False,
            "not declared",
        ),
        ("no policy digest", DECLARED, replace(GENUINE, policy_digest=None), False, "not declared"),
        ("a debug TEE", DECLARED, replace(GENUINE, debug=True), False, "debug TEE"),
        (
            "a debug TEE, simulated service",
            DECLARED,
            replace(GENUINE, debug=True),
            True,
            "debug TEE",
        ),
        (
            "a simulated peer of a hardware service",
            DECLARED,
            replace(GENUINE, simulated=True),
            False,
            "simulated clean room",
        ),
        (
            "a simulated peer of a simulated service",
            DECLARED,
            replace(GENUINE, simulated=True),
            True,
            None,
        ),
    ],
)
def test_who_counts_as_a_declared_upstream(
    name: str,
    declared: Any,
    caller: UpstreamCaller | None,
    service_simulated: bool,
    refusal: str | None,
) -> None:
    if refusal is None:
        check_upstream(declared, caller, service_simulated=service_simulated)
    else:
        with pytest.raises(AccessDenied, match=refusal):
            check_upstream(declared, caller, service_simulated=service_simulated)


class _Evidence:
    measurement = bytes.fromhex(STAGE)
    simulated = False
    debug = False


PREDICT = "/v1/instances/*/predict"
INSTANCES = "/v1/instances"
METRICS = "/v1/operator/metrics"
MODEL = "/v1/instances/*/model"


def _request(path: str, configured: tuple[str, ...], passed: frozenset[str] | None) -> Request:
    """A request on a connection whose peer passed *passed* of the *configured* routes."""
    connection = PeerConnection()
    if passed is not None:
        connection.peer = VerifiedPeer(_Evidence(), DIGEST, b"spki", passed)  # type: ignore[arg-type]
    policy = AttestationPolicy([STAGE])
    settings = AtlsSettings(routes=tuple(PeerRoute(prefix, policy) for prefix in configured))
    app = SimpleNamespace(state=SimpleNamespace(atls=SimpleNamespace(settings=settings)))
    scope = {
        "type": "http",
        "path": path,
        "headers": [],
        "app": app,
        "state": {CONNECTION_KEY: connection},
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("configured", "passed", "counts"),
    [
        ((PREDICT,), frozenset({PREDICT}), True),
        ((INSTANCES,), frozenset({INSTANCES}), True),
        ((METRICS, PREDICT), frozenset({METRICS}), False),
        ((MODEL, PREDICT), frozenset({MODEL}), False),
        ((METRICS, PREDICT), frozenset({METRICS, PREDICT}), True),
        ((PREDICT,), None, False),
        # Overlapping routes must all have admitted the peer.
        ((INSTANCES, PREDICT), frozenset({PREDICT}), False),
        ((PREDICT, INSTANCES), frozenset({INSTANCES}), False),
        ((INSTANCES, PREDICT), frozenset({INSTANCES, PREDICT}), True),
        # A path no route guards has no attested upstream.
        ((METRICS,), frozenset({METRICS}), False),
    ],
)
def test_a_peer_counts_only_if_every_route_covering_the_path_admitted_it(
    configured: tuple[str, ...], passed: frozenset[str] | None, counts: bool
) -> None:
    caller = attested_upstream(_request("/v1/instances/abc/predict", configured, passed))
    assert (caller is not None) is counts
    if caller is not None:
        assert caller == GENUINE
