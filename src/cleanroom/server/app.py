"""The HTTP API (see docs/http-api.md): a thin adapter over :class:`CleanRoomService`."""

from __future__ import annotations

import base64
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from cleanroom.atls.routes import router as atls_router
from cleanroom.atls.serving import connection_of
from cleanroom.crypto.binding import canonical_json
from cleanroom.errors import (
    Error,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)
from cleanroom.runtime import SandboxReport
from cleanroom.server.body_budget import BodyBudget
from cleanroom.server.guard import RequestGuard
from cleanroom.server.problems import problem_response
from cleanroom.server.service import LOG_PAGE_LIMIT, CleanRoomService
from cleanroom.server.tee import SIMULATION_WARNING
from cleanroom.server.upstreams import UpstreamCaller

__all__ = ["create_app"]

log = logging.getLogger("cleanroom.server")

OCTET_STREAM = "application/octet-stream"
KEY_ID_HEADER = "cleanroom-key-id"
CONFIG_HEADER = "cleanroom-config-digest"
RECEIPT_HEADER = "cleanroom-receipt"


class Credentials(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class NewInstance(BaseModel):
    name: str = Field(max_length=200)
    format: str = Field(max_length=32)
    users: list[str] = Field(default_factory=list, max_length=10_000)
    policy: str | None = Field(default=None, max_length=256 * 1024)
    audit_spec: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None
    upstreams: list[dict[str, str]] | None = None


class PolicyText(BaseModel):
    policy: str | None = Field(default=None, max_length=256 * 1024)


class UserRef(BaseModel):
    email: str = Field(max_length=320)


class PartyKey(BaseModel):
    public_key: str = Field(max_length=128)
    # A sealed request from the key itself (cleanroom.crypto.key_proof), base64.
    proof: str = Field(max_length=2048)


def sandbox_json(report: SandboxReport) -> dict[str, Any]:
    """The model sandbox in force, as the health endpoint and ``serve`` report it."""
    return {
        "mechanism": report.mechanism,
        "network_namespace": report.network_namespace,
        "seccomp": report.seccomp,
        "socket_denied": report.socket_denied,
        "execve_denied": report.execve_denied,
        "file_write_denied": report.file_write_denied,
        "rlimits": dict(report.rlimits),
        "instances": report.instances,
        "workers": report.workers,
        "restarts": report.restarts,
    }


def attested_upstream(request: Request) -> UpstreamCaller | None:
    """The clean room that proved itself on this connection for every route guarding this path.

    A peer admitted only on some other route (another path), or on only some
    of the routes that guard this one, does not count.
    """
    connection = connection_of(request.scope)
    peer = None if connection is None else connection.peer
    atls = getattr(request.app.state, "atls", None)
    if peer is None or atls is None or not atls.settings.admits(peer.routes, request.url.path):
        return None
    return UpstreamCaller(
        measurement=peer.evidence.measurement.hex(),
        policy_digest=peer.policy_digest,
        simulated=peer.evidence.simulated,
        debug=peer.evidence.debug,
    )


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else None


def caller(request: Request) -> str:
    """The authenticated email of the request's bearer token."""
    service: CleanRoomService = request.app.state.service
    return service.accounts.authenticate(_bearer_token(request))


async def _caller_without_blocking(request: Request) -> str:
    """:func:`caller`, answered on the event loop when the session is already known."""
    service: CleanRoomService = request.app.state.service
    known = service.accounts.authenticate_from_memory(_bearer_token(request))
    return known if known is not None else await run_in_threadpool(caller, request)


CallerEmail = Annotated[str, Depends(caller)]


# FastAPI records OpenTelemetry spans, metrics and exception logs (messages and
# stack traces) whenever a global provider is configured, and exports them when
# FASTAPI_OTEL_AUTO_CONFIGURE is set: both are the operator's environment, which
# attestation does not cover. Nothing about requests leaves a clean room that way.
NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def create_app(service: CleanRoomService) -> FastAPI:
    predictions = anyio.CapacityLimiter(service.settings.max_concurrent_predictions)
    bodies = BodyBudget(service.settings.max_buffered_request_bytes)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(
        title="Confidential Clean Room",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=NO_TELEMETRY,
    )
    # JSON body limit, body deadline; unexpected errors stay opaque.
    app.add_middleware(RequestGuard, body_timeout_s=service.settings.body_timeout_s)
    app.state.service = service
    app.include_router(atls_router)  # attested TLS: /v1/atls/* (docs/attested-tls.md)

    @app.exception_handler(Error)
    async def on_error(_: Request, exc: Error) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem_response(InvalidRequest(f"{where}: {first.get('msg')}"))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Routing refusals (no such path, a method the path does not take) in the
        # same problem format, with a status that agrees with the document's.
        if exc.status_code == 404:
            return problem_response(NotFound("no such endpoint"))
        if exc.status_code == 405:
            response = problem_response(
                MethodNotAllowed(f"this endpoint does not take {request.method}")
            )
            response.headers.update(exc.headers or {})  # Allow: what it does take
            return response
        return problem_response(InvalidRequest(str(exc.detail)))

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "tee": service.tee.kind,
            "simulated": service.tee.simulated,
            "warning": SIMULATION_WARNING if service.tee.simulated else None,
            "registration": "open" if service.accounts.open_registration else "closed",
            "sandbox": sandbox_json(service.sandbox_report()),
        }

    @app.post("/v1/accounts", status_code=201)
    def sign_up(body: Credentials) -> dict[str, Any]:
        return {"email": service.accounts.sign_up(body.email, body.password)}

    @app.post("/v1/sessions", status_code=201)
    def sign_in(body: Credentials) -> dict[str, Any]:
        session = service.accounts.sign_in(body.email, body.password)
        return {"token": session.token, "email": session.email, "expires": session.expires}

    @app.post("/v1/instances", status_code=201)
    def create_instance(body: NewInstance, email: CallerEmail) -> dict[str, Any]:
        record = service.create_instance(
            email,
            body.name,
            body.format,
            body.users,
            body.policy,
            body.audit_spec,
            body.limits,
            body.upstreams,
        )
        return service.instance_json(record)

    @app.get("/v1/instances/{instance_id}/policy")
    def get_policy(instance_id: str, email: CallerEmail) -> dict[str, Any]:
        return {"policy": service.policy_source(email, instance_id)}

    @app.put("/v1/instances/{instance_id}/policy")
    def set_policy(instance_id: str, body: PolicyText, email: CallerEmail) -> dict[str, Any]:
        return service.instance_json(service.set_policy(email, instance_id, body.policy))

    @app.put("/v1/instances/{instance_id}/audit/datasets/{name}")
    async def upload_audit_dataset(instance_id: str, name: str, request: Request) -> dict[str, Any]:
        email = await run_in_threadpool(caller, request)
        commitment = await service.upload_audit_data(
            email,
            instance_id,
            name,
            request.stream(),
            key_id_hex=request.headers.get(KEY_ID_HEADER),
            config=request.headers.get(CONFIG_HEADER),
        )
        return {"dataset": name, "commitment": commitment}

    @app.post("/v1/instances/{instance_id}/audit")
    def run_audit(instance_id: str, email: CallerEmail) -> Response:
        document = service.run_audit(email, instance_id)
        return Response(content=document, media_type="application/json")

    @app.get("/v1/instances/{instance_id}/audit/certificate")
    def audit_certificate(instance_id: str, email: CallerEmail) -> Response:
        document = service.audit_certificate(email, instance_id)
        return Response(content=document, media_type="application/json")

    @app.get("/v1/instances/{instance_id}/log")
    def usage_log(
        instance_id: str,
        email: CallerEmail,
        after: Annotated[int, Query(ge=-1, le=2**63 - 1)] = -1,
        limit: Annotated[int, Query(ge=1, le=LOG_PAGE_LIMIT)] = LOG_PAGE_LIMIT,
    ) -> dict[str, Any]:
        return service.usage_log(email, instance_id, after=after, limit=limit)

    @app.get("/v1/instances")
    def list_instances(email: CallerEmail) -> dict[str, Any]:
        return {"instances": [service.instance_json(r) for r in service.list_instances(email)]}

    @app.get("/v1/instances/{instance_id}")
    def get_instance(instance_id: str, email: CallerEmail) -> dict[str, Any]:
        return service.instance_json(service.visible_instance(email, instance_id))

    @app.delete("/v1/instances/{instance_id}", status_code=204)
    def delete_instance(instance_id: str, email: CallerEmail) -> Response:
        service.delete_instance(email, instance_id)
        return Response(status_code=204)

    @app.post("/v1/instances/{instance_id}/users")
    def grant(instance_id: str, body: UserRef, email: CallerEmail) -> dict[str, Any]:
        return service.instance_json(service.grant(email, instance_id, body.email))

    # :path: an address may hold a "/" (RFC 5322 allows it in the local part).
    @app.delete("/v1/instances/{instance_id}/users/{user:path}")
    def revoke(instance_id: str, user: str, email: CallerEmail) -> dict[str, Any]:
        return service.instance_json(service.revoke(email, instance_id, user))

    @app.get("/v1/instances/{instance_id}/attestation")
    def attestation(
        instance_id: str, email: CallerEmail, nonce: Annotated[str, Query(max_length=256)]
    ) -> dict[str, Any]:
        return service.attestation(email, instance_id, nonce)

    @app.put("/v1/instances/{instance_id}/keys")
    def register_key(
        instance_id: str, body: PartyKey, email: CallerEmail, request: Request
    ) -> dict[str, Any]:
        key_id = service.register_key(
            email,
            instance_id,
            body.public_key,
            body.proof,
            key_id_hex=request.headers.get(KEY_ID_HEADER),
            config=request.headers.get(CONFIG_HEADER),
        )
        return {"key_id": key_id}

    @app.put("/v1/instances/{instance_id}/model")
    async def upload_model(instance_id: str, request: Request) -> dict[str, Any]:
        email = await run_in_threadpool(caller, request)
        record = await service.upload_model(
            email,
            instance_id,
            request.stream(),
            key_id_hex=request.headers.get(KEY_ID_HEADER),
            config=request.headers.get(CONFIG_HEADER),
        )
        return service.instance_json(record)

    @app.post("/v1/instances/{instance_id}/predict")
    async def predict(instance_id: str, request: Request) -> Response:
        email = await _caller_without_blocking(request)
        # Refused before a byte of the body is read: a caller not named on the
        # instance, an unknown instance (both answered from memory when cached), a
        # caller that is not an upstream the instance declares, an instance with no model.
        upstream = attested_upstream(request)
        service.check_can_predict(email, instance_id, upstream)
        declared = request.headers.get("content-length")
        limit = service.settings.max_request_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the request is larger than the limit of {limit} bytes")
        with bodies.hold() as held:
            # Chunks are joined once at the end: growing a bytearray chunk by chunk and
            # copying it to bytes cost 1-3 ms per 600 KB request (docs/performance.md).
            chunks: list[bytes] = []
            received = 0
            async for chunk in request.stream():
                held.take(len(chunk))
                chunks.append(chunk)
                received += len(chunk)
                if received > limit:
                    raise PayloadTooLarge(f"the request is larger than the limit of {limit} bytes")
            body = b"".join(chunks)
            del chunks
            call = functools.partial(
                service.predict,
                email,
                instance_id,
                body,
                key_id_hex=request.headers.get(KEY_ID_HEADER),
                config=request.headers.get(CONFIG_HEADER),
                upstream=upstream,
            )
            # Threads of their own: predictions waiting for busy workers never take the
            # threads that sign-in, attestation and every other route run on.
            sealed, receipt = await anyio.to_thread.run_sync(call, limiter=predictions)
        encoded = base64.urlsafe_b64encode(canonical_json(receipt)).decode()
        return Response(content=sealed, media_type=OCTET_STREAM, headers={RECEIPT_HEADER: encoded})

    return app
