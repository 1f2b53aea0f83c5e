"""SEV-SNP authenticity: the AMD certificate chain, the report signature, and
the binding of the report to its endorsement key.

Steps as in AMD's SEV-SNP ABI specification (56860), section "Attestation",
and the VCEK specification (57230):

1. parse the report (:mod:`.abi`) and read KEY_INFO.SIGNING_KEY (VCEK or VLEK;
   a report with no signing key is refused);
2. find the endorsement key certificate (VCEK/VLEK) and the product line, from
   the report's CPUID (v3+) or the certificate's productName, which must agree;
3. chain VEK -> ASK (VCEK) or ASVK (VLEK) -> the pinned ARK of that product
   (or a root the caller added, which marks the evidence as simulated), every
   link RSASSA-PSS SHA-384, every certificate valid at the injected time;
4. verify the report's ECDSA P-384 SHA-384 signature over bytes 0x000-0x29F;
5. REPORTED_TCB must equal the VEK's SPL extensions (Turin layout on Turin),
   and CHIP_ID the VCEK's hwID (first 8 bytes on Turin, the rest zero).

AMD CRLs are checked when supplied (``collateral={"amd_crls": [...]}``,
base64 DER); verification never fetches anything. Whether a current CRL of
the chain's root was checked is in :attr:`Claims.revocation_checked`; the
attestation policy refuses hardware evidence without one unless it opts out
(``snp_require_crl``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from cleanroom.attestation.platform import TCB_STATUS_NOT_APPLICABLE, Claims
from cleanroom.attestation.snp import abi
from cleanroom.attestation.snp.certs import AmdCertificate, check_signed_by, parse_certificate
from cleanroom.attestation.snp.crl import (
    COLLATERAL_KEY,
    AmdCrl,
    check_revocation,
    crls_from_collateral,
)
from cleanroom.attestation.snp.roots import PRODUCTS, pinned_ark
from cleanroom.errors import ConfigurationError, EvidenceFormatError, EvidenceSignatureError

__all__ = ["PLATFORM", "SnpVerifier", "claims_from_report"]

PLATFORM = "sev-snp"

_LEAF_CN = {abi.SIGNING_KEY_VCEK: "SEV-VCEK", abi.SIGNING_KEY_VLEK: "SEV-VLEK"}
_KEY_NAME = {abi.SIGNING_KEY_VCEK: "vcek", abi.SIGNING_KEY_VLEK: "vlek"}


def _intermediate_cn_ok(cn: str, signing_key: int, product: str | None) -> bool:
    """ASK CN is SEV-<product>; ASVK CN is SEV-VLEK-<product>."""
    if signing_key == abi.SIGNING_KEY_VLEK:
        return cn == f"SEV-VLEK-{product}" if product else cn.startswith("SEV-VLEK-")
    if product:
        return cn == f"SEV-{product}"
    return cn.startswith("SEV-") and not cn.startswith("SEV-VLEK-") and cn != "SEV-VCEK"


@lru_cache(maxsize=64)
def _check_chain_signatures(leaf: bytes, intermediate: bytes, root: bytes) -> None:
    """The three RSASSA-PSS checks, cached by certificate bytes: they do not
    depend on time, and a failure raises (exceptions are never cached)."""
    root_cert = parse_certificate(root)
    check_signed_by(root_cert, root_cert)
    check_signed_by(parse_certificate(intermediate), root_cert)
    check_signed_by(parse_certificate(leaf), parse_certificate(intermediate))


def _check_report_signature(report: abi.AttestationReport, leaf: AmdCertificate) -> None:
    key = leaf.public_key
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise EvidenceSignatureError(
            f"{leaf.subject_cn} does not hold an ECDSA P-384 key",
            failures=[f"{leaf.subject_cn}: key is not ECDSA P-384"],
        )
    signature = encode_dss_signature(report.SIGNATURE_R, report.SIGNATURE_S)
    try:
        key.verify(signature, report.signed_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise EvidenceSignatureError(
            "the SEV-SNP report signature does not verify",
            failures=[f"SIGNATURE: does not verify under the {leaf.subject_cn} key"],
        ) from exc


def _binding_failures(
    report: abi.AttestationReport, leaf: AmdCertificate, product: str
) -> list[str]:
    """REPORTED_TCB against the VEK's SPLs, CHIP_ID against the VCEK's hwID."""
    failures: list[str] = []
    reported = abi.decode_tcb(report.REPORTED_TCB, product).as_dict()
    spl = leaf.extensions.spl
    for name, value in reported.items():
        if name not in spl:
            failures.append(f"REPORTED_TCB.{name}: got {value}, expected the VEK SPL (missing)")
        elif spl[name] != value:
            failures.append(f"REPORTED_TCB.{name}: got {value}, expected {spl[name]} (VEK SPL)")
    if report.signing_key == abi.SIGNING_KEY_VCEK:
        hw_id = leaf.extensions.hw_id
        if hw_id is None:
            failures.append("CHIP_ID: the VCEK has no hwID extension")
        elif not any(report.CHIP_ID):
            failures.append(
                f"CHIP_ID: got zero (masked), expected {hw_id.hex()} (VCEK hwID);"
                " a masked chip id cannot be bound to the VCEK"
            )
        elif len(hw_id) == 8:
            # Turin hwIDs are 8 bytes; CHIP_ID carries them in its first 8
            # bytes and zero in the other 56.
            if report.CHIP_ID[:8] != hw_id or any(report.CHIP_ID[8:]):
                failures.append(
                    f"CHIP_ID: got {report.CHIP_ID.hex()}, expected {hw_id.hex()} + zero"
                    " (VCEK hwID)"
                )
        elif hw_id != report.CHIP_ID:
            failures.append(f"CHIP_ID: got {report.CHIP_ID.hex()}, expected {hw_id.hex()}")
    return failures


def _tcb_fields(raw: int, product: str) -> dict[str, int]:
    return abi.decode_tcb(raw, product).as_dict()


def claims_from_report(
    report: abi.AttestationReport,
    product: str,
    leaf: AmdCertificate,
    *,
    root: str,
    simulated: bool,
    revocation_checked: bool = False,
) -> Claims:
    """The :class:`Claims` of an authenticated report."""
    fields: dict[str, Any] = {
        "VERSION": report.VERSION,
        "GUEST_SVN": report.GUEST_SVN,
        "POLICY": report.POLICY,
        "FAMILY_ID": report.FAMILY_ID,
        "IMAGE_ID": report.IMAGE_ID,
        "VMPL": report.VMPL,
        "PLATFORM_INFO": report.PLATFORM_INFO,
        "KEY_INFO": report.KEY_INFO,
        "ID_KEY_DIGEST": report.ID_KEY_DIGEST,
        "AUTHOR_KEY_DIGEST": report.AUTHOR_KEY_DIGEST,
        "REPORT_ID": report.REPORT_ID,
        "REPORT_ID_MA": report.REPORT_ID_MA,
        "CHIP_ID": report.CHIP_ID,
        "CURRENT_TCB": _tcb_fields(report.CURRENT_TCB, product),
        "COMMITTED_TCB": _tcb_fields(report.COMMITTED_TCB, product),
        "LAUNCH_TCB": _tcb_fields(report.LAUNCH_TCB, product),
        "CURRENT_VERSION": f"{report.CURRENT_MAJOR}.{report.CURRENT_MINOR}.{report.CURRENT_BUILD}",
        "COMMITTED_VERSION": (
            f"{report.COMMITTED_MAJOR}.{report.COMMITTED_MINOR}.{report.COMMITTED_BUILD}"
        ),
        "PRODUCT": product,
    }
    if report.CPUID_FAM_ID is not None:
        fields["CPUID_FAM_ID"] = report.CPUID_FAM_ID
        fields["CPUID_MOD_ID"] = report.CPUID_MOD_ID
        fields["CPUID_STEP"] = report.CPUID_STEP
    if report.LAUNCH_MIT_VECTOR is not None:
        fields["LAUNCH_MIT_VECTOR"] = report.LAUNCH_MIT_VECTOR
        fields["CURRENT_MIT_VECTOR"] = report.CURRENT_MIT_VECTOR
    if leaf.extensions.csp_id is not None:
        fields["cspID"] = leaf.extensions.csp_id
    return Claims(
        platform=PLATFORM,
        measurements={"MEASUREMENT": report.MEASUREMENT},
        report_data=report.REPORT_DATA,
        host_data=report.HOST_DATA,
        debug=report.debug,
        tcb=_tcb_fields(report.REPORTED_TCB, product),
        tcb_status=TCB_STATUS_NOT_APPLICABLE,
        advisory_ids=(),
        signing_key=_KEY_NAME[report.signing_key],
        root=root,
        simulated=simulated,
        fields=fields,
        revocation_checked=revocation_checked,
    )


class SnpVerifier:
    """Parse and verify AMD SEV-SNP ATTESTATION_REPORTs (a ``PlatformVerifier``)."""

    platform = PLATFORM

    def detect(self, data: bytes) -> bool:
        if len(data) != abi.REPORT_SIZE:
            return False
        version = int.from_bytes(data[0:4], "little")
        algo = int.from_bytes(data[0x34:0x38], "little")
        return version in abi.SUPPORTED_VERSIONS and algo == abi.SIGNATURE_ALGO_ECDSA_P384_SHA384

    def parse(self, data: bytes) -> abi.AttestationReport:
        return abi.parse_report(data)

    def verify(
        self,
        report: bytes,
        certificates: Sequence[bytes],
        collateral: Mapping[str, Any] | None,
        *,
        at: datetime,
        additional_roots: Sequence[bytes] = (),
    ) -> Claims:
        if at.tzinfo is None:
            raise ConfigurationError("the verification time must be timezone-aware")
        crls: list[AmdCrl] = []
        if collateral:
            unknown = sorted(set(collateral) - {COLLATERAL_KEY})
            if unknown:
                raise EvidenceFormatError(
                    "SEV-SNP evidence takes no collateral but AMD CRLs",
                    failures=[f"collateral: got {unknown}, expected only {COLLATERAL_KEY}"],
                )
            crls = crls_from_collateral(collateral)
        parsed = abi.parse_report(report)
        signing_key = parsed.signing_key
        if signing_key not in _LEAF_CN:
            raise EvidenceSignatureError(
                "the SEV-SNP report is not signed by a VCEK or VLEK",
                failures=[
                    f"KEY_INFO.SIGNING_KEY: got {signing_key}, expected 0 (VCEK) or 1 (VLEK)"
                ],
            )
        if parsed.mask_chip_key:
            raise EvidenceSignatureError(
                "the SEV-SNP report was produced with MASK_CHIP_KEY and carries no signature",
                failures=["KEY_INFO.MASK_CHIP_KEY: got 1, expected 0"],
            )
        certs = [parse_certificate(bytes(der)) for der in certificates]
        extra = [parse_certificate(bytes(der)) for der in additional_roots]
        leaf_cn = _LEAF_CN[signing_key]
        leaves = [c for c in certs if c.subject_cn == leaf_cn]
        if not leaves:
            raise EvidenceSignatureError(
                f"no {leaf_cn} certificate came with the evidence",
                failures=[f"certificates: missing the {leaf_cn} certificate"],
            )
        failures: list[str] = []
        for leaf in leaves:
            try:
                return self._verify_with(parsed, leaf, certs, extra, at, crls)
            except EvidenceSignatureError as exc:
                failures.extend(exc.failures or [exc.message])
        raise EvidenceSignatureError(
            "the SEV-SNP evidence is not authentic", failures=list(dict.fromkeys(failures))
        )

    def _verify_with(
        self,
        report: abi.AttestationReport,
        leaf: AmdCertificate,
        certs: Sequence[AmdCertificate],
        extra_roots: Sequence[AmdCertificate],
        at: datetime,
        crls: Sequence[AmdCrl] = (),
    ) -> Claims:
        report_product = report.product
        cert_product = leaf.extensions.product
        if report_product and cert_product and report_product != cert_product:
            raise EvidenceSignatureError(
                "the report and its endorsement key name different products",
                failures=[
                    f"productName: got {leaf.extensions.product_name}, expected {report_product}"
                    " (from CPUID_FAM_ID/CPUID_MOD_ID)"
                ],
            )
        product = report_product or cert_product
        anchors: list[tuple[AmdCertificate, bool]] = []
        if product in PRODUCTS:
            anchors.append((pinned_ark(product), False))
        anchors.extend((root, True) for root in extra_roots)
        if product is None or not anchors:
            raise EvidenceSignatureError(
                "the product line of the SEV-SNP report is unknown",
                failures=["productName: unknown product line, no pinned ARK applies"],
            )
        failures: list[str] = []
        kind = "ASVK" if report.signing_key == abi.SIGNING_KEY_VLEK else "ASK"
        for anchor, simulated in anchors:
            expected_product = None if simulated else product
            linking = [
                c
                for c in certs
                if c.subject == leaf.issuer and not c.is_self_issued and c.issuer == anchor.subject
            ]
            intermediates = [
                c
                for c in linking
                if _intermediate_cn_ok(c.subject_cn, report.signing_key, expected_product)
            ]
            if not intermediates:
                # An ASVK may not issue VCEKs, nor an ASK VLEKs, nor one product
                # line's intermediate the other's: the CN says which it is.
                of = f" of {expected_product}" if expected_product else ""
                failures.extend(
                    f"certificates: {c.subject_cn!r} issued the {leaf.subject_cn} but is not"
                    f" named as an {kind}{of}"
                    for c in linking
                )
                failures.append(
                    f"certificates: no {kind} linking {leaf.subject_cn} to {anchor.subject_cn}"
                )
                continue
            for intermediate in intermediates:
                try:
                    _check_chain_signatures(leaf.der, intermediate.der, anchor.der)
                except EvidenceSignatureError as exc:
                    failures.extend(exc.failures)
                    continue
                expired = [
                    f"{c.subject_cn}: not valid at {at.isoformat()} (valid"
                    f" {c.not_before.isoformat()} to {c.not_after.isoformat()})"
                    for c in (leaf, intermediate, anchor)
                    if not c.valid_at(at)
                ]
                if expired:
                    raise EvidenceSignatureError(
                        "a certificate of the SEV-SNP chain is not valid now", failures=expired
                    )
                revocation_checked = check_revocation(crls, anchor, (intermediate, leaf), at)
                _check_report_signature(report, leaf)
                binding = _binding_failures(report, leaf, product)
                if binding:
                    raise EvidenceSignatureError(
                        "the SEV-SNP report does not match its endorsement key", failures=binding
                    )
                return claims_from_report(
                    report,
                    product,
                    leaf,
                    root=anchor.subject_cn,
                    simulated=simulated,
                    revocation_checked=revocation_checked,
                )
        raise EvidenceSignatureError(
            f"the {leaf.subject_cn} does not chain to a trusted AMD root", failures=failures
        )
