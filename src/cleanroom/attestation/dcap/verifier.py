"""The :class:`~cleanroom.attestation.platform.PlatformVerifier` for DCAP quotes.

One implementation serves TDX and SGX; :mod:`.tdx` and :mod:`.sgx` fix the
TEE type and the claims. It only combines the stages: parse
(:mod:`.quote`), authenticate (:mod:`.verify`) and describe (:mod:`.claims`).
"""

from __future__ import annotations

import abc
import struct
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from cryptography import x509

from cleanroom.attestation.dcap.collateral import collateral_from_mapping
from cleanroom.attestation.dcap.quote import Quote, parse_quote
from cleanroom.attestation.dcap.roots import intel_sgx_root_ca
from cleanroom.attestation.dcap.structs import ATT_KEY_TYPE_ECDSA_P256, HEADER_SIZE
from cleanroom.attestation.dcap.verify import VerifiedQuote, verify_quote
from cleanroom.attestation.platform import Claims
from cleanroom.errors import ConfigurationError, EvidenceFormatError, EvidenceSignatureError

__all__ = ["DcapVerifier"]


class DcapVerifier(abc.ABC):
    """Parse and verify Intel DCAP quotes of one TEE type.

    ``pinned_root`` replaces the packaged Intel SGX Root CA (unset: the
    packaged one). ``allow_trailing_bytes`` accepts non-zero bytes after the
    quote (unset: refused; zero padding is always accepted). The
    ``certificates`` argument of :meth:`verify` is not used: a DCAP quote
    carries its PCK chain (certification data type 5), and that is the one
    checked.
    """

    platform: str
    tee_type: ClassVar[int]
    versions: ClassVar[tuple[int, ...]]

    def __init__(
        self,
        *,
        pinned_root: x509.Certificate | None = None,
        allow_trailing_bytes: bool = False,
    ) -> None:
        self._pinned_root = pinned_root
        self._allow_trailing_bytes = allow_trailing_bytes

    def detect(self, data: bytes) -> bool:
        if not isinstance(data, bytes | bytearray) or len(data) < HEADER_SIZE:
            return False
        version, key_type, tee_type = struct.unpack_from("<HHI", data, 0)
        return (
            version in self.versions
            and key_type == ATT_KEY_TYPE_ECDSA_P256
            and tee_type == self.tee_type
        )

    def parse(self, data: bytes) -> Quote:
        if not isinstance(data, bytes | bytearray):
            raise EvidenceFormatError(
                "evidence must be bytes", failures=[f"evidence: got {type(data).__name__}"]
            )
        quote = parse_quote(bytes(data), allow_trailing_bytes=self._allow_trailing_bytes)
        if self.tee_type != quote.header.TEE_TYPE or quote.header.VERSION not in self.versions:
            raise EvidenceFormatError(
                f"not a {self.platform} quote",
                failures=[
                    f"TEE_TYPE {quote.header.TEE_TYPE:#010x} version {quote.header.VERSION}: "
                    f"expected TEE_TYPE {self.tee_type:#010x} "
                    f"and a version in {list(self.versions)}"
                ],
            )
        return quote

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
            raise ConfigurationError("the verification time must be timezone-aware (UTC)")
        quote = self.parse(report)
        if collateral is None:
            raise EvidenceSignatureError(
                "Intel DCAP verification needs collateral",
                failures=["collateral: not provided (TCB info, QE identity, CRLs are required)"],
                remedy="fetch the collateral from Intel PCS or a PCCS and pass it along",
            )
        parsed = collateral_from_mapping(collateral)
        roots: list[x509.Certificate] = []
        for der in additional_roots:
            try:
                roots.append(x509.load_der_x509_certificate(bytes(der)))
            except ValueError:
                raise ConfigurationError("an additional root is not a DER certificate") from None
        verified = verify_quote(
            quote,
            parsed,
            at=at,
            pinned_root=self._pinned_root or intel_sgx_root_ca(),
            additional_roots=roots,
        )
        return self.describe(verified)

    @abc.abstractmethod
    def describe(self, verified: VerifiedQuote) -> Claims:
        """The claims of *verified*, by the platform's spec names (per platform)."""
