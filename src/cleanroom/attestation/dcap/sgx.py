"""Intel SGX: enclave quotes v3 (and the v4/v5 framings of an SGX body)."""

from __future__ import annotations

from cleanroom.attestation.dcap.claims import sgx_claims
from cleanroom.attestation.dcap.structs import TEE_TYPE_SGX
from cleanroom.attestation.dcap.verifier import DcapVerifier
from cleanroom.attestation.dcap.verify import VerifiedQuote
from cleanroom.attestation.platform import Claims

__all__ = ["SgxVerifier"]


class SgxVerifier(DcapVerifier):
    """The ``"sgx"`` platform verifier (see :class:`DcapVerifier`)."""

    platform = "sgx"
    tee_type = TEE_TYPE_SGX
    versions = (3, 4, 5)

    def describe(self, verified: VerifiedQuote) -> Claims:
        return sgx_claims(verified)
