"""Strings that are not Unicode text (a lone UTF-16 surrogate, which JSON allows) are
refused as invalid requests, and never become part of an instance."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cleanroom import Client
from cleanroom.server.runner import ServerThread

MEASUREMENT = "ab" * 48
UPSTREAM = {"measurement": MEASUREMENT, "policy_digest": "sha256:" + "0" * 64}


def _escaped(document: dict[str, Any]) -> bytes:
    """JSON with a lone surrogate escaped as \\ud800, as a hostile client sends it."""
    return json.dumps(document, ensure_ascii=True).encode()


@pytest.mark.parametrize(
    "fields",
    [
        {"users": ["u\ud800@example.org"]},
        {"upstreams": [{**UPSTREAM, "policy_digest": "sha256:\ud800"}]},
        {"upstreams": [{**UPSTREAM, "policy_digest": "sha256:" + "0" * 63 + "\ud800"}]},
        {"upstreams": [{**UPSTREAM, "policy_digest": "sha256:" + "A" * 64}]},
        {"upstreams": [{**UPSTREAM, "policy_digest": "sha256:" + "0" * 63}]},
        {"upstreams": [{**UPSTREAM, "measurement": "ab" * 47 + "\ud800"}]},
    ],
    ids=[
        "surrogate user",
        "surrogate digest",
        "digest ending in a surrogate",
        "upper-case digest",
        "short digest",
        "surrogate measurement",
    ],
)
def test_an_instance_with_text_that_is_not_unicode_is_refused(
    server: ServerThread, party: Callable[[str], Client], fields: dict[str, Any]
) -> None:
    client = party("owner@unicode.example")
    before = {i.id for i in client.list_instances()}
    response = httpx.post(
        f"{server.url}/v1/instances",
        content=_escaped({"name": "Bad text", "format": "onnx", **fields}),
        headers={**client._auth_headers(), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid-request"
    assert {i.id for i in client.list_instances()} == before


def test_a_surrogate_email_is_refused_on_grant(
    server: ServerThread, party: Callable[[str], Client]
) -> None:
    owner = party("grantor@unicode.example")
    inst = owner.create_instance("Grants", "onnx", [])
    response = httpx.post(
        f"{server.url}/v1/instances/{inst.id}/users",
        content=_escaped({"email": "u\ud800@example.org"}),
        headers={**owner._auth_headers(), "content-type": "application/json"},
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid-request")
    assert owner.get_instance(inst.id).users == []


def test_a_well_formed_upstream_keeps_the_instance_attestable(
    server: ServerThread, party: Callable[[str], Client]
) -> None:
    owner = party("upstreams@unicode.example")
    response = httpx.post(
        f"{server.url}/v1/instances",
        json={"name": "Staged", "format": "onnx", "upstreams": [UPSTREAM]},
        headers=owner._auth_headers(),
    )
    assert response.status_code == 201
    attestation = httpx.get(
        f"{server.url}/v1/instances/{response.json()['id']}/attestation",
        params={"nonce": "00" * 16},
        headers=owner._auth_headers(),
    )
    assert attestation.status_code == 200
