"""Evidence from the Linux configfs-tsm report interface (SEV-SNP and TDX guests).

ABI: ``Documentation/ABI/testing/configfs-tsm`` in the Linux kernel (6.7+).
A report is an item under ``/sys/kernel/config/tsm/report/``; writing up to
64 bytes to ``inblob`` requests a report binding them, ``outblob`` returns the
report (SEV-SNP ATTESTATION_REPORT, or a TDX quote), ``auxblob`` the SNP
certificate table when the host supplies one, ``provider`` names the
backend (``sev_guest``, ``tdx_guest``), and ``generation`` counts writes so a
reader can detect that another writer raced it between write and read.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cleanroom.attestation.evidence import Evidence
from cleanroom.attestation.providers.base import check_report_data
from cleanroom.attestation.providers.certtable import parse_cert_table
from cleanroom.errors import EvidenceFormatError, ServiceUnavailable

__all__ = ["CONFIGFS_TSM_REPORT", "ConfigfsTsmProvider"]

CONFIGFS_TSM_REPORT = Path("/sys/kernel/config/tsm/report")
_PLATFORM_OF_PROVIDER = {"sev_guest": "sev-snp", "tdx_guest": "tdx"}
_MAX_OUTBLOB = 32 * 1024  # TSM_OUTBLOB_MAX
_ATTEMPTS = 3


def _read(path: Path, limit: int) -> bytes:
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise EvidenceFormatError(f"{path.name} is larger than {limit} bytes")
    return data


class ConfigfsTsmProvider:
    """Evidence through configfs-tsm; ``platform`` is read from ``provider``.

    ``root`` is the report directory (a fake tree in tests).
    ``certificates`` are DER certificates to serve along with the report when
    the host supplies none in ``auxblob`` (e.g. from a local cache).
    ``privlevel`` (SEV-SNP VMPL) is written when given. ``entry_name`` makes
    the report item's name (default: random, so concurrent users never share
    an item).
    """

    simulated = False

    def __init__(
        self,
        root: Path = CONFIGFS_TSM_REPORT,
        *,
        certificates: Sequence[bytes] = (),
        collateral: dict[str, Any] | None = None,
        privlevel: int | None = None,
        entry_name: Callable[[], str] | None = None,
    ) -> None:
        self.root = Path(root)
        self._certificates = tuple(certificates)
        self._collateral = collateral
        self._privlevel = privlevel
        self._entry_name = entry_name or (lambda: f"cleanroom-{secrets.token_hex(8)}")
        self.platform = self._platform()

    @staticmethod
    def available(root: Path = CONFIGFS_TSM_REPORT) -> bool:
        """Whether configfs-tsm reports can be requested under *root*."""
        return root.is_dir() and os.access(root, os.W_OK)

    def _platform(self) -> str:
        # The provider attribute exists per item; read it from a probe item.
        entry = self._open_entry()
        try:
            name = _read(entry / "provider", 64).decode("ascii", "replace").strip()
        except OSError as exc:
            raise ServiceUnavailable(f"configfs-tsm provider unreadable: {exc.strerror}") from exc
        finally:
            self._close_entry(entry)
        if name not in _PLATFORM_OF_PROVIDER:
            raise ServiceUnavailable(f"configfs-tsm provider {name!r} is not supported")
        return _PLATFORM_OF_PROVIDER[name]

    def _open_entry(self) -> Path:
        entry = self.root / self._entry_name()
        try:
            entry.mkdir(exist_ok=True)
        except OSError as exc:
            raise ServiceUnavailable(
                f"cannot create a configfs-tsm report item: {exc.strerror}",
                remedy="run inside a SEV-SNP or TDX guest with configfs mounted and write access",
            ) from exc
        return entry

    @staticmethod
    def _close_entry(entry: Path) -> None:
        # configfs removes an item with rmdir; a fake tree with files refuses,
        # which is harmless.
        try:
            entry.rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise

    def evidence(self, report_data: bytes) -> Evidence:
        report_data = check_report_data(report_data)
        entry = self._open_entry()
        try:
            for _ in range(_ATTEMPTS):
                result = self._attempt(entry, report_data)
                if result is not None:
                    report, aux = result
                    break
            else:
                raise ServiceUnavailable("configfs-tsm report kept changing while read")
        except OSError as exc:
            raise ServiceUnavailable(f"configfs-tsm report failed: {exc.strerror}") from exc
        finally:
            self._close_entry(entry)
        certificates = self._certificates
        if self.platform == "sev-snp" and aux:
            certificates = tuple(parse_cert_table(aux)) or self._certificates
        return Evidence(
            platform=self.platform,
            report=report,
            certificates=certificates,
            collateral=self._collateral if self.platform != "sev-snp" else None,
            simulated=False,
        )

    def _attempt(self, entry: Path, report_data: bytes) -> tuple[bytes, bytes] | None:
        if self._privlevel is not None:
            (entry / "privlevel").write_text(f"{self._privlevel}\n")
        with open(entry / "inblob", "wb") as inblob:
            inblob.write(report_data)
        before = _read(entry / "generation", 32).strip()
        report = _read(entry / "outblob", _MAX_OUTBLOB)
        aux_path = entry / "auxblob"
        aux = _read(aux_path, _MAX_OUTBLOB) if aux_path.exists() else b""
        after = _read(entry / "generation", 32).strip()
        if before != after:
            return None
        if not report:
            raise ServiceUnavailable("configfs-tsm returned an empty report")
        return report, aux
