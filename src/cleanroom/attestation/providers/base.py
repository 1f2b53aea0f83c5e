"""What every source of evidence offers: evidence bound to caller data."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cleanroom.attestation.evidence import Evidence
from cleanroom.errors import InvalidRequest

__all__ = ["REPORT_DATA_SIZE", "EvidenceProvider", "check_report_data"]

REPORT_DATA_SIZE = 64


@runtime_checkable
class EvidenceProvider(Protocol):
    """Produces fresh evidence whose REPORT_DATA / REPORTDATA is *report_data*."""

    #: ``"sev-snp"`` or ``"tdx"`` (the platform of the evidence produced).
    platform: str
    #: True for the simulated TEE: its evidence gives no confidentiality.
    simulated: bool

    def evidence(self, report_data: bytes) -> Evidence:
        """Fresh evidence binding the 64 bytes *report_data*.

        Raises :class:`~cleanroom.errors.ServiceUnavailable` when the TEE
        cannot produce evidence right now.
        """
        ...


def check_report_data(report_data: bytes) -> bytes:
    """*report_data* as bytes; :class:`InvalidRequest` unless it is exactly 64 bytes."""
    if not isinstance(report_data, bytes | bytearray) or len(report_data) != REPORT_DATA_SIZE:
        raise InvalidRequest(f"report_data must be {REPORT_DATA_SIZE} bytes")
    return bytes(report_data)
