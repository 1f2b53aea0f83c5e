"""Upstream clean rooms an instance declares: the only callers it serves.

Each upstream is the (MEASUREMENT, policy digest) pair of a clean room that
proved itself over mutually attested TLS (docs/attested-tls.md). The list is
part of the instance's attested configuration.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cleanroom.errors import AccessDenied, InvalidRequest

__all__ = ["UPSTREAMS_OPTION", "UpstreamCaller", "check_upstream", "parse_upstreams"]


@dataclass(frozen=True)
class UpstreamCaller:
    """The attested clean room that made a call, as its verified evidence describes it."""

    measurement: str
    policy_digest: str | None
    simulated: bool
    debug: bool


UPSTREAMS_OPTION = "upstreams"
MEASUREMENT_BYTES = 48
_POLICY_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def parse_upstreams(declared: Sequence[Any]) -> list[dict[str, str]]:
    """Validate and normalise a declared list; :class:`InvalidRequest` when malformed."""
    out: list[dict[str, str]] = []
    for item in declared:
        if not isinstance(item, dict) or set(item) != {"measurement", "policy_digest"}:
            raise InvalidRequest("each upstream is {measurement, policy_digest}")
        measurement, digest = item["measurement"], item["policy_digest"]
        try:
            raw = bytes.fromhex(measurement)
        except (TypeError, ValueError):
            raise InvalidRequest("an upstream measurement must be hex") from None
        # fullmatch on str: a lone surrogate, upper case or a short digest never matches.
        if (
            len(raw) != MEASUREMENT_BYTES
            or not isinstance(digest, str)
            or not _POLICY_DIGEST.fullmatch(digest)
        ):
            raise InvalidRequest(
                "an upstream is a 48-byte hex measurement and a policy digest"
                " of sha256: and 64 lowercase hex digits"
            )
        out.append({"measurement": raw.hex(), "policy_digest": digest})
    return out


def check_upstream(
    declared: list[dict[str, str]] | None,
    upstream: UpstreamCaller | None,
    *,
    service_simulated: bool,
) -> None:
    """Refuse a call unless the instance declares no upstreams or names this caller.

    The evidence rules a peer passed are the operator's (its peer routes, not
    attested), so whatever they allow, a debug TEE never counts as a declared
    upstream, nor does a simulated one unless this service is simulated too.
    """
    if declared is None:
        return
    if upstream is None:
        raise AccessDenied(
            "this instance serves only attested upstream clean rooms",
            remedy="call it over mutually attested TLS from a declared upstream",
        )
    if upstream.debug:
        raise AccessDenied("a clean room running in a debug TEE is never a declared upstream")
    if upstream.simulated and not service_simulated:
        raise AccessDenied("a simulated clean room is never an upstream of a hardware one")
    measurement, digest = upstream.measurement, upstream.policy_digest
    if {"measurement": measurement, "policy_digest": digest} not in declared:
        raise AccessDenied(
            f"upstream (measurement {measurement[:16]}…, policy {digest}) is not declared "
            "by this instance"
        )
