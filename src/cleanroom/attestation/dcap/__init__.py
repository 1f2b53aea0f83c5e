"""Intel DCAP attestation: TDX quotes v4/v5 and SGX quotes v3, verified offline.

Three stages, as everywhere in :mod:`cleanroom.attestation`:

* :func:`parse_quote` turns bytes into a typed :class:`Quote`
  (``EvidenceFormatError``);
* :func:`verify_quote` checks the PCK chain up to the pinned Intel SGX Root
  CA, both CRLs, the QE report signature and its binding of the attestation
  key, the quote signature, the TCB Info and QE Identity signatures and
  validity windows at an injected time, and evaluates the TCB status as
  Intel's Quote Verification Library does (``EvidenceSignatureError``;
  ``PolicyViolation`` when no TCB level matches);
* :class:`TdxVerifier` and :class:`SgxVerifier` implement
  :class:`~cleanroom.attestation.platform.PlatformVerifier` and return
  :class:`~cleanroom.attestation.platform.Claims` for the policy stage.
"""

from __future__ import annotations

from cleanroom.attestation.dcap.collateral import Collateral, collateral_from_mapping
from cleanroom.attestation.dcap.quote import Quote, parse_quote
from cleanroom.attestation.dcap.roots import intel_sgx_root_ca
from cleanroom.attestation.dcap.sgx import SgxVerifier
from cleanroom.attestation.dcap.tcb import TCB_STATUSES, TcbEvaluation
from cleanroom.attestation.dcap.tdx import TdxVerifier
from cleanroom.attestation.dcap.verify import VerifiedQuote, verify_quote, verify_quote_signatures

__all__ = [
    "TCB_STATUSES",
    "Collateral",
    "Quote",
    "SgxVerifier",
    "TcbEvaluation",
    "TdxVerifier",
    "VerifiedQuote",
    "collateral_from_mapping",
    "intel_sgx_root_ca",
    "parse_quote",
    "verify_quote",
    "verify_quote_signatures",
]
