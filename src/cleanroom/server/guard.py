"""The outermost checks every HTTP request passes: a body limit, and no escaping errors.

* JSON bodies are at most :data:`MAX_JSON_BODY_BYTES`: a declared larger body
  is refused before a byte is read, and a body that turns out larger stops
  being read at the limit. Sealed uploads and requests stream under the
  service's own limits (``ServerSettings``) and are checked there.
* A body, but for model and audit data uploads (the service paces those), is
  refused 408 unless it arrives whole within ``body_timeout_s`` of the first read.
* An exception nothing else handled is answered with an opaque problem and
  logged by type only. Starlette's outermost error middleware would answer and
  then re-raise, and the server would log the message and traceback, which may
  carry request data.
"""

from __future__ import annotations

import logging
import re

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cleanroom.errors import Error, PayloadTooLarge, RequestTimeout
from cleanroom.server.problems import problem_response

__all__ = ["MAX_JSON_BODY_BYTES", "RequestGuard"]

log = logging.getLogger("cleanroom.server")

# A policy of 256 KiB with room for escaping, or an instance naming thousands of users.
MAX_JSON_BODY_BYTES = 4 * 1024 * 1024

# The routes whose sealed bodies the service streams and limits itself.
_STREAMED = re.compile(r"^/v1/instances/[^/]+/(predict|model|audit/datasets/[^/]+)$")
# The uploads among them, which the service also times itself (``UploadPace``).
_UPLOADS = re.compile(r"^/v1/instances/[^/]+/(model|audit/datasets/[^/]+)$")


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {MAX_JSON_BODY_BYTES} bytes")


def _too_slow(timeout_s: float) -> RequestTimeout:
    return RequestTimeout(f"the request body did not arrive within {timeout_s:g} s")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class _BodyRefused(Exception):
    """Raised into the application when a body is refused (answered here, with *error*)."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.code)
        self.error = error


class RequestGuard:
    """*body_timeout_s*: the time a request body, but for streamed uploads, may take
    to arrive whole, counted from when the application first reads it."""

    def __init__(self, app: ASGIApp, *, body_timeout_s: float) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limited = not _STREAMED.match(path)
        timed = not _UPLOADS.match(path)
        if limited:
            declared = _declared_length(scope)
            if declared is not None and declared > MAX_JSON_BODY_BYTES:
                await problem_response(_too_large())(scope, receive, send)
                return
        started = False
        refused: Error | None = None
        received = 0
        deadline: float | None = None
        body_done = False

        async def timed_receive() -> Message:
            nonlocal deadline
            if not timed or body_done:
                return await receive()
            if deadline is None:
                deadline = anyio.current_time() + self.body_timeout_s
            try:
                with anyio.fail_at(deadline):
                    return await receive()
            except TimeoutError:
                raise _BodyRefused(_too_slow(self.body_timeout_s)) from None

        async def guarded_receive() -> Message:
            nonlocal received, refused, body_done
            try:
                message = await timed_receive()
            except _BodyRefused as exc:
                refused = exc.error
                raise
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if limited and received > MAX_JSON_BODY_BYTES:
                    refused = _too_large()
                    raise _BodyRefused(refused)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if started:
                    return
                started = True
                if refused is not None:  # whatever the framework made of it, this is the answer
                    await problem_response(refused)(scope, receive, send)
                    return
            elif refused is not None:
                return
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception as exc:  # whatever it is, it leaves without its message
            if refused is None:
                log.error("unexpected %s while serving a request", type(exc).__name__)
            if not started:
                error = refused or Error("the clean room hit an internal error")
                started = True
                await problem_response(error)(scope, receive, send)
