"""The evidence a clean room presents: raw report or quote bytes plus what is
needed to verify them, and its JSON form on the wire."""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cleanroom.errors import EvidenceFormatError

__all__ = ["PLATFORMS", "Evidence"]

PLATFORMS = ("sev-snp", "tdx", "sgx")
# Generous upper bounds so a hostile peer cannot make us decode megabytes.
_MAX_REPORT = 64 * 1024
_MAX_CERTIFICATES = 16
_MAX_CERTIFICATE = 64 * 1024
_KEYS = frozenset({"platform", "report", "certificates", "collateral", "simulated"})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str, limit: int) -> bytes:
    if not isinstance(value, str):
        raise EvidenceFormatError(f"evidence {what} must be a base64 string")
    if len(value) > (limit * 4) // 3 + 4:
        raise EvidenceFormatError(f"evidence {what} is too large")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceFormatError(f"evidence {what} is not valid base64") from exc


@dataclass(frozen=True)
class Evidence:
    """Attestation evidence as produced by the TEE (or the simulator).

    ``platform`` is ``"sev-snp"``, ``"tdx"`` or ``"sgx"``; ``report`` the raw
    report or quote bytes exactly as produced; ``certificates`` the DER
    certificates that came with it (SEV-SNP: VCEK or VLEK, ASK or ASVK, maybe
    the ARK, which is never trusted from here); ``collateral`` Intel DCAP
    collateral (JSON-shaped, like PCS responses); for SEV-SNP ``None``, or
    ``{"amd_crls": [base64 DER CRL, ...]}`` to check AMD revocation lists
    (the default policy requires a current one for hardware evidence);
    ``simulated`` is True when a simulated TEE produced it.
    """

    platform: str
    report: bytes
    certificates: tuple[bytes, ...] = ()
    collateral: Mapping[str, Any] | None = None
    simulated: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: bytes as standard base64, stable keys."""
        return {
            "platform": self.platform,
            "report": _b64(self.report),
            "certificates": [_b64(c) for c in self.certificates],
            "collateral": copy.deepcopy(dict(self.collateral))
            if self.collateral is not None
            else None,
            "simulated": self.simulated,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Evidence:
        """The inverse of :meth:`to_json`; raises :class:`EvidenceFormatError`
        on unknown or missing keys, wrong types, bad base64 or sizes."""
        if not isinstance(doc, Mapping):
            raise EvidenceFormatError("evidence must be a JSON object")
        unknown = sorted(set(doc) - _KEYS)
        if unknown:
            raise EvidenceFormatError(f"evidence has unknown fields: {', '.join(unknown)}")
        platform = doc.get("platform")
        if platform not in PLATFORMS:
            raise EvidenceFormatError(
                f"evidence platform must be one of {', '.join(PLATFORMS)}",
                failures=[f"platform: got {platform!r}, expected one of {list(PLATFORMS)}"],
            )
        if "report" not in doc:
            raise EvidenceFormatError("evidence has no report")
        report = _unb64(doc["report"], "report", _MAX_REPORT)
        certs_doc = doc.get("certificates", [])
        if not isinstance(certs_doc, list) or len(certs_doc) > _MAX_CERTIFICATES:
            raise EvidenceFormatError("evidence certificates must be a short list")
        certificates = tuple(_unb64(c, "certificate", _MAX_CERTIFICATE) for c in certs_doc)
        collateral = doc.get("collateral")
        if collateral is not None and not isinstance(collateral, Mapping):
            raise EvidenceFormatError("evidence collateral must be an object or null")
        simulated = doc.get("simulated", False)
        if not isinstance(simulated, bool):
            raise EvidenceFormatError("evidence simulated must be true or false")
        return cls(
            platform=str(platform),
            report=report,
            certificates=certificates,
            collateral=copy.deepcopy(dict(collateral)) if collateral is not None else None,
            simulated=simulated,
        )
