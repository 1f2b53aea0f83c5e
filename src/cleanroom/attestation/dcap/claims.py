"""Claims of a verified DCAP quote, by specification name, for the policy stage.

TDX names follow the TDX module ABI "TDREPORT_STRUCT" / TD quote body
(MRTD, RTMR0-3, MRCONFIGID, MROWNER, MROWNERCONFIG, TDATTRIBUTES, XFAM,
TEE_TCB_SVN, MRSEAM, MRSIGNERSEAM, SEAMATTRIBUTES, REPORTDATA); SGX names
follow "sgx_report_body_t" (MRENCLAVE, MRSIGNER, ISVPRODID, ISVSVN,
ATTRIBUTES, MISCSELECT, CPUSVN, CONFIGID, CONFIGSVN, ISVFAMILYID,
ISVEXTPRODID, REPORTDATA).

``tcb`` holds the values the TCB status was computed from: ``PCESVN`` and
``SGXTCBCOMP01``..``SGXTCBCOMP16`` from the PCK certificate (Intel PCK
profile names), ``QE_ISVSVN``, and for TDX ``TDXTCBCOMP01``..``TDXTCBCOMP16``
(the bytes of TEE_TCB_SVN).
"""

from __future__ import annotations

from typing import Any

from cleanroom.attestation.dcap.structs import EnclaveReport, TdReport
from cleanroom.attestation.dcap.verify import VerifiedQuote
from cleanroom.attestation.platform import Claims
from cleanroom.errors import EvidenceFormatError

__all__ = ["sgx_claims", "tdx_claims"]


def _tcb(verified: VerifiedQuote) -> dict[str, int]:
    tcb = {f"SGXTCBCOMP{i + 1:02d}": svn for i, svn in enumerate(verified.pck.CPUSVN_COMPONENTS)}
    tcb["PCESVN"] = verified.pck.PCESVN
    tcb["QE_ISVSVN"] = verified.quote.qe_report.ISVSVN
    return tcb


def _common_fields(verified: VerifiedQuote) -> dict[str, Any]:
    header = verified.quote.header
    evaluation = verified.tcb
    fields: dict[str, Any] = {
        "VERSION": header.VERSION,
        "TEE_TYPE": header.TEE_TYPE,
        "QE_VENDOR_ID": header.QE_VENDOR_ID,
        "USER_DATA": header.USER_DATA,
        "FMSPC": verified.pck.FMSPC.hex(),
        "PCEID": verified.pck.PCEID.hex(),
        "PLATFORM_TCB_STATUS": evaluation.platform_status,
        "TCB_DATE": evaluation.platform_tcb_date,
        "QE_TCB_STATUS": evaluation.qe_status,
        "TCB_EVALUATION_DATA_NUMBER": verified.tcb_info.tcb_evaluation_data_number,
        "COLLATERAL_NEXT_UPDATE": verified.collateral_expires.isoformat(),
    }
    if evaluation.tdx_module_status is not None:
        fields["TDX_MODULE_TCB_STATUS"] = evaluation.tdx_module_status
    return fields


def tdx_claims(verified: VerifiedQuote) -> Claims:
    """Claims of a verified TDX quote."""
    body = verified.quote.body
    if not isinstance(body, TdReport):
        raise EvidenceFormatError("not a TD quote", failures=["body: expected a TD report"])
    tcb = _tcb(verified)
    tcb.update({f"TDXTCBCOMP{i + 1:02d}": svn for i, svn in enumerate(body.TEE_TCB_SVN)})
    fields = _common_fields(verified)
    fields.update(
        {
            "MRCONFIGID": body.MRCONFIGID,
            "MROWNER": body.MROWNER,
            "MROWNERCONFIG": body.MROWNERCONFIG,
            "TDATTRIBUTES": body.TDATTRIBUTES,
            "XFAM": body.XFAM,
            "TEE_TCB_SVN": body.TEE_TCB_SVN,
            "MRSIGNERSEAM": body.MRSIGNERSEAM,
            "SEAMATTRIBUTES": body.SEAMATTRIBUTES,
            "BODY_TYPE": verified.quote.body_type,
        }
    )
    if body.TEE_TCB_SVN2 is not None and body.MRSERVICETD is not None:
        fields["TEE_TCB_SVN2"] = body.TEE_TCB_SVN2
        fields["MRSERVICETD"] = body.MRSERVICETD
    return Claims(
        platform="tdx",
        measurements={
            "MRTD": body.MRTD,
            "RTMR0": body.RTMR0,
            "RTMR1": body.RTMR1,
            "RTMR2": body.RTMR2,
            "RTMR3": body.RTMR3,
            "MRSEAM": body.MRSEAM,
        },
        report_data=body.REPORTDATA,
        host_data=body.MRCONFIGID,
        debug=body.debug,
        tcb=tcb,
        tcb_status=verified.tcb.status,
        advisory_ids=verified.tcb.advisory_ids,
        signing_key="pck",
        root=verified.anchor.name,
        simulated=verified.anchor.simulated,
        fields=fields,
        # The PCK and root CA CRLs are required collateral, checked current.
        revocation_checked=True,
    )


def sgx_claims(verified: VerifiedQuote) -> Claims:
    """Claims of a verified SGX quote."""
    body = verified.quote.body
    if not isinstance(body, EnclaveReport):
        raise EvidenceFormatError(
            "not an SGX enclave quote", failures=["body: expected an enclave report"]
        )
    fields = _common_fields(verified)
    fields.update(
        {
            "MRENCLAVE": body.MRENCLAVE,
            "MRSIGNER": body.MRSIGNER,
            "ISVPRODID": body.ISVPRODID,
            "ISVSVN": body.ISVSVN,
            "ATTRIBUTES": body.ATTRIBUTES,
            "MISCSELECT": body.MISCSELECT,
            "CPUSVN": body.CPUSVN,
            "CONFIGID": body.CONFIGID,
            "CONFIGSVN": body.CONFIGSVN,
            "ISVFAMILYID": body.ISVFAMILYID,
            "ISVEXTPRODID": body.ISVEXTPRODID,
        }
    )
    return Claims(
        platform="sgx",
        measurements={"MRENCLAVE": body.MRENCLAVE, "MRSIGNER": body.MRSIGNER},
        report_data=body.REPORTDATA,
        host_data=body.CONFIGID,
        debug=body.debug,
        tcb=_tcb(verified),
        tcb_status=verified.tcb.status,
        advisory_ids=verified.tcb.advisory_ids,
        signing_key="pck",
        root=verified.anchor.name,
        simulated=verified.anchor.simulated,
        fields=fields,
        # The PCK and root CA CRLs are required collateral, checked current.
        revocation_checked=True,
    )
