"""RFC 9457 problem details for every refusal on the wire."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from cleanroom.errors import AttestationError, Error

__all__ = ["PROBLEM_TYPE_PREFIX", "problem_response"]

PROBLEM_TYPE_PREFIX = "urn:cleanroom:problem:"
MEDIA_TYPE = "application/problem+json"


def problem_document(exc: Error) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + exc.code,
        "title": type(exc).__name__,
        "status": exc.status,
        "detail": exc.message,
        "code": exc.code,
    }
    if exc.remedy:
        doc["remedy"] = exc.remedy
    if isinstance(exc, AttestationError) and exc.failures:
        doc["failures"] = exc.failures
    return doc


def problem_response(exc: Error) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(
        problem_document(exc), status_code=exc.status, media_type=MEDIA_TYPE, headers=headers
    )
