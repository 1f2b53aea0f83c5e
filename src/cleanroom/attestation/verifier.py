"""The one entry point: evidence + policy -> verified claims, or a refusal.

Parse, verify authenticity, validate claims: the three stages, each by the
platform's own code (:mod:`.registry`), with one policy for every platform.
Simulated evidence follows exactly the same path; only the trusted root
differs, and it is trusted only when the policy says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.evidence import Evidence
from cleanroom.attestation.platform import Claims
from cleanroom.attestation.policy import AttestationPolicy
from cleanroom.attestation.registry import verifier_for
from cleanroom.attestation.validate import claim_failures
from cleanroom.errors import ConfigurationError, Error, EvidenceFormatError, PolicyViolation

__all__ = ["VerifiedEvidence", "check_evidence", "verify_evidence"]

_log = logging.getLogger(__name__)
REPORT_DATA_SIZE = 64
_PRIMARY_MEASUREMENT = {"sev-snp": "MEASUREMENT", "tdx": "MRTD", "sgx": "MRENCLAVE"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class VerifiedEvidence:
    """Claims of evidence that passed authenticity and policy.

    ``measurement`` is the platform's main code identity (SEV-SNP
    MEASUREMENT, TDX MRTD, SGX MRENCLAVE); ``measurements`` has all of them
    by spec name. ``simulated`` is True for simulated-TEE evidence, which
    gives no confidentiality. ``revocation_checked`` is True when the chain
    was checked against a current revocation list of its root (SEV-SNP: an
    AMD CRL; always for Intel DCAP).
    """

    platform: str
    simulated: bool
    measurement: bytes
    report_data: bytes
    host_data: bytes
    debug: bool
    tcb: Mapping[str, int]
    tcb_status: str
    advisory_ids: tuple[str, ...]
    measurements: Mapping[str, bytes]
    signing_key: str
    root: str
    fields: Mapping[str, Any]
    revocation_checked: bool = False

    @classmethod
    def from_claims(cls, claims: Claims, *, simulated: bool) -> VerifiedEvidence:
        return cls(
            platform=claims.platform,
            simulated=simulated,
            measurement=claims.measurements.get(_PRIMARY_MEASUREMENT.get(claims.platform, ""), b""),
            report_data=claims.report_data,
            host_data=claims.host_data,
            debug=claims.debug,
            tcb=dict(claims.tcb),
            tcb_status=claims.tcb_status,
            advisory_ids=claims.advisory_ids,
            measurements=dict(claims.measurements),
            signing_key=claims.signing_key,
            root=claims.root,
            fields=dict(claims.fields),
            revocation_checked=claims.revocation_checked,
        )

    def to_json(self) -> dict[str, Any]:
        """The claims as JSON (bytes as lowercase hex)."""
        return {
            "platform": self.platform,
            "simulated": self.simulated,
            "measurement": self.measurement.hex(),
            "measurements": _jsonable(self.measurements),
            "report_data": self.report_data.hex(),
            "host_data": self.host_data.hex(),
            "debug": self.debug,
            "tcb": dict(self.tcb),
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "signing_key": self.signing_key,
            "root": self.root,
            "fields": _jsonable(self.fields),
            "revocation_checked": self.revocation_checked,
        }


def _additional_roots(policy: AttestationPolicy) -> tuple[bytes, ...]:
    if not policy.allow_simulated or policy.simulated_root_pem is None:
        return ()
    return tuple(split_certificates(policy.simulated_root_pem))


def check_evidence(
    evidence: Evidence,
    policy: AttestationPolicy,
    *,
    report_data: bytes | None,
    at: datetime | None = None,
) -> tuple[VerifiedEvidence, list[str]]:
    """Authenticate *evidence* and list every policy check it fails.

    Raises for evidence that does not parse or is not authentic; returns the
    claims together with the (possibly empty) list of policy failures, so a
    caller such as the CLI can show claims of rejected evidence.
    ``report_data=None`` skips the REPORT_DATA check: inspection only.
    """
    if report_data is not None and len(report_data) != REPORT_DATA_SIZE:
        raise ConfigurationError(
            f"expected report data must be {REPORT_DATA_SIZE} bytes, got {len(report_data)}"
        )
    when = at if at is not None else datetime.now(UTC)
    if when.tzinfo is None:
        raise ConfigurationError("the verification time must be timezone-aware")
    if not isinstance(evidence, Evidence):
        raise EvidenceFormatError("not an Evidence object")
    if evidence.simulated and not policy.allow_simulated:
        raise PolicyViolation(
            "the evidence comes from a simulated TEE and the policy does not allow simulation",
            failures=[
                "simulated: got evidence from a simulated TEE, expected hardware evidence"
                " (allow_simulated is false)"
            ],
        )
    if evidence.simulated and policy.simulated_root_pem is None:
        raise PolicyViolation(
            "the policy allows simulated evidence but names no simulated root",
            failures=["simulated_root: got none, expected the simulated TEE's root certificate"],
        )
    verifier = verifier_for(evidence.platform)
    try:
        claims = verifier.verify(
            evidence.report,
            evidence.certificates,
            evidence.collateral,
            at=when,
            additional_roots=_additional_roots(policy),
        )
    except Error:
        raise
    except Exception as exc:
        # A verifier must raise AttestationError for bad evidence; anything
        # else escaping (say AttributeError from asn1crypto) is a defect, and
        # still the evidence is refused, with a message that quotes no input.
        _log.exception("the %s verifier failed unexpectedly", evidence.platform)
        raise EvidenceFormatError(
            f"the {evidence.platform} evidence could not be verified",
            failures=[f"evidence: verifier error ({type(exc).__name__})"],
        ) from exc
    if evidence.simulated and not claims.simulated:
        # Marked simulated yet chained to a vendor root: judge it as simulated
        # (the stricter reading) rather than trusting the marker either way.
        claims = replace(claims, simulated=True)
    simulated = claims.simulated
    failures = claim_failures(claims, policy, report_data=report_data)
    if simulated and not failures:
        _log.warning(
            "accepted evidence from a SIMULATED TEE: it gives no confidentiality and no"
            " integrity against the operator"
        )
    return VerifiedEvidence.from_claims(claims, simulated=simulated), failures


def verify_evidence(
    evidence: Evidence,
    policy: AttestationPolicy,
    *,
    report_data: bytes,
    at: datetime | None = None,
) -> VerifiedEvidence:
    """Parse, authenticate and validate *evidence* against *policy*.

    Authenticity: the signature and the certificate chain up to the pinned
    vendor root, or up to ``policy.simulated_root`` only when
    ``policy.allow_simulated``; validity at *at* (default: now). Claims:
    every policy field, and REPORT_DATA equal to *report_data* (64 bytes,
    computed by the caller). Raises :class:`~cleanroom.errors.EvidenceFormatError`,
    :class:`~cleanroom.errors.EvidenceSignatureError` or
    :class:`~cleanroom.errors.PolicyViolation`, whose ``failures`` list every
    failed check as ``FIELD: got X, expected Y``.
    """
    if not isinstance(report_data, bytes | bytearray):
        raise ConfigurationError("report_data must be bytes")
    verified, failures = check_evidence(evidence, policy, report_data=bytes(report_data), at=at)
    if failures:
        raise PolicyViolation(
            f"the {verified.platform} evidence breaks the attestation policy"
            f" ({len(failures)} failed check{'s' if len(failures) != 1 else ''})",
            failures=failures,
        )
    return verified
