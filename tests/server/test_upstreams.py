"""An instance's declared upstreams: which attested callers count as one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from starlette.requests import Request

from cleanroom.atls.peer import VerifiedPeer
from cleanroom.atls.serving import CONNECTION_KEY, PeerConnection
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


def _request(path: str, routes: frozenset[str] | None) -> Request:
    connection = PeerConnection()
    if routes is not None:
        connection.peer = VerifiedPeer(_Evidence(), DIGEST, b"spki", routes)  # type: ignore[arg-type]
    scope = {"type": "http", "path": path, "headers": [], "state": {CONNECTION_KEY: connection}}
    return Request(scope)


@pytest.mark.parametrize(
    ("routes", "path", "counts"),
    [
        (frozenset({"/v1/instances/*/predict"}), "/v1/instances/abc/predict", True),
        (frozenset({"/v1/instances"}), "/v1/instances/abc/predict", True),
        (frozenset({"/v1/operator/metrics"}), "/v1/instances/abc/predict", False),
        (frozenset({"/v1/instances/*/model"}), "/v1/instances/abc/predict", False),
        (
            frozenset({"/v1/operator/metrics", "/v1/instances/*/predict"}),
            "/v1/instances/abc/predict",
            True,
        ),
        (None, "/v1/instances/abc/predict", False),
    ],
)
def test_a_peer_counts_only_for_a_route_covering_the_path(
    routes: frozenset[str] | None, path: str, counts: bool
) -> None:
    caller = attested_upstream(_request(path, routes))
    assert (caller is not None) is counts
    if caller is not None:
        assert caller == GENUINE
