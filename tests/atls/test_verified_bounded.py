"""A transport keeps the attestations of its newest connections only, not of every one.

A pipeline stage keeps one client open for as long as it runs; each
connection's attestation holds the server's whole evidence, so an unbounded
list grows without end.
"""

from __future__ import annotations

import httpx
import pytest

from cleanroom.atls import transport as transport_module
from cleanroom.atls.transport import AttestedTransport
from cleanroom.attestation import AttestationPolicy
from cleanroom.server.runner import ServerThread

ONE_USE = httpx.Limits(max_connections=1, max_keepalive_connections=0)


def test_the_default_bound() -> None:
    assert transport_module.MAX_VERIFIED == 64


def test_only_the_newest_connections_are_kept(
    server: ServerThread, policy: AttestationPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_module, "MAX_VERIFIED", 3)
    attested = AttestedTransport(policy, limits=ONE_USE)
    seen: list[bytes] = []
    with httpx.Client(transport=attested) as client:
        for _ in range(5):  # no keep-alive: every request is a new, attested connection
            assert client.get(f"{server.url}/v1/health").status_code == 200
            seen.append(attested.verified[-1].document.nonce)
    kept = attested.verified
    assert isinstance(kept, list)
    assert len(set(seen)) == 5
    assert [v.document.nonce for v in kept] == seen[-3:]  # the newest, oldest first
