"""The SDK's one seam to the network: requests, and problem documents back to exceptions."""

from __future__ import annotations

from typing import Any

import httpx

from cleanroom.errors import AttestationError, Error, ServiceUnavailable, error_class_for_code

__all__ = ["raise_for_problem", "transport_error"]


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the typed error a problem+json response describes; nothing if it is a success."""
    if response.is_success:
        return
    try:
        doc: Any = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or "code" not in doc:
        raise Error(
            f"the clean room answered HTTP {response.status_code} without a problem document"
        )
    cls = error_class_for_code(str(doc.get("code")))
    detail = str(doc.get("detail") or doc.get("title") or "request refused")
    remedy = doc.get("remedy")
    remedy_text = str(remedy) if isinstance(remedy, str) else None
    if issubclass(cls, AttestationError):
        failures = doc.get("failures")
        raise cls(
            detail,
            remedy=remedy_text,
            failures=[str(f) for f in failures] if isinstance(failures, list) else None,
        )
    raise cls(detail, remedy=remedy_text)


def transport_error(exc: httpx.TransportError) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"cannot reach the clean room: {type(exc).__name__}",
        remedy="check the URL and that the service is running",
    )
