"""Service settings: one immutable object, built by the CLI from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cleanroom.attestation.fetch import AMD_KDS, INTEL_PCS
from cleanroom.runtime.base import RuntimeLimits

__all__ = ["ServerSettings"]

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class ServerSettings:
    data_dir: Path
    tee: str = "simulated"
    open_registration: bool = True
    token_ttl_s: int = 12 * 3600
    # A sealed request carries its creation time; older (or future) ones are refused.
    replay_window_s: int = 300
    max_request_bytes: int = 256 * MIB
    max_model_bytes: int = 4 * GIB
    # Uploads start sandboxed workers as their first bytes open: bounded in number
    # (in all, and per owner, so one account cannot hold every slot), one per
    # instance at a time, and stopped when the sender goes quiet.
    max_concurrent_uploads: int = 4
    max_uploads_per_owner: int = 2
    upload_idle_timeout_s: float = 60.0
    # A sender that keeps trickling bytes is stopped too: after the grace period, an
    # upload (model or audit data set) must average this rate since it began.
    upload_grace_s: float = 60.0
    upload_min_bytes_per_s: int = 256 * 1024
    # Every other request body (JSON, sealed predict requests) is read whole within this.
    body_timeout_s: float = 60.0
    # Predictions run on threads of their own, at most this many at once (the
    # others wait for one, without blocking the routes that run on the shared pool).
    max_concurrent_predictions: int = 32
    # Predict bodies held in memory at once, all requests together (each is read
    # whole before it is opened); past it a request is refused 503 as it arrives.
    max_buffered_request_bytes: int = GIB
    # On SEV-SNP hardware, evidence is completed from AMD's Key Distribution
    # Service: the VCEK chain when the host gave none, and the current CRL that
    # clients require by default. None: evidence goes out as the host gives it.
    amd_kds_url: str | None = AMD_KDS
    # The evidence of attested-TLS peers (upstreams calling, downstreams called) is
    # completed from these on this side: AMD KDS above for SEV-SNP, Intel PCS for
    # TDX and SGX (the current collateral, not the copy the peer's host sent).
    intel_pcs_url: str | None = INTEL_PCS
    runtime: RuntimeLimits = field(default_factory=RuntimeLimits)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "cleanroom.sqlite3"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"
