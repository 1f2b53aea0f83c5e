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
    check_crl,
    check_not_revoked,
    common_name,
    p256_public_key,
    select_anchor,
    verify_chain,
    verify_raw_signature,
)
from cleanroom.attestation.dcap.collateral import Collateral
from cleanroom.attestation.dcap.identity import (
    EnclaveIdentity,
    IdentityTcbLevel,
    TcbInfo,
    parse_enclave_identity,
    parse_tcb_info,
)
from cleanroom.attestation.dcap.pck import PckExtensions, load_pem_chain, parse_pck_extensions
from cleanroom.attestation.dcap.quote import Quote
from cleanroom.attestation.dcap.structs import EnclaveReport, TdReport
from cleanroom.attestation.dcap.tcb import (
    TcbEvaluation,
    evaluate_tcb,
    find_module_identity,
    qe_identity_level,
)
from cleanroom.errors import ConfigurationError, EvidenceFormatError, EvidenceSignatureError

__all__ = ["VerifiedQuote", "verify_quote", "verify_quote_signatures"]

_PCK_CN = "Intel SGX PCK Certificate"
_TCB_SIGNING_CN = "Intel SGX TCB Signing"
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


def _check_window(issue: datetime, next_update: datetime, at: datetime, what: str) -> None:
    if not issue <= at <= next_update:
        raise EvidenceSignatureError(
            f"{what} is not current at the verification time",
            failures=[
                f"{what}: time {at.isoformat()} is outside issueDate..nextUpdate "
                f"{issue.isoformat()}..{next_update.isoformat()}"
            ],
        )


def _signing_chain(
    chain: Sequence[x509.Certificate],
    anchor: TrustAnchor,
    root_crl: x509.CertificateRevocationList,
    at: datetime,
    what: str,
) -> x509.Certificate:
    """Verify a ``TCB Signing -> root`` issuer chain; return the signing cert."""
    if len(chain) != 2:
        raise EvidenceSignatureError(
            f"{what} must hold the TCB Signing certificate and the root",
            failures=[f"{what}: got {len(chain)} certificates, expected 2"],
        )
    select_anchor(chain[1], anchor.certificate, (), what)
    if common_name(chain[0].subject) != _TCB_SIGNING_CN:
        raise EvidenceSignatureError(
            f"{what} does not start with the TCB Signing certificate",
            failures=[
                f"{what} signer CN: got {common_name(chain[0].subject)!r}, "
                f"expected {_TCB_SIGNING_CN!r}"
            ],
        )
    verify_chain(chain, anchor, at, (f"{what} signing certificate", f"{what} root"))
    check_not_revoked(root_crl, chain[0], f"{what} signing certificate")
    return chain[0]


def _check_collateral_crls(
    collateral: Collateral,
    signatures: _QuoteSignatures,
    at: datetime,
) -> None:
    pck, intermediate, _root = signatures.pck_chain
    anchor = signatures.anchor
    # 4.1.2.4.5: the root CA CRL is signed by the root and current.
    check_crl(collateral.root_ca_crl, anchor.certificate, at, "root CA CRL")
    check_not_revoked(collateral.root_ca_crl, intermediate, "PCK CA certificate")
    # 4.1.2.4.6: the PCK CRL comes from the CA that issued this PCK
    # (Platform or Processor CA), and its issuer chain ends at the same root.
    issuer_chain = collateral.pck_crl_issuer_chain
    if len(issuer_chain) != 2:
        raise EvidenceSignatureError(
            "PCK CRL issuer chain must hold the PCK CA and the root",
            failures=[f"pck_crl_issuer_chain: got {len(issuer_chain)} certificates, expected 2"],
        )
    select_anchor(issuer_chain[1], anchor.certificate, (), "PCK CRL issuer chain")
    verify_chain(issuer_chain, anchor, at, ("PCK CRL issuer certificate", "PCK CRL issuer root"))
    if issuer_chain[0].subject != intermediate.subject or (
        issuer_chain[0].public_key() != intermediate.public_key()
    ):
        raise EvidenceSignatureError(
            "PCK CRL is not from the CA that issued the PCK",
            failures=[
                f"PCK CRL issuer: got {issuer_chain[0].subject.rfc4514_string()!r}, expected the "
                f"PCK's issuer {intermediate.subject.rfc4514_string()!r} with the same key"
            ],
        )
    check_crl(collateral.pck_crl, intermediate, at, "PCK CRL")
    # 4.1.2.4.7: the PCK itself is not revoked.
    check_not_revoked(collateral.pck_crl, pck, "PCK certificate")


def _check_tcb_info(
    collateral: Collateral,
    anchor: TrustAnchor,
    quote: Quote,
    pck: PckExtensions,
    at: datetime,
) -> TcbInfo:
    signer = _signing_chain(
        collateral.tcb_info_issuer_chain,
        anchor,
        collateral.root_ca_crl,
        at,
        "TCB Info issuer chain",
    )
    verify_raw_signature(
        signer.public_key(),
        collateral.tcb_info_signature,
        collateral.tcb_info_json,
        "tcbInfo signature",
    )
    tcb_info = parse_tcb_info(collateral.tcb_info_json)
    _check_window(tcb_info.issue_date, tcb_info.next_update, at, "tcbInfo")
    failures: list[str] = []
    # 4.1.2.4.9: TCB Info for the quote's TEE.
    expected_id = "TDX" if quote.is_tdx else "SGX"
    if tcb_info.id != expected_id:
        failures.append(f"tcbInfo.id: got {tcb_info.id!r}, expected {expected_id!r}")
    # 4.1.2.4.10: for this platform model and PCE.
    if tcb_info.fmspc != pck.FMSPC:
        failures.append(
            f"tcbInfo.fmspc: got {tcb_info.fmspc.hex()}, expected the PCK's FMSPC {pck.FMSPC.hex()}"
        )
    if tcb_info.pce_id != pck.PCEID:
        failures.append(
            f"tcbInfo.pceId: got {tcb_info.pce_id.hex()}, "
            f"expected the PCK's PCE-ID {pck.PCEID.hex()}"
        )
    if failures:
        raise EvidenceSignatureError("tcbInfo does not belong to this quote", failures=failures)
    return tcb_info


def _check_qe_identity(
    collateral: Collateral,
    anchor: TrustAnchor,
    quote: Quote,
    at: datetime,
) -> tuple[EnclaveIdentity, IdentityTcbLevel]:
    signer = _signing_chain(
        collateral.qe_identity_issuer_chain,
        anchor,
        collateral.root_ca_crl,
        at,
        "QE Identity issuer chain",
    )
    verify_raw_signature(
        signer.public_key(),
        collateral.qe_identity_signature,
        collateral.qe_identity_json,
        "enclaveIdentity signature",
    )
    identity = parse_enclave_identity(collateral.qe_identity_json)
    _check_window(identity.issue_date, identity.next_update, at, "enclaveIdentity")
    qe: EnclaveReport = quote.qe_report
    failures: list[str] = []
    # 4.1.2.4.14: the identity of the right quoting enclave.
    expected_id = "TD_QE" if quote.is_tdx else "QE"
    if identity.id != expected_id:
        failures.append(f"enclaveIdentity.id: got {identity.id!r}, expected {expected_id!r}")
    # 4.1.2.9.5-8: the QE report matches the identity.
    misc = qe.MISCSELECT.to_bytes(4, "little")
    masked_misc = bytes(a & b for a, b in zip(misc, identity.miscselect_mask, strict=True))
    if masked_misc != identity.miscselect:
        failures.append(
            f"QE MISCSELECT & miscselectMask: got {masked_misc.hex()}, "
            f"expected {identity.miscselect.hex()}"
        )
    masked_attributes = bytes(
        a & b for a, b in zip(qe.ATTRIBUTES, identity.attributes_mask, strict=True)
    )
    if masked_attributes != identity.attributes:
        failures.append(
            f"QE ATTRIBUTES & attributesMask: got {masked_attributes.hex()}, "
            f"expected {identity.attributes.hex()}"
        )
    if identity.mrsigner != qe.MRSIGNER:
        failures.append(f"QE MRSIGNER: got {qe.MRSIGNER.hex()}, expected {identity.mrsigner.hex()}")
    if identity.isvprodid != qe.ISVPRODID:
        failures.append(f"QE ISVPRODID: got {qe.ISVPRODID}, expected {identity.isvprodid}")
    if failures:
        raise EvidenceSignatureError(
            "the quoting enclave does not match Intel's QE identity", failures=failures
        )
    # 4.1.2.9.9: the QE's TCB status by its ISVSVN.
    level = qe_identity_level(identity.tcb_levels, qe.ISVSVN, "enclaveIdentity.tcbLevels")
    return identity, level


def _check_tdx_module(tcb_info: TcbInfo, body: TdReport) -> None:
    """4.1.2.4.11: MRSIGNERSEAM and SEAMATTRIBUTES match the TDX module identity."""
    module = tcb_info.tdx_module
    assert module is not None
    where = "tdxModule"
    major = body.TEE_TCB_SVN[1]
    if major > 0:
        identity = find_module_identity(tcb_info, major)
        if identity is None:
            raise EvidenceSignatureError(
                "TDX module identity mismatch",
                failures=[
                    f"tdxModuleIdentities: no entry TDX_{major:02X} for TEE_TCB_SVN[1] = {major}"
                ],
            )
        module = identity.module
        where = f"tdxModuleIdentities[{identity.id}]"
    failures: list[str] = []
    if module.mrsigner != body.MRSIGNERSEAM:
        failures.append(
            f"MRSIGNERSEAM: got {body.MRSIGNERSEAM.hex()}, expected {where}.mrsigner "
            f"{module.mrsigner.hex()}"
        )
    masked = bytes(a & b for a, b in zip(body.SEAMATTRIBUTES, module.attributes_mask, strict=True))
    if masked != module.attributes:
        failures.append(
            f"SEAMATTRIBUTES & attributesMask: got {masked.hex()}, expected {where}.attributes "
            f"{module.attributes.hex()}"
        )
    if failures:
        raise EvidenceSignatureError("TDX module identity mismatch", failures=failures)


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
    _check_collateral_crls(collateral, signatures, at)
    _check_quote_signatures(quote, signatures.pck_chain[0])
    tcb_info = _check_tcb_info(collateral, signatures.anchor, quote, signatures.pck, at)
    identity, qe_level = _check_qe_identity(collateral, signatures.anchor, quote, at)
    body = quote.body
    if isinstance(body, TdReport):
        _check_tdx_module(tcb_info, body)
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
