"""AMD certificate revocation lists (VCEK specification 57230, "CRL").

KDS publishes one CRL per product line and key type
(``/vcek/v1/{product}/crl``, ``/vlek/v1/{product}/crl``), DER, signed by the
ARK with RSASSA-PSS SHA-384. It lists revoked ASK/ASVK (and VEK) serial
numbers. Verification is offline: CRLs are checked when they are supplied
(SEV-SNP ``collateral["amd_crls"]``), never fetched here
(:mod:`cleanroom.attestation.fetch` fetches them on the verifier's side).

The evidence comes from the host being verified, which can leave a CRL out;
:func:`check_revocation` therefore also says whether a current CRL of the
root was there, and the attestation policy (``snp_require_crl``, on by
default) refuses hardware evidence without one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asn1crypto.crl
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cleanroom.attestation.snp.certs import AmdCertificate
from cleanroom.errors import EvidenceFormatError, EvidenceSignatureError

__all__ = ["COLLATERAL_KEY", "AmdCrl", "check_revocation", "crls_from_collateral", "parse_crl"]

COLLATERAL_KEY = "amd_crls"
_MAX_CRLS = 8


@dataclass(frozen=True)
class AmdCrl:
    issuer: bytes
    tbs: bytes
    signature: bytes
    algorithm: tuple[str, str | None, str | None, int | None]
    this_update: datetime
    next_update: datetime | None
    revoked: frozenset[int]


def parse_crl(der: bytes) -> AmdCrl:
    """Parse one DER CRL; :class:`EvidenceFormatError` if it does not parse."""
    try:
        crl = asn1crypto.crl.CertificateList.load(bytes(der), strict=True)
        tbs = crl["tbs_cert_list"]
        algorithm = crl["signature_algorithm"]
        name = str(algorithm["algorithm"].native)
        params = algorithm["parameters"].native if name == "rsassa_pss" else None
        revoked = tbs["revoked_certificates"].native or []
        next_update = tbs["next_update"].native
        return AmdCrl(
            issuer=tbs["issuer"].dump(),
            tbs=tbs.dump(),
            signature=bytes(crl["signature"].native),
            algorithm=(
                name,
                str(params["hash_algorithm"]["algorithm"]) if params else None,
                str(params["mask_gen_algorithm"]["parameters"]["algorithm"]) if params else None,
                int(params["salt_length"]) if params else None,
            ),
            this_update=tbs["this_update"].native,
            next_update=next_update,
            revoked=frozenset(int(entry["user_certificate"]) for entry in revoked),
        )
    except Exception as exc:
        # asn1crypto parses lazily and has no exception base class: a wrong tag deep
        # in the DER (say in the PSS parameters) surfaces as AttributeError and the like.
        raise EvidenceFormatError(
            "an AMD CRL does not parse", failures=["CRL: not a valid DER CRL"]
        ) from exc


def crls_from_collateral(collateral: Mapping[str, Any]) -> list[AmdCrl]:
    """The CRLs in ``collateral["amd_crls"]`` (base64 DER strings)."""
    entries = collateral.get(COLLATERAL_KEY, [])
    if not isinstance(entries, list) or len(entries) > _MAX_CRLS:
        raise EvidenceFormatError(f"collateral {COLLATERAL_KEY} must be a short list")
    out = []
    for entry in entries:
        if not isinstance(entry, str):
            raise EvidenceFormatError(f"collateral {COLLATERAL_KEY} must hold base64 strings")
        try:
            out.append(parse_crl(base64.b64decode(entry, validate=True)))
        except (binascii.Error, ValueError) as exc:
            raise EvidenceFormatError(f"collateral {COLLATERAL_KEY} is not base64") from exc
    return out


def check_revocation(
    crls: Sequence[AmdCrl],
    anchor: AmdCertificate,
    chain: Sequence[AmdCertificate],
    at: datetime,
) -> bool:
    """Raise :class:`EvidenceSignatureError` if a CRL issued by *anchor* is
    forged or issued after *at*, or lists a certificate of *chain*. CRLs of
    other issuers (other product lines) are ignored.

    Returns whether *chain* was checked against at least one authentic CRL of
    *anchor* that is current at *at* and has a nextUpdate. An expired CRL, or
    one without nextUpdate, is still applied but does not count: a newer one
    may revoke more, and one without nextUpdate never goes stale, so an old
    copy could be replayed forever. Evidence that carried a CRL thus stays
    verifiable once that CRL expires, with a newer CRL added or under a
    policy that does not require one.
    """
    failures: list[str] = []
    checked = False
    for crl in crls:
        if crl.issuer != anchor.subject:
            continue
        if crl.algorithm != ("rsassa_pss", "sha384", "sha384", 48):
            failures.append(f"CRL of {anchor.subject_cn}: not signed with RSASSA-PSS SHA-384")
            continue
        key = anchor.public_key
        try:
            if not isinstance(key, rsa.RSAPublicKey):
                raise InvalidSignature
            key.verify(
                crl.signature,
                crl.tbs,
                padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
                hashes.SHA384(),
            )
        except InvalidSignature:
            failures.append(f"CRL of {anchor.subject_cn}: signature does not verify")
            continue
        if at < crl.this_update:
            failures.append(
                f"CRL of {anchor.subject_cn}: issued after {at.isoformat()} (thisUpdate"
                f" {crl.this_update.isoformat()})"
            )
            continue
        # An expired CRL still counts against what it revokes (a revocation is never
        # undone) but not as a check: a newer one may revoke more.
        current = crl.next_update is not None and at <= crl.next_update
        checked = checked or current
        for cert in chain:
            if cert.serial_number in crl.revoked:
                failures.append(
                    f"{cert.subject_cn}: serial {cert.serial_number:#x} is revoked by"
                    f" {anchor.subject_cn}"
                )
    if failures:
        raise EvidenceSignatureError(
            "an AMD certificate is revoked or a CRL is bad", failures=failures
        )
    return checked
