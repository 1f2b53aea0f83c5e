"""What the sandbox enforces on this host, as measured by a probe worker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SandboxReport", "has_confinement", "mechanism_of", "namespace_strength"]


@dataclass(frozen=True)
class SandboxReport:
    """The confinement in force, as measured by a probe worker at start-up.

    ``mechanism`` is ``"netns+seccomp"`` (own network namespace and the
    seccomp filter), ``"seccomp"`` (filter only) or ``"none"`` (only with
    ``unsafe_allow_unconfined``). The ``*_denied`` fields are what the probe
    observed when it tried each forbidden action from inside a worker.
    """

    mechanism: str
    network_namespace: str | None
    seccomp: bool
    socket_denied: bool
    execve_denied: bool
    file_write_denied: bool
    rlimits: Mapping[str, int]
    instances: int = 0
    workers: int = 0
    restarts: int = 0
    problems: tuple[str, ...] = field(default=())
    filesystem: str | None = None  # "landlock-v<ABI>" when reads are restricted too
    service_memory_denied: bool = False
    signal_denied: bool = False

    @property
    def confined(self) -> bool:
        return (
            self.seccomp
            and self.socket_denied
            and self.execve_denied
            and self.file_write_denied
            and self.service_memory_denied
            and self.signal_denied
        )

    def to_json(self) -> dict[str, object]:
        return {
            "mechanism": self.mechanism,
            "network_namespace": self.network_namespace,
            "seccomp": self.seccomp,
            "socket_denied": self.socket_denied,
            "execve_denied": self.execve_denied,
            "file_write_denied": self.file_write_denied,
            "rlimits": dict(self.rlimits),
            "instances": self.instances,
            "workers": self.workers,
            "restarts": self.restarts,
            "problems": list(self.problems),
            "filesystem": self.filesystem,
            "service_memory_denied": self.service_memory_denied,
            "signal_denied": self.signal_denied,
        }


def mechanism_of(sandbox: Mapping[str, Any]) -> str:
    parts = []
    if sandbox.get("network_namespace"):
        parts.append("netns")
    if sandbox.get("seccomp"):
        parts.append("seccomp")
    return "+".join(parts) or "none"


# What a worker's namespaces isolate, weakest first: a network namespace alone
# leaves the worker in the service's user namespace.
_NAMESPACE_STRENGTH = {"netns": 1, "userns+netns": 2}


def namespace_strength(isolation: object) -> int:
    """Rank a worker's ``network_namespace`` report; 0 for none or anything unknown."""
    return _NAMESPACE_STRENGTH.get(isolation, 0) if isinstance(isolation, str) else 0


# A confinement requirement a supervisor sends a worker: a field of the
# worker's own report that must be set, or "user_namespace" (a network
# namespace inside a user namespace of its own, not a network namespace alone).
USER_NAMESPACE = "user_namespace"


def has_confinement(sandbox: Mapping[str, Any], requirement: str) -> bool:
    """Whether a worker's *sandbox* report meets *requirement*."""
    if requirement == USER_NAMESPACE:
        strength = namespace_strength(sandbox.get("network_namespace"))
        return strength >= _NAMESPACE_STRENGTH["userns+netns"]
    return bool(sandbox.get(requirement))
