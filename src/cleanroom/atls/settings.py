"""Who may call which routes of a clean room over mutually attested TLS."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cleanroom.attestation import AttestationPolicy
from cleanroom.errors import ConfigurationError

__all__ = ["AtlsSettings", "PeerRoute", "Upstream", "load_peer_routes"]


@dataclass(frozen=True)
class Upstream:
    """An upstream clean room allowed to call: its MEASUREMENT and its policy digest.

    ``measurement`` is the 48-byte hex SEV-SNP MEASUREMENT (or TDX MRTD) from
    the caller's verified evidence; ``policy_digest`` the ``policy_digest``
    its attested configuration declares. Both must match; neither is optional.
    """

    measurement: str
    policy_digest: str

    def __post_init__(self) -> None:
        try:
            raw = bytes.fromhex(self.measurement)
        except ValueError:
            raise ConfigurationError("an upstream measurement must be hex") from None
        if len(raw) != 48:
            raise ConfigurationError("an upstream measurement must be 48 bytes of hex")
        if not self.policy_digest:
            raise ConfigurationError("an upstream needs the policy digest it must declare")
        object.__setattr__(self, "measurement", raw.hex())

    def to_json(self) -> dict[str, str]:
        return {"measurement": self.measurement, "policy_digest": self.policy_digest}


def prefix_matches(prefix: str, path: str) -> bool:
    """Whether *path* is under the route *prefix* (segment-wise, ``*`` is any one segment)."""
    want = [s for s in prefix.split("/") if s]
    got = [s for s in path.split("/") if s]
    if len(got) < len(want):
        return False
    return all(w in ("*", g) for w, g in zip(want, got, strict=False))


@dataclass(frozen=True)
class PeerRoute:
    """Requests under ``prefix`` come only from attested upstreams.

    ``prefix`` is matched segment by segment, ``*`` standing for any one
    segment: ``/v1/instances/*/predict`` guards every instance's predictions.

    The caller's evidence must pass ``policy`` (root, measurement, TCB,
    debug...) and name one of ``upstreams``. An empty ``upstreams`` admits
    nobody: fail closed.
    """

    prefix: str
    policy: AttestationPolicy
    upstreams: tuple[Upstream, ...] = ()

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/"):
            raise ConfigurationError("a peer route prefix must start with '/'")
        object.__setattr__(self, "upstreams", tuple(self.upstreams))

    def matches(self, path: str) -> bool:
        """Segment-wise prefix match; a ``*`` segment matches any one segment."""
        return prefix_matches(self.prefix, path)

    def to_json(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "upstreams": [u.to_json() for u in self.upstreams]}


@dataclass(frozen=True)
class AtlsSettings:
    """Attested TLS for one clean room.

    ``routes``: the routes only attested upstreams may call (see
    :class:`PeerRoute`); they are part of the attested configuration, so a
    caller can see whom the callee admits. ``policy_digest``: this clean
    room's own policy digest, declared in its attested configuration for
    callees' allow-lists (None: declares none, and no allow-list will admit
    it). ``hosts``: names and addresses for the certificate's
    subjectAltName (for standard tools only; trust comes from attestation).
    """

    routes: tuple[PeerRoute, ...] = ()
    policy_digest: str | None = None
    hosts: tuple[str, ...] = field(default=("localhost", "127.0.0.1"))

    def routes_for(self, path: str) -> tuple[PeerRoute, ...]:
        """Every route that guards *path*; overlapping routes all apply."""
        return tuple(route for route in self.routes if route.matches(path))

    def admits(self, passed: frozenset[str], path: str) -> bool:
        """Whether a caller that passed the routes named in *passed* may call *path*.

        Every route guarding *path* must have admitted it, whatever their order:
        a broad route's allow-list never widens a narrower one's. A path no route
        guards admits nobody as an attested upstream.
        """
        guarding = self.routes_for(path)
        return bool(guarding) and all(route.prefix in passed for route in guarding)


def load_peer_routes(path: str | os.PathLike[str]) -> tuple[PeerRoute, ...]:
    """Peer routes from a TOML (``.toml``) or JSON file::

        [[route]]
        prefix = "/v1/instances/*/predict"
        policy = "upstream-policy.toml"     # an attestation policy file, relative to this one
        [[route.upstream]]
        measurement = "<48-byte hex>"
        policy_digest = "sha256:<hex>"

    Unknown fields are errors; a route without upstreams admits nobody.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        doc: Any = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read peer routes {str(file)!r}: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) != {"route"} or not isinstance(doc["route"], list):
        raise ConfigurationError(f"{str(file)!r} must hold a list of [[route]] tables only")
    routes = []
    for entry in doc["route"]:
        if not isinstance(entry, dict) or not set(entry) <= {"prefix", "policy", "upstream"}:
            raise ConfigurationError("a [[route]] has prefix, policy and [[route.upstream]] only")
        if not isinstance(entry.get("prefix"), str) or not isinstance(entry.get("policy"), str):
            raise ConfigurationError("a [[route]] needs a prefix and a policy file")
        upstreams = entry.get("upstream", [])
        if not isinstance(upstreams, list) or not all(
            isinstance(u, dict) and set(u) == {"measurement", "policy_digest"} for u in upstreams
        ):
            raise ConfigurationError("a [[route.upstream]] has measurement and policy_digest")
        policy = AttestationPolicy.from_file(file.parent / entry["policy"])
        allowed = tuple(Upstream(str(u["measurement"]), str(u["policy_digest"])) for u in upstreams)
        routes.append(PeerRoute(entry["prefix"], policy, allowed))
    return tuple(routes)
