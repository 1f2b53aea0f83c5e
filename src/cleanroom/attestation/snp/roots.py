"""AMD's pinned root keys (ARKs), one per product line, shipped with the package.

The PEM files under ``roots/`` are AMD's public self-signed ARK certificates
for Milan, Genoa and Turin, as served by the AMD Key Distribution Service
(``https://kdsintf.amd.com/vcek/v1/{product}/cert_chain``). An ARK that
arrives with evidence is never trusted by itself: it is used only when it is
byte-equal to the one pinned here.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.snp.certs import AmdCertificate, check_signed_by, parse_certificate
from cleanroom.errors import ConfigurationError, EvidenceSignatureError

__all__ = ["PRODUCTS", "pinned_ark"]

PRODUCTS = ("Milan", "Genoa", "Turin")


@cache
def pinned_ark(product: str) -> AmdCertificate:
    """The pinned ARK of *product*; :class:`ConfigurationError` if it is unknown."""
    if product not in PRODUCTS:
        raise ConfigurationError(f"no pinned AMD root for product {product!r}")
    data = (
        resources.files("cleanroom.attestation.snp")
        .joinpath("roots", f"ark-{product.lower()}.pem")
        .read_bytes()
    )
    (der,) = split_certificates(data)
    ark = parse_certificate(der)
    if ark.subject_cn != f"ARK-{product}":
        raise ConfigurationError(f"the pinned ARK file for {product} names {ark.subject_cn!r}")
    try:
        check_signed_by(ark, ark)
    except EvidenceSignatureError as exc:
        raise ConfigurationError(f"the pinned ARK for {product} is not self-signed") from exc
    return ark
