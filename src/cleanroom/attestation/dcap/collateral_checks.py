"""Authenticate DCAP collateral and match it against a quote.

Steps of Intel's Quote Verification Library (4.1.2.4.5-11, 4.1.2.9) that
involve the collateral: CRLs and their issuer chains, the TCB Info and QE
Identity signatures by the TCB Signing certificate and their validity
windows, FMSPC / PCE-ID, the QE identity and the TDX module identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509

from cleanroom.attestation.dcap.chain import (
    TrustAnchor,
    check_crl,
    check_not_revoked,
    common_name,
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
from cleanroom.attestation.dcap.pck import PckExtensions
from cleanroom.attestation.dcap.quote import Quote
from cleanroom.attestation.dcap.structs import EnclaveReport, TdReport
from cleanroom.attestation.dcap.tcb import find_module_identity, qe_identity_level
from cleanroom.errors import EvidenceSignatureError

__all__ = [
    "check_collateral_crls",
    "check_qe_identity",
    "check_tcb_info",
    "check_tdx_module",
]

_TCB_SIGNING_CN = "Intel SGX TCB Signing"


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


def check_collateral_crls(
    collateral: Collateral,
    pck: x509.Certificate,
    intermediate: x509.Certificate,
    anchor: TrustAnchor,
    at: datetime,
) -> None:
    """Both CRLs are authentic and current; the PCK and its CA are not revoked."""
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


def check_tcb_info(
    collateral: Collateral,
    anchor: TrustAnchor,
    quote: Quote,
    pck: PckExtensions,
    at: datetime,
) -> TcbInfo:
    """The signed, current TCB Info for this quote's TEE, FMSPC and PCE."""
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


def check_qe_identity(
    collateral: Collateral,
    anchor: TrustAnchor,
    quote: Quote,
    at: datetime,
) -> tuple[EnclaveIdentity, IdentityTcbLevel]:
    """The signed, current QE identity, matched against the QE report; with
    the QE's TCB level."""
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


def check_tdx_module(tcb_info: TcbInfo, body: TdReport) -> None:
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
