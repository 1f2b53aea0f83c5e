"""The pinned Intel SGX Root CA, the one trust anchor of Intel DCAP.

The certificate ships as package data (``intel_sgx_root_ca.pem``, as published
at https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.pem);
its SHA-256 fingerprint is also pinned here so that a changed data file is
refused rather than trusted.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from cleanroom.errors import ConfigurationError

__all__ = ["INTEL_SGX_ROOT_CA_SHA256", "intel_sgx_root_ca"]

INTEL_SGX_ROOT_CA_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"


@cache
def intel_sgx_root_ca() -> x509.Certificate:
    """The pinned Intel SGX Root CA certificate (CN "Intel SGX Root CA", P-256)."""
    pem = files(__package__).joinpath("intel_sgx_root_ca.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    if cert.fingerprint(hashes.SHA256()).hex() != INTEL_SGX_ROOT_CA_SHA256:
        raise ConfigurationError(
            "the packaged Intel SGX Root CA does not match its pinned fingerprint"
        )
    return cert
