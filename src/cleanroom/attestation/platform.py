"""The one narrow interface every TEE verifier implements.

A verifier covers one platform (``"sev-snp"``, ``"tdx"``, ``"sgx"``) and does
two of the three stages of attestation:

1. ``parse`` turns bytes into a typed report, checking sizes, versions and
   must-be-zero fields (raises :class:`~cleanroom.errors.EvidenceFormatError`);
2. ``verify`` checks authenticity: signatures, the certificate chain up to the
   pinned vendor root (never a root that came with the evidence), revocation
   and validity at an injected time, and returns the authenticated
   :class:`Claims` (raises :class:`~cleanroom.errors.EvidenceSignatureError`,
   or ``EvidenceFormatError`` for bytes that do not parse).

The third stage, validating claims against an
:class:`~cleanroom.attestation.policy.AttestationPolicy`, is common to all
platforms and lives in :mod:`cleanroom.attestation.validate`; it only reads
:class:`Claims`, so it never depends on how a platform verifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "TCB_STATUS_NOT_APPLICABLE",
    "Claims",
    "PlatformVerifier",
]

# SEV-SNP has no vendor TCB status (AMD signs whatever TCB the VCEK was derived
# from); its TCB is judged against the policy's per-component minimums instead.
TCB_STATUS_NOT_APPLICABLE = "NotApplicable"


@dataclass(frozen=True)
class Claims:
    """What a verifier vouches for, after the signatures and chain checked out.

    Field names inside the mappings are the vendor specifications' names, so an
    operator can search the vendor document for any failure message.

    ``platform``
        ``"sev-snp"``, ``"tdx"`` or ``"sgx"``.
    ``measurements``
        The code identity by spec name: SNP ``{"MEASUREMENT"}`` (48 bytes);
        TDX ``{"MRTD", "RTMR0".."RTMR3", "MRSEAM"}``; SGX ``{"MRENCLAVE",
        "MRSIGNER"}``.
    ``report_data``
        SNP REPORT_DATA / TDX and SGX REPORTDATA, 64 bytes.
    ``host_data``
        The launch-time configuration the host commits to: SNP HOST_DATA
        (32 bytes), TDX MRCONFIGID (48 bytes), SGX CONFIGID (64 bytes).
    ``debug``
        True when the TEE allows a debugger (SNP POLICY bit 19, TDX
        TDATTRIBUTES bit 0, SGX ATTRIBUTES.DEBUG).
    ``tcb``
        TCB component values by spec name (SNP: ``BOOT_LOADER``, ``TEE``,
        ``SNP``, ``MICROCODE`` and on Turin ``FMC``, from REPORTED_TCB;
        DCAP: as its verifier documents them, e.g. ``PCESVN``).
    ``tcb_status``
        The vendor's TCB status (Intel: ``UpToDate``, ``SWHardeningNeeded``,
        ...), or :data:`TCB_STATUS_NOT_APPLICABLE` for SEV-SNP.
    ``advisory_ids``
        Vendor security advisories that apply to this TCB (Intel ``INTEL-SA-*``).
    ``signing_key``
        Which key signed the report: ``"vcek"``, ``"vlek"`` (SNP) or ``"pck"``
        (DCAP).
    ``root``
        A short name of the trust anchor the chain ended at, e.g.
        ``"ARK-Milan"`` or ``"Intel SGX Root CA"``; for a root passed in
        ``additional_roots`` its subject common name.
    ``simulated``
        True when the chain ended at one of ``additional_roots`` rather than
        a pinned vendor root: such evidence proves nothing about hardware.
    ``fields``
        Every other parsed field useful to a policy or a human, by spec name
        (SNP: ``VERSION``, ``VMPL``, ``POLICY``, ``GUEST_SVN``,
        ``PLATFORM_INFO``, ...). Values are ``int``, ``str``, ``bool`` or
        ``bytes``.
    ``revocation_checked``
        True when the chain was checked against at least one authentic
        revocation list of its root that is current at the verification time
        and says until when (has a nextUpdate). SEV-SNP: an AMD CRL in the
        collateral (optional in the evidence, so the host can leave it out;
        the policy's ``snp_require_crl`` decides); Intel DCAP: always, the
        collateral's CRLs are required.
    """

    platform: str
    measurements: Mapping[str, bytes]
    report_data: bytes
    host_data: bytes
    debug: bool
    tcb: Mapping[str, int]
    tcb_status: str
    advisory_ids: tuple[str, ...]
    signing_key: str
    root: str
    simulated: bool = False
    fields: Mapping[str, Any] = field(default_factory=dict)
    revocation_checked: bool = False


@runtime_checkable
class PlatformVerifier(Protocol):
    """One TEE platform's parse and verify stages.

    Implementations are stateless apart from their pinned roots and caches,
    so one instance may serve many threads.
    """

    #: The platform name this verifier handles (``"sev-snp"``, ``"tdx"``, ``"sgx"``).
    platform: str

    def detect(self, data: bytes) -> bool:
        """Whether *data* looks like this platform's evidence (cheap, no crypto).

        Never raises; a True answer does not mean *data* is valid.
        """
        ...

    def parse(self, data: bytes) -> object:
        """The typed report in *data*; raises ``EvidenceFormatError`` on any defect."""
        ...

    def verify(
        self,
        report: bytes,
        certificates: Sequence[bytes],
        collateral: Mapping[str, Any] | None,
        *,
        at: datetime,
        additional_roots: Sequence[bytes] = (),
    ) -> Claims:
        """Authenticate *report* and return its claims.

        ``certificates`` are DER certificates that came with the evidence
        (any order; a vendor root among them is ignored unless it is
        byte-equal to the pinned one). ``collateral`` is the platform's
        verification collateral (Intel DCAP: JSON shaped like the PCS
        responses), ``None`` when the platform needs none. ``at`` is the
        time at which validity windows are checked (timezone-aware UTC).
        ``additional_roots`` are DER root certificates trusted besides the
        pinned vendor roots; evidence chaining to one of them is returned
        with ``simulated=True``. The caller decides whether that is allowed.

        Raises ``EvidenceFormatError`` or ``EvidenceSignatureError``; every
        failure carries ``failures`` naming the failed check.
        """
        ...
