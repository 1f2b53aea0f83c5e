"""The outermost checks every HTTP request passes: a body limit, and no escaping errors.

* JSON bodies are at most :data:`MAX_JSON_BODY_BYTES`: a declared larger body
  is refused before a byte is read, and a body that turns out larger stops
  being read at the limit. Sealed uploads and requests stream under the
  service's own limits (``ServerSettings``) and are checked there.
* An exception nothing else handled is answered with an opaque problem and
  logged by type only. Starlette's outermost error middleware would answer and
  then re-raise, and the server would log the message and traceback, which may
  carry request data.
"""

from __future__ import annotations

import logging
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cleanroom.errors import Error, PayloadTooLarge
from cleanroom.server.problems import problem_response

__all__ = ["MAX_JSON_BODY_BYTES", "RequestGuard"]

log = logging.getLogger("cleanroom.server")

# A policy of 256 KiB with room for escaping, or an instance naming thousands of users.
MAX_JSON_BODY_BYTES = 4 * 1024 * 1024

# The routes whose sealed bodies the service streams and limits itself.
_STREAMED = re.compile(r"^/v1/instances/[^/]+/(predict|model|audit/datasets/[^/]+)$")


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {MAX_JSON_BODY_BYTES} bytes")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class _BodyTooLarge(Exception):
    """Raised into the application when a body passes the limit (answered 413 here)."""


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limited = not _STREAMED.match(scope.get("path", ""))
        if limited:
            declared = _declared_length(scope)
            if declared is not None and declared > MAX_JSON_BODY_BYTES:
                await problem_response(_too_large())(scope, receive, send)
                return
        started = False
        exceeded = False
        received = 0

        async def guarded_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if limited and message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_JSON_BODY_BYTES:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if started:
                    return
                started = True
                if exceeded:  # whatever the framework made of it, the answer is 413
                    await problem_response(_too_large())(scope, receive, send)
                    return
            elif exceeded:
                return
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception as exc:  # whatever it is, it leaves without its message
            if not exceeded:
                log.error("unexpected %s while serving a request", type(exc).__name__)
            if not started:
                error = _too_large() if exceeded else Error("the clean room hit an internal error")
                started = True
                await problem_response(error)(scope, receive, send)
