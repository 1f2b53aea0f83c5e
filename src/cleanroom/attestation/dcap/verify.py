"""Authenticate a parsed DCAP quote with its collateral, at an injected time.

The steps follow Intel's Quote Verification Library (section numbers of
"Intel SGX/TDX DCAP Quote Verification", 4.1.2.4.x, in comments) and apply to
SGX and TDX alike; only the TCB Info ``id``, the QE identity ``id`` and the
TDX module checks differ.

Every check raises on failure: ``EvidenceSignatureError`` for anything about
authenticity (signatures, chains, revocation, validity windows, identities),
``EvidenceFormatError`` for collateral that does not parse, and
``PolicyViolation`` when Intel's collateral lists no TCB level for the
platform (authentic, but not supported).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from cleanroom.attestation.dcap.chain import (
    TrustAnchor,
    common_name,
    p256_public_key,
    select_anchor,
    verify_chain,
    verify_raw_signature,
)
from cleanroom.attestation.dcap.collateral import Collateral
from cleanroom.attestation.dcap.collateral_checks import (
    check_collateral_crls,
    check_qe_identity,
    check_tcb_info,
    check_tdx_module,
)
from cleanroom.attestation.dcap.identity import EnclaveIdentity, TcbInfo
from cleanroom.attestation.dcap.pck import PckExtensions, load_pem_chain, parse_pck_extensions
from cleanroom.attestation.dcap.quote import Quote
from cleanroom.attestation.dcap.structs import TdReport
from cleanroom.attestation.dcap.tcb import TcbEvaluation, evaluate_tcb
from cleanroom.errors import ConfigurationError, EvidenceFormatError, EvidenceSignatureError

__all__ = ["VerifiedQuote", "verify_quote", "verify_quote_signatures"]

_PCK_CN = "Intel SGX PCK Certificate"
_PCK_CA_CNS = ("Intel SGX PCK Platform CA", "Intel SGX PCK Processor CA")


@dataclass(frozen=True, slots=True)
class VerifiedQuote:
    """A quote whose signatures, chains, collateral and TCB all checked out."""

    quote: Quote
    pck: PckExtensions
    anchor: TrustAnchor
    tcb: TcbEvaluation
    tcb_info: TcbInfo
    qe_identity: EnclaveIdentity
    collateral_expires: datetime


@dataclass(frozen=True, slots=True)
class _QuoteSignatures:
    pck: PckExtensions
    pck_chain: tuple[x509.Certificate, ...]
    anchor: TrustAnchor


def _aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise ConfigurationError("the verification time must be timezone-aware (UTC)")


def _check_pck_chain(
    quote: Quote, pinned: x509.Certificate, additional: Sequence[x509.Certificate], at: datetime
) -> _QuoteSignatures:
    chain = load_pem_chain(quote.pck_chain_pem, "PCK certificate chain")
    if len(chain) != 3:
        raise EvidenceFormatError(
            "PCK certificate chain must hold the PCK, its CA and the root",
            failures=[f"PCK certificate chain: got {len(chain)} certificates, expected 3"],
        )
    pck, intermediate, root = chain
    failures: list[str] = []
    if _PCK_CN not in common_name(pck.subject):
        failures.append(f"PCK subject CN: got {common_name(pck.subject)!r}, expected {_PCK_CN!r}")
    if common_name(intermediate.subject) not in _PCK_CA_CNS:
        failures.append(
            f"PCK CA subject CN: got {common_name(intermediate.subject)!r}, "
            f"expected one of {list(_PCK_CA_CNS)}"
        )
    if failures:
        raise EvidenceSignatureError(
            "PCK certificate chain has unexpected subjects", failures=failures
        )
    # 4.1.2.4.2-3: the chain must end at the pinned root and verify link by link.
    anchor = select_anchor(root, pinned, additional, "PCK certificate chain")
    verify_chain(
        chain, anchor, at, ("PCK certificate", "PCK CA certificate", "root CA certificate")
    )
    return _QuoteSignatures(parse_pck_extensions(pck), (pck, intermediate, root), anchor)


def _check_quote_signatures(quote: Quote, pck_cert: x509.Certificate) -> None:
    # 4.1.2.4.12: the QE report is signed by the PCK.
    verify_raw_signature(
        pck_cert.public_key(), quote.qe_report_signature, quote.qe_report.raw, "QE report signature"
    )
    # 4.1.2.4.13: the QE binds the attestation key (and its auth data) in its
    # REPORTDATA: SHA-256(attestation key || QE auth data) || 32 zero bytes.
    expected = hashlib.sha256(quote.attest_key + quote.qe_auth_data).digest() + bytes(32)
    if expected != quote.qe_report.REPORTDATA:
        raise EvidenceSignatureError(
            "QE report does not bind the attestation key",
            failures=[
                f"QE REPORTDATA: got {quote.qe_report.REPORTDATA.hex()}, expected "
                f"SHA-256(attestation key || QE auth data) || zeros = {expected.hex()}"
            ],
        )
    # 4.1.2.4.16: the quote (header and body) is signed by the attestation key.
    attest_key = p256_public_key(quote.attest_key, "attestation key")
    verify_raw_signature(attest_key, quote.signature, quote.signed_data, "quote signature")


def verify_quote_signatures(
    quote: Quote,
    *,
    at: datetime,
    pinned_root: x509.Certificate,
    additional_roots: Sequence[x509.Certificate] = (),
) -> tuple[PckExtensions, TrustAnchor]:
    """Check the PCK chain and the QE and quote signatures, without collateral.

    This proves the quote comes from a platform holding an Intel-certified
    PCK, but says nothing about revocation or the TCB: use
    :func:`verify_quote` for a decision.
    """
    _aware(at)
    checked = _check_pck_chain(quote, pinned_root, additional_roots, at)
    _check_quote_signatures(quote, checked.pck_chain[0])
    return checked.pck, checked.anchor


def verify_quote(
    quote: Quote,
    collateral: Collateral,
    *,
    at: datetime,
    pinned_root: x509.Certificate,
    additional_roots: Sequence[x509.Certificate] = (),
) -> VerifiedQuote:
    """Run every DCAP check on *quote* with *collateral* at time *at*.

    ``pinned_root`` is the trust anchor (the Intel SGX Root CA in
    production); a chain ending at one of ``additional_roots`` instead is
    accepted and marked simulated. Every collateral chain must end at the
    same anchor as the PCK chain.
    """
    _aware(at)
    signatures = _check_pck_chain(quote, pinned_root, additional_roots, at)
    check_collateral_crls(
        collateral, signatures.pck_chain[0], signatures.pck_chain[1], signatures.anchor, at
    )
    _check_quote_signatures(quote, signatures.pck_chain[0])
    tcb_info = check_tcb_info(collateral, signatures.anchor, quote, signatures.pck, at)
    identity, qe_level = check_qe_identity(collateral, signatures.anchor, quote, at)
    body = quote.body
    if isinstance(body, TdReport):
        check_tdx_module(tcb_info, body)
        evaluation = evaluate_tcb(
            tcb_info,
            signatures.pck.CPUSVN_COMPONENTS,
            signatures.pck.PCESVN,
            qe_level,
            body.TEE_TCB_SVN,
            body.TEE_TCB_SVN2,
        )
    else:
        evaluation = evaluate_tcb(
            tcb_info, signatures.pck.CPUSVN_COMPONENTS, signatures.pck.PCESVN, qe_level, None, None
        )
    expires = min(
        tcb_info.next_update,
        identity.next_update,
        *(
            crl.next_update_utc
            for crl in (collateral.pck_crl, collateral.root_ca_crl)
            if crl.next_update_utc
        ),
    )
    return VerifiedQuote(
        quote=quote,
        pck=signatures.pck,
        anchor=signatures.anchor,
        tcb=evaluation,
        tcb_info=tcb_info,
        qe_identity=identity,
        collateral_expires=expires,
    )
