"""Intel TDX: TD quotes v4 (TDX 1.0 body) and v5 (TDX 1.0 or 1.5 body)."""

from __future__ import annotations

from cleanroom.attestation.dcap.claims import tdx_claims
from cleanroom.attestation.dcap.structs import TEE_TYPE_TDX
from cleanroom.attestation.dcap.verifier import DcapVerifier
from cleanroom.attestation.dcap.verify import VerifiedQuote
from cleanroom.attestation.platform import Claims

__all__ = ["TdxVerifier"]


class TdxVerifier(DcapVerifier):
    """The ``"tdx"`` platform verifier (see :class:`DcapVerifier`)."""

    platform = "tdx"
    tee_type = TEE_TYPE_TDX
    versions = (4, 5)

    def describe(self, verified: VerifiedQuote) -> Claims:
        return tdx_claims(verified)
