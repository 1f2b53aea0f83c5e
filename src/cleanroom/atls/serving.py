"""The server side of attested TLS: per-connection state, the peer-route gate.

Uvicorn gives an ASGI app no handle on its TLS connection, so
:class:`AttestedH11Protocol` (one instance per connection) hands every
request of a connection the same :class:`PeerConnection` through the ASGI
``state`` mapping. The state dies with the connection: a challenge or a
verified peer never carries over to another connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from cleanroom.atls.identity import AttestedTlsIdentity
from cleanroom.atls.peer import VerifiedPeer
from cleanroom.atls.settings import AtlsSettings
from cleanroom.attestation.fetch import EvidenceFetchers
from cleanroom.errors import AccessDenied, Error
from cleanroom.server.problems import MEDIA_TYPE, problem_document, problem_response

__all__ = [
    "CONNECTION_KEY",
    "AtlsServer",
    "AttestedH11Protocol",
    "PeerConnection",
    "PeerRouteGate",
    "closing_refusal",
    "connection_of",
]

log = logging.getLogger("cleanroom.atls")

CONNECTION_KEY = "cleanroom.atls.connection"


class PeerConnection:
    """What one TLS connection has established so far."""

    def __init__(self) -> None:
        self.challenge: bytes | None = None
        self.peer: VerifiedPeer | None = None


class AtlsServer:
    """The attested-TLS identity and peer routes of one running clean room.

    ``fetchers``: where calling clean rooms' evidence is completed from (the
    clean room's own ``--amd-kds`` and ``--intel-pcs``), or None to judge it as
    the caller sent it.
    """

    def __init__(
        self,
        identity: AttestedTlsIdentity,
        settings: AtlsSettings,
        *,
        fetchers: EvidenceFetchers | None = None,
    ) -> None:
        self.identity = identity
        self.settings = settings
        self.fetchers = fetchers


class AttestedH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol, with one :class:`PeerConnection` per TCP connection."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.atls_connection = PeerConnection()
        super().__init__(
            config, server_state, {**app_state, CONNECTION_KEY: self.atls_connection}, _loop
        )


def connection_of(scope: MutableMapping[str, Any]) -> PeerConnection | None:
    state = scope.get("state")
    if not isinstance(state, MutableMapping):
        return None
    connection = state.get(CONNECTION_KEY)
    return connection if isinstance(connection, PeerConnection) else None


def closing_refusal(exc: Error, status: int | None = None) -> JSONResponse:
    """A problem document after which the server closes the connection (RFC 9112 9.6).

    *status* overrides the error's own HTTP status, in the response and in the
    document's ``status`` member alike (RFC 9457 3.1.2: they must agree).
    """
    if status is None:
        response = problem_response(exc)
    else:
        document = problem_document(exc)
        document["status"] = status
        response = JSONResponse(document, status_code=status, media_type=MEDIA_TYPE)
    response.headers["connection"] = "close"
    return response


class PeerRouteGate:
    """Refuses a peer route's requests unless this connection's caller passed its rule."""

    def __init__(self, app: ASGIApp, settings: AtlsSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = str(scope.get("path", ""))
            guarding = self.settings.routes_for(path)
            if guarding:
                connection = connection_of(scope)
                peer = connection.peer if connection is not None else None
                if peer is None or not self.settings.admits(peer.routes, path):
                    log.warning(
                        "refused a call to %s: no attested upstream on the connection",
                        guarding[0].prefix,
                    )
                    refusal = closing_refusal(
                        AccessDenied(
                            "this route accepts only attested upstream clean rooms",
                            remedy="connect with mutually attested TLS as an allowed upstream",
                        )
                    )
                    await refusal(scope, receive, send)
                    return
        await self.app(scope, receive, send)
