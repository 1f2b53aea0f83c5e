"""Evidence through the ``/dev/sev-guest`` SNP_GET_EXT_REPORT ioctl.

The fallback for SEV-SNP guests whose kernel lacks configfs-tsm. Structures
and request numbers from the kernel's ``include/uapi/linux/sev-guest.h``;
the response layout (MSG_REPORT_RSP: STATUS, REPORT_SIZE, reserved, REPORT)
from the SEV-SNP ABI specification (56860), Table "MSG_REPORT_RSP Message
Structure".
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import struct
from collections.abc import Callable
from pathlib import Path

from cleanroom.attestation.evidence import Evidence
from cleanroom.attestation.providers.base import check_report_data
from cleanroom.attestation.providers.certtable import parse_cert_table
from cleanroom.attestation.snp import abi
from cleanroom.errors import ServiceUnavailable

__all__ = [
    "FIELD_GUEST_POLICY",
    "FIELD_MEASUREMENT",
    "SEV_GUEST_DEVICE",
    "SNP_GET_DERIVED_KEY",
    "SNP_GET_EXT_REPORT",
    "DerivedKeyRequest",
    "GuestRequest",
    "ReportResponse",
    "SevGuestProvider",
]

SEV_GUEST_DEVICE = Path("/dev/sev-guest")
_MSG_VERSION = 1
_PAGE = mmap.PAGESIZE
_VMM_ERR_INVALID_LEN = 1  # SNP_GUEST_VMM_ERR_INVALID_LEN: certificate buffer too small
_MAX_CERT_PAGES = 64


class ReportRequest(ctypes.Structure):
    _fields_ = (
        ("user_data", ctypes.c_uint8 * 64),
        ("vmpl", ctypes.c_uint32),
        ("rsvd", ctypes.c_uint8 * 28),
    )


class ExtReportRequest(ctypes.Structure):
    _fields_ = (
        ("data", ReportRequest),
        ("certs_address", ctypes.c_uint64),
        ("certs_len", ctypes.c_uint32),
    )


class ReportResponse(ctypes.Structure):
    _fields_ = (("data", ctypes.c_uint8 * 4000),)


class DerivedKeyRequest(ctypes.Structure):
    """struct snp_derived_key_req (the MSG_KEY_REQ fields the guest chooses)."""

    _fields_ = (
        ("root_key_select", ctypes.c_uint32),
        ("rsvd", ctypes.c_uint32),
        ("guest_field_select", ctypes.c_uint64),
        ("vmpl", ctypes.c_uint32),
        ("guest_svn", ctypes.c_uint32),
        ("tcb_version", ctypes.c_uint64),
    )


class DerivedKeyResponse(ctypes.Structure):
    _fields_ = (("data", ctypes.c_uint8 * 64),)


class GuestRequest(ctypes.Structure):
    """struct snp_guest_request_ioctl; ``exitinfo2`` holds fw_error (low 32
    bits) and vmm_error (high 32 bits)."""

    _fields_ = (
        ("msg_version", ctypes.c_uint8),
        ("req_data", ctypes.c_uint64),
        ("resp_data", ctypes.c_uint64),
        ("exitinfo2", ctypes.c_uint64),
    )


def _iowr(kind: str, number: int, size: int) -> int:
    # _IOWR(type, nr, size) from include/uapi/asm-generic/ioctl.h.
    return (3 << 30) | (size << 16) | (ord(kind) << 8) | number


SNP_GET_DERIVED_KEY = _iowr("S", 0x1, ctypes.sizeof(GuestRequest))
SNP_GET_EXT_REPORT = _iowr("S", 0x2, ctypes.sizeof(GuestRequest))

# MSG_KEY_REQ GUEST_FIELD_SELECT bits (SEV-SNP ABI 56860, Table "MSG_KEY_REQ
# Message Structure"): which guest fields are mixed into the derived key.
FIELD_GUEST_POLICY = 1 << 0
FIELD_IMAGE_ID = 1 << 1
FIELD_FAMILY_ID = 1 << 2
FIELD_MEASUREMENT = 1 << 3
FIELD_GUEST_SVN = 1 << 4
FIELD_TCB_VERSION = 1 << 5

IoctlFunction = Callable[[int, int, GuestRequest], int]


def _ioctl(fd: int, request: int, argument: GuestRequest) -> int:
    return int(fcntl.ioctl(fd, request, argument, True))


def _address(buffer: ctypes.Structure | ctypes.Array[ctypes.c_char]) -> int:
    return ctypes.addressof(buffer)


class SevGuestProvider:
    """SEV-SNP evidence from ``/dev/sev-guest`` (SNP_GET_EXT_REPORT).

    ``ioctl`` is injectable so the request and response handling can be
    tested without the device.
    """

    platform = "sev-snp"
    simulated = False

    def __init__(
        self,
        device: Path = SEV_GUEST_DEVICE,
        *,
        vmpl: int = 0,
        certificates: tuple[bytes, ...] = (),
        ioctl: IoctlFunction = _ioctl,
    ) -> None:
        self.device = Path(device)
        self._vmpl = vmpl
        self._certificates = certificates
        self._ioctl = ioctl

    @staticmethod
    def available(device: Path = SEV_GUEST_DEVICE) -> bool:
        return device.exists() and os.access(device, os.R_OK | os.W_OK)

    def evidence(self, report_data: bytes) -> Evidence:
        report_data = check_report_data(report_data)
        try:
            fd = os.open(self.device, os.O_RDWR)
        except OSError as exc:
            raise ServiceUnavailable(
                f"cannot open {self.device}: {exc.strerror}",
                remedy="run inside a SEV-SNP guest with the sev-guest driver loaded",
            ) from exc
        try:
            report, table = self._request(fd, report_data)
        finally:
            os.close(fd)
        certificates = tuple(parse_cert_table(table)) if any(table[:24]) else ()
        return Evidence(
            platform="sev-snp",
            report=report,
            certificates=certificates or self._certificates,
            simulated=False,
        )

    def derived_key(
        self,
        *,
        fields: int = FIELD_GUEST_POLICY | FIELD_MEASUREMENT,
        chip_bound: bool = True,
    ) -> bytes:
        """A 32-byte key the SEV-SNP firmware derives for this guest (MSG_KEY_REQ).

        The key depends on the chosen guest *fields* (default: POLICY and
        MEASUREMENT, so other code or a debug launch gets another key) and on
        the chip's VCEK secret (``chip_bound``) or the VM root key. Only this
        guest, launched the same way on the same chip, can derive it again:
        a sealing key for data at rest. Never log or export it.
        """
        request = DerivedKeyRequest(
            root_key_select=0 if chip_bound else 1,
            guest_field_select=fields,
            vmpl=self._vmpl,
        )
        response = DerivedKeyResponse()
        guest = GuestRequest(
            msg_version=_MSG_VERSION,
            req_data=ctypes.addressof(request),
            resp_data=ctypes.addressof(response),
        )
        try:
            fd = os.open(self.device, os.O_RDWR)
        except OSError as exc:
            raise ServiceUnavailable(f"cannot open {self.device}: {exc.strerror}") from exc
        try:
            self._ioctl(fd, SNP_GET_DERIVED_KEY, guest)
        except OSError as exc:
            raise ServiceUnavailable(
                f"SNP_GET_DERIVED_KEY failed: {exc.strerror}"
                f" (firmware error 0x{guest.exitinfo2 & 0xFFFFFFFF:x})"
            ) from exc
        finally:
            os.close(fd)
        message = bytes(response.data)
        # MSG_KEY_RSP: STATUS (u32), reserved (0x1C bytes), DERIVED_KEY (32 bytes).
        status = int.from_bytes(message[0:4], "little")
        if status != 0:
            raise ServiceUnavailable(f"the SEV-SNP firmware refused the key (status 0x{status:x})")
        key = message[0x20:0x40]
        ctypes.memset(ctypes.addressof(response), 0, ctypes.sizeof(response))
        return key

    def _request(self, fd: int, report_data: bytes) -> tuple[bytes, bytes]:
        pages = 4
        while pages <= _MAX_CERT_PAGES:
            certs = (ctypes.c_char * (pages * _PAGE))()
            request = ExtReportRequest()
            ctypes.memmove(request.data.user_data, report_data, 64)
            request.data.vmpl = self._vmpl
            request.certs_address = _address(certs)
            request.certs_len = pages * _PAGE
            response = ReportResponse()
            guest = GuestRequest(
                msg_version=_MSG_VERSION,
                req_data=ctypes.addressof(request),
                resp_data=ctypes.addressof(response),
            )
            try:
                self._ioctl(fd, SNP_GET_EXT_REPORT, guest)
            except OSError as exc:
                vmm_error = guest.exitinfo2 >> 32
                if exc.errno == errno.EIO and vmm_error == _VMM_ERR_INVALID_LEN:
                    # The host needs a larger certificate buffer; it wrote the
                    # size it needs into certs_len.
                    needed = -(-request.certs_len // _PAGE)
                    pages = max(pages * 2, needed)
                    continue
                raise ServiceUnavailable(
                    f"SNP_GET_EXT_REPORT failed: {exc.strerror}"
                    f" (firmware error 0x{guest.exitinfo2 & 0xFFFFFFFF:x},"
                    f" VMM error 0x{vmm_error:x})"
                ) from exc
            return _report_from(bytes(response.data)), bytes(certs)
        raise ServiceUnavailable("the host's SNP certificate table is too large")


def _report_from(message: bytes) -> bytes:
    status, size = struct.unpack_from("<II", message, 0)
    if status != 0:
        raise ServiceUnavailable(f"the SEV-SNP firmware refused the report (status 0x{status:x})")
    if size != abi.REPORT_SIZE:
        raise ServiceUnavailable(f"the SEV-SNP firmware returned a {size}-byte report")
    return message[0x20 : 0x20 + size]
