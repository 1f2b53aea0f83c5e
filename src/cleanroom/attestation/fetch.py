"""Fetching certificates and collateral: AMD KDS and Intel PCS. Off by default.

Verification itself never touches the network: it uses what came with the
evidence. A server that does not get its certificates from the host, or a
client that wants to complete bare evidence, may use these fetchers
explicitly (``complete_evidence``, ``cleanroom attestation verify --fetch``).
The HTTP transport is injected (``get``), so tests never use the network,
and AMD certificates (immutable for a given URL) are cached in a directory.
AMD CRLs change: they are kept in memory only, for a short while.

A verifier that completes SEV-SNP evidence itself also gets the current AMD
CRL: the host being verified supplies the evidence and could leave a CRL out
(the attestation policy's ``snp_require_crl`` refuses hardware evidence
without one).

URLs: AMD "Versioned Chip Endorsement Key (VCEK) Certificate and KDS
Interface Specification" (57230), section "KDS Interface"; Intel "SGX and
TDX PCS API v4" (``/sgx|tdx/certification/v4/...``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.evidence import Evidence
from cleanroom.attestation.host_files import read_regular_file
from cleanroom.attestation.snp import abi
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.attestation.snp.crl import COLLATERAL_KEY, parse_crl
from cleanroom.errors import ConfigurationError, EvidenceFormatError, ServiceUnavailable

__all__ = [
    "AMD_KDS",
    "INTEL_PCS",
    "INTEL_ROOT_CA_CRL",
    "EvidenceFetchers",
    "HttpGet",
    "HttpResponse",
    "KdsFetcher",
    "PcsFetcher",
    "complete_evidence",
    "httpx_get",
]

AMD_KDS = "https://kdsintf.amd.com"
INTEL_PCS = "https://api.trustedservices.intel.com"
INTEL_ROOT_CA_CRL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
_MAX_BODY = 1024 * 1024
_CRL_MAX_AGE = timedelta(hours=1)


@dataclass(frozen=True)
class HttpResponse:
    status_code: int
    content: bytes
    headers: Mapping[str, str]


class HttpGet(Protocol):
    def __call__(self, url: str) -> HttpResponse: ...


def httpx_get(url: str) -> HttpResponse:
    """GET *url* over HTTPS with a timeout; no redirects, no retries."""
    import httpx

    if not url.startswith("https://"):
        raise ConfigurationError(f"refusing to fetch attestation material over {url!r}")
    try:
        response = httpx.get(url, timeout=15.0, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"fetching {url} failed: {type(exc).__name__}") from exc
    return HttpResponse(response.status_code, response.content, dict(response.headers))


def _fetch(get: HttpGet, url: str) -> HttpResponse:
    response = get(url)
    if response.status_code != 200:
        raise ServiceUnavailable(f"{url} answered HTTP {response.status_code}")
    if len(response.content) > _MAX_BODY:
        raise ServiceUnavailable(f"{url} answered more than {_MAX_BODY} bytes")
    return response


class KdsFetcher:
    """VCEKs, ASK/ASVK+ARK chains and CRLs from AMD's Key Distribution Service.

    ``product`` names the product line for version 2 reports, which do not
    carry CPUID. Certificates are kept in memory, and in ``cache_dir`` (by URL
    digest) if given: a cached file is used only if it is a regular file, not
    a link, that parses as the certificates expected, so a directory others
    can write may feed it wrong certificates (which the verifier refuses) but
    never another file's contents. A clean room passes none: its data
    directory is the host's. CRLs are kept in memory for at most
    ``crl_max_age`` and never past their nextUpdate (``clock`` tells the
    time). VLEKs are not published by KDS: the cloud provider supplies them.
    """

    def __init__(
        self,
        get: HttpGet = httpx_get,
        *,
        base_url: str = AMD_KDS,
        cache_dir: Path | None = None,
        product: str | None = None,
        crl_max_age: timedelta = _CRL_MAX_AGE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._get = get
        self._base = base_url.rstrip("/")
        self._cache = Path(cache_dir) if cache_dir is not None else None
        self._product = product
        self._crl_max_age = crl_max_age
        self._clock = clock
        self._crls: dict[str, tuple[bytes, datetime]] = {}
        self._held: dict[str, tuple[bytes, ...]] = {}

    def vcek_url(self, report: abi.AttestationReport, product: str) -> str:
        tcb = abi.decode_tcb(report.REPORTED_TCB, product)
        if product == "Turin":
            # Turin: 8-byte hwID and an fmcSPL parameter.
            chip = report.CHIP_ID[:8].hex()
            query = f"fmcSPL={tcb.FMC}&blSPL={tcb.BOOT_LOADER}&teeSPL={tcb.TEE}"
        else:
            chip = report.CHIP_ID.hex()
            query = f"blSPL={tcb.BOOT_LOADER}&teeSPL={tcb.TEE}"
        query += f"&snpSPL={tcb.SNP}&ucodeSPL={tcb.MICROCODE}"
        return f"{self._base}/vcek/v1/{product}/{chip}?{query}"

    def chain_url(self, product: str, key: str = "vcek") -> str:
        return f"{self._base}/{key}/v1/{product}/cert_chain"

    def crl_url(self, product: str, key: str = "vcek") -> str:
        return f"{self._base}/{key}/v1/{product}/crl"

    def _certificates(self, url: str, count: int) -> list[bytes]:
        """The *count* DER certificates at *url*: from memory, else the cache
        directory, else KDS. Whatever is read or fetched must parse as exactly
        that many certificates before it is used or kept; their signatures are
        the verifier's to check against the pinned ARK."""
        held = self._held.get(url)
        if held is not None:
            return list(held)
        path = None
        if self._cache is not None:
            path = self._cache / hashlib.sha256(url.encode()).hexdigest()
            stored = read_regular_file(path, _MAX_BODY)
            if stored is not None:
                found = _as_certificates(stored, count)
                if found is not None:
                    self._held[url] = tuple(found)
                    return found
        body = bytes(_fetch(self._get, url).content)
        found = _as_certificates(body, count)
        if found is None:
            raise ServiceUnavailable(f"{url} did not answer {count} certificate(s)")
        if path is not None:
            _write_cached(path, body)
        self._held[url] = tuple(found)
        return found

    def certificates(self, report_bytes: bytes) -> tuple[bytes, ...]:
        """VCEK, ASK and ARK for the report in *report_bytes*."""
        report = abi.parse_report(report_bytes)
        if report.signing_key != abi.SIGNING_KEY_VCEK:
            raise ConfigurationError(
                "only VCEKs can be fetched from AMD KDS",
                remedy="VLEKs come from the cloud provider with the report",
            )
        product = report.product or self._product
        if product is None:
            raise ConfigurationError(
                "the product line of a version 2 report must be configured to fetch its VCEK"
            )
        (vcek,) = self._certificates(self.vcek_url(report, product), 1)
        chain = self._certificates(self.chain_url(product), 2)
        return (vcek, *chain)

    def crl(self, product: str, key: str = "vcek") -> bytes:
        """The DER CRL of *product* for *key* (``"vcek"`` or ``"vlek"``).

        Kept in memory for at most ``crl_max_age`` and never past its
        nextUpdate, so that completing every evidence does not ask KDS each
        time. Its signature is not checked here: the verifier checks it
        against the pinned ARK.
        """
        url = self.crl_url(product, key)
        now = self._clock()
        held = self._crls.get(url)
        if held is not None and now < held[1]:
            return held[0]
        body = bytes(_fetch(self._get, url).content)
        try:
            parsed = parse_crl(body)
        except EvidenceFormatError as exc:
            raise ServiceUnavailable(f"{url} did not answer a DER CRL") from exc
        until = now + self._crl_max_age
        if parsed.next_update is not None:
            until = min(until, parsed.next_update)
        self._crls[url] = (body, until)
        return body

    def crl_for(self, report_bytes: bytes, certificates: tuple[bytes, ...] = ()) -> bytes:
        """The CRL that covers the chain of the report in *report_bytes*: its
        product line (from CPUID, else the VEK's productName among
        *certificates*, else the configured ``product``) and its key type."""
        report = abi.parse_report(report_bytes)
        key = "vlek" if report.signing_key == abi.SIGNING_KEY_VLEK else "vcek"
        product = report.product or _vek_product(certificates) or self._product
        if product is None:
            raise ConfigurationError(
                "the product line of a version 2 report must be configured to fetch its CRL"
            )
        return self.crl(product, key)


def _as_certificates(body: bytes, count: int) -> list[bytes] | None:
    """*body* as exactly *count* parsable DER certificates, or None."""
    try:
        found = split_certificates(body)
        for der in found:
            parse_certificate(der)
    except EvidenceFormatError:
        return None
    return found if len(found) == count else None


def _write_cached(path: Path, body: bytes) -> None:
    """Write *body* to a new file and rename it over *path* (a link there is replaced,
    never followed). Caching is best effort: a failure only means fetching again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".fetch-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(body)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError:
        return


class PcsFetcher:
    """TCB info, QE identity and CRLs from Intel PCS (API v4), shaped as
    :mod:`cleanroom.attestation.dcap` collateral ("PCS responses" shape)."""

    def __init__(
        self,
        get: HttpGet = httpx_get,
        *,
        base_url: str = INTEL_PCS,
        root_crl_url: str = INTEL_ROOT_CA_CRL,
    ) -> None:
        self._get = get
        self._base = base_url.rstrip("/")
        self._root_crl_url = root_crl_url

    def urls(self, fmspc: bytes, ca: str, tee: str) -> dict[str, str]:
        if tee not in ("tdx", "sgx") or ca not in ("platform", "processor") or len(fmspc) != 6:
            raise ConfigurationError("PCS needs tee tdx|sgx, ca platform|processor, 6-byte FMSPC")
        return {
            "tcb": f"{self._base}/{tee}/certification/v4/tcb?fmspc={fmspc.hex()}",
            "qe": f"{self._base}/{tee}/certification/v4/qe/identity",
            "pckcrl": f"{self._base}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der",
            "rootcrl": self._root_crl_url,
        }

    @staticmethod
    def _chain(response: HttpResponse, header: str) -> str:
        value = {k.lower(): v for k, v in response.headers.items()}.get(header.lower())
        if not value:
            raise ServiceUnavailable(f"PCS response lacks the {header} header")
        return unquote(value)

    def collateral(self, fmspc: bytes, ca: str, tee: str) -> dict[str, Any]:
        urls = self.urls(fmspc, ca, tee)
        tcb = _fetch(self._get, urls["tcb"])
        qe = _fetch(self._get, urls["qe"])
        pck_crl = _fetch(self._get, urls["pckcrl"])
        root_crl = _fetch(self._get, urls["rootcrl"])
        return {
            "tcb_info_response": tcb.content.decode("utf-8"),
            "tcb_info_issuer_chain": self._chain(tcb, "TCB-Info-Issuer-Chain"),
            "qe_identity_response": qe.content.decode("utf-8"),
            "qe_identity_issuer_chain": self._chain(qe, "SGX-Enclave-Identity-Issuer-Chain"),
            "pck_crl": bytes(pck_crl.content).hex(),
            "pck_crl_issuer_chain": self._chain(pck_crl, "SGX-PCK-CRL-Issuer-Chain"),
            "root_ca_crl": bytes(root_crl.content).hex(),
        }


def _has_snp_leaf(evidence: Evidence) -> bool:
    for der in evidence.certificates:
        try:
            if parse_certificate(der).subject_cn in ("SEV-VCEK", "SEV-VLEK"):
                return True
        except EvidenceFormatError:
            continue
    return False


def _vek_product(certificates: tuple[bytes, ...]) -> str | None:
    for der in certificates:
        try:
            cert = parse_certificate(der)
        except EvidenceFormatError:
            continue
        if cert.subject_cn in ("SEV-VCEK", "SEV-VLEK") and cert.extensions.product:
            return cert.extensions.product
    return None


def _with_amd_crl(evidence: Evidence, kds: KdsFetcher) -> Evidence:
    crl = base64.b64encode(kds.crl_for(evidence.report, evidence.certificates)).decode("ascii")
    collateral = dict(evidence.collateral or {})
    carried = collateral.get(COLLATERAL_KEY, [])
    if not isinstance(carried, list):
        raise EvidenceFormatError(f"collateral {COLLATERAL_KEY} must be a list")
    if crl not in carried:
        collateral[COLLATERAL_KEY] = [crl, *carried]
    return replace(evidence, collateral=collateral)


def _pck_identity(report: bytes) -> tuple[bytes, str, str]:
    """FMSPC, PCK CA kind and TEE of a DCAP quote, from its PCK certificate."""
    from cleanroom.attestation.dcap import parse_quote
    from cleanroom.attestation.dcap.pck import load_pem_chain, parse_pck_extensions

    quote = parse_quote(report)
    leaf = load_pem_chain(quote.pck_chain_pem, "PCK chain")[0]
    issuer = leaf.issuer.rfc4514_string()
    ca = "processor" if "Processor" in issuer else "platform"
    return parse_pck_extensions(leaf).FMSPC, ca, "tdx" if quote.is_tdx else "sgx"


def complete_evidence(
    evidence: Evidence, *, kds: KdsFetcher | None = None, pcs: PcsFetcher | None = None
) -> Evidence:
    """*evidence* completed on the verifier's side: for SEV-SNP the VCEK chain
    (when no VCEK/VLEK came with it) and, always, the current AMD CRL of the
    report's product line and key type, put first among any CRLs that came
    with it (those are still checked); for Intel DCAP the current collateral
    (TCB info, QE identity, PCK and root CA CRLs), which replaces any that came:
    the attester's host chose that, and an older set, still inside its validity,
    could hide a revocation or a TCB recovery. Evidence marked simulated is
    returned as it is."""
    if evidence.platform == "sev-snp" and kds is not None and not evidence.simulated:
        if not _has_snp_leaf(evidence):
            fetched = kds.certificates(evidence.report)
            evidence = replace(evidence, certificates=(*evidence.certificates, *fetched))
        return _with_amd_crl(evidence, kds)
    if evidence.platform in ("tdx", "sgx") and pcs is not None:
        fmspc, ca, tee = _pck_identity(evidence.report)
        return replace(evidence, collateral=pcs.collateral(fmspc, ca, tee))
    return evidence


@dataclass(frozen=True)
class EvidenceFetchers:
    """Where a verifier completes evidence itself instead of trusting what the
    attester's host sent with it: AMD KDS for SEV-SNP (the current CRL, the VCEK
    chain if none came), Intel PCS for TDX and SGX (the current collateral).
    Either may be None: that platform's evidence is then judged as it came."""

    kds: KdsFetcher | None = None
    pcs: PcsFetcher | None = None

    def complete(self, evidence: Evidence) -> Evidence:
        return complete_evidence(evidence, kds=self.kds, pcs=self.pcs)
