"""``Client.last_server_attestation`` never names the connection of an earlier request.

Over attested TLS, a caller reads what the connection of its last request
verified. When a request fails before any response (the connection refused
or dropped), there is no such connection: the property is ``None``, not the
attestation of the request before, which a caller would otherwise take for
the failed one's.

The network is an in-process ``httpx.MockTransport``; each response's
attestation is a distinct marker standing in for what attested TLS verified.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import cleanroom.client.client as client_module
from cleanroom import Client
from cleanroom.errors import NotFound, ServiceUnavailable


def _service(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v1/health":
        return httpx.Response(200, json={"status": "ok"})
    if request.url.path == "/v1/problem":
        return httpx.Response(404, json={"code": "not-found", "detail": "no such instance"})
    raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Client:
    markers: dict[int, object] = {}

    def attestation_of(response: httpx.Response) -> Any:
        return markers.setdefault(id(response), object())

    monkeypatch.setattr(client_module, "attestation_of", attestation_of)
    return Client("http://cleanroom.test", transport=httpx.MockTransport(_service))


def test_a_request_that_failed_before_a_response_has_no_attestation(client: Client) -> None:
    assert client.last_server_attestation is None
    client.health()
    assert client.last_server_attestation is not None
    with pytest.raises(ServiceUnavailable, match="cannot reach the clean room"):
        client.request("GET", "/v1/unreachable", auth=False)
    assert client.last_server_attestation is None


def test_a_refusal_names_the_connection_it_came_over(client: Client) -> None:
    client.health()
    before = client.last_server_attestation
    with pytest.raises(NotFound):
        client.request("GET", "/v1/problem", auth=False)
    after = client.last_server_attestation
    assert after is not None
    assert after is not before
