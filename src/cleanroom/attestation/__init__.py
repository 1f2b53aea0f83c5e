"""Remote attestation: evidence, the attestation policy, and its verification.

Three stages per platform (parse, verify authenticity, validate claims), one
verifier interface (:mod:`.platform`), one registry (:mod:`.registry`), and
one policy for every platform (:mod:`.policy`). Evidence comes from TEE
hardware through :mod:`.providers`, or from the simulated TEE
(:mod:`.simulated`), which gives no confidentiality.
"""

from cleanroom.attestation.evidence import Evidence
from cleanroom.attestation.policy import AttestationPolicy
from cleanroom.attestation.verifier import VerifiedEvidence, verify_evidence

__all__ = ["AttestationPolicy", "Evidence", "VerifiedEvidence", "verify_evidence"]
