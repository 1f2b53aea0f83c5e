"""The attested-TLS routes: the server's fresh evidence, and the caller's proof.

``POST /v1/atls/handshake`` ``{"nonce": hex}`` answers with evidence in the
``server`` role for that nonce, and a challenge for this connection.
``POST /v1/atls/peer`` takes a calling clean room's proof for that
challenge; a failure closes the connection. Neither needs credentials: they
run before any are sent. On a plain-HTTP server both answer not-found.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from cleanroom.atls.document import NONCE_MAX, NONCE_MIN
from cleanroom.atls.peer import PeerProof, VerifiedPeer, verify_peer
from cleanroom.atls.serving import AtlsServer, PeerConnection, closing_refusal, connection_of
from cleanroom.errors import AttestationError, EvidenceFormatError, InvalidRequest, NotFound

__all__ = ["router"]

log = logging.getLogger("cleanroom.atls")

router = APIRouter()
CHALLENGE_SIZE = 32
# A certificate and an evidence document: a few kilobytes to a few hundred (TDX collateral).
MAX_PROOF = 1024 * 1024
# The status of a refused peer proof: the caller may not use the peer routes.
PEER_REFUSED = 403


class HandshakeRequest(BaseModel):
    nonce: str = Field(max_length=2 * NONCE_MAX)


def _attested(request: Request) -> tuple[AtlsServer, PeerConnection]:
    atls = getattr(request.app.state, "atls", None)
    connection = connection_of(request.scope)
    if not isinstance(atls, AtlsServer) or connection is None:
        raise NotFound("attested TLS is not enabled on this clean room", remedy="serve with --tls")
    return atls, connection


@router.post("/v1/atls/handshake")
async def handshake(request: Request, body: HandshakeRequest) -> dict[str, Any]:
    atls, connection = _attested(request)
    try:
        nonce = bytes.fromhex(body.nonce)
    except ValueError:
        raise InvalidRequest("the nonce must be hex") from None
    if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise InvalidRequest(f"the nonce must be {NONCE_MIN} to {NONCE_MAX} bytes")
    document = await run_in_threadpool(atls.identity.document, nonce, role="server")
    connection.challenge = os.urandom(CHALLENGE_SIZE)
    return {"document": document.to_json(), "challenge": connection.challenge.hex()}


async def _bounded_body(request: Request) -> bytes:
    """The request body, refused past MAX_PROOF bytes before it is all read."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_PROOF:
            raise EvidenceFormatError(f"a peer proof is at most {MAX_PROOF} bytes")
    return bytes(body)


def _proof_json(body: bytes) -> Any:
    """The parsed proof; :class:`InvalidRequest` for anything that is not JSON.

    RecursionError is deep nesting (the body may be a megabyte of ``[``); the
    parser's own message is not kept: it may quote the body.
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidRequest("the peer proof is not JSON") from None


def _verify(proof_doc: Any, challenge: bytes, atls: AtlsServer) -> VerifiedPeer:
    """The caller's proof, verified; every way it can be malformed is an AttestationError."""
    try:
        proof = PeerProof.from_json(proof_doc)
        return verify_peer(
            proof,
            challenge=challenge,
            own_spki_der=atls.identity.spki_der,
            routes=atls.settings.routes,
            fetchers=atls.fetchers,
        )
    except AttestationError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, ArithmeticError, RecursionError) as exc:
        # A proof shaped in a way the parsers did not foresee: refused, never a 500.
        # Only the exception's type is logged; its message may quote the proof.
        log.warning("a malformed peer proof raised %s", type(exc).__name__)
        raise EvidenceFormatError("the peer proof is malformed") from None


@router.post("/v1/atls/peer", response_model=None)
async def peer(request: Request) -> dict[str, Any] | JSONResponse:
    atls, connection = _attested(request)
    challenge, connection.challenge = connection.challenge, None  # single use
    try:
        if challenge is None:
            raise AttestationError(
                "no challenge was issued on this connection",
                failures=["challenge: call /v1/atls/handshake on this connection first"],
            )
        proof_doc = _proof_json(await _bounded_body(request))
        verified = await run_in_threadpool(_verify, proof_doc, challenge, atls)
    except AttestationError as exc:
        # The caller is refused, not a gateway failure: 403 on the wire and in the
        # document (an AttestationError's own status, 502, is for a client refusing
        # a server it called). The message is the checker's, bounded in the log.
        log.warning("refused a calling clean room: %.300s", exc.message)
        connection.peer = None
        return closing_refusal(exc, status=PEER_REFUSED)
    except InvalidRequest as exc:
        connection.peer = None
        return closing_refusal(exc)
    connection.peer = verified
    return {
        "routes": sorted(verified.routes),
        "measurement": verified.evidence.measurement.hex(),
        "simulated": verified.evidence.simulated,
    }
