"""Where evidence comes from: TEE hardware or the simulated TEE.

``provider_for(kind, data_dir)`` chooses one for ``cleanroom serve --tee``:

* ``"simulated"``: :class:`~cleanroom.attestation.simulated.SimulatedSnpTee`
  rooted in *data_dir* (no confidentiality);
* ``"sev-snp"``: configfs-tsm when present, else ``/dev/sev-guest``;
* ``"tdx"``: configfs-tsm.

Certificates the host does not supply with the report (SEV-SNP VCEK/ASK
chain) and Intel DCAP collateral are read from *data_dir* when present:
``tee-certificates/`` (PEM or DER files) and ``tdx-collateral.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asn1crypto.x509

from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.evidence import Evidence
from cleanroom.attestation.fetch import KdsFetcher, complete_evidence
from cleanroom.attestation.host_files import read_regular_file
from cleanroom.attestation.providers.base import EvidenceProvider
from cleanroom.attestation.providers.configfs import CONFIGFS_TSM_REPORT, ConfigfsTsmProvider
from cleanroom.attestation.providers.sev_guest import SEV_GUEST_DEVICE, SevGuestProvider
from cleanroom.errors import ConfigurationError, ServiceUnavailable

__all__ = [
    "ConfigfsTsmProvider",
    "EvidenceProvider",
    "FetchingProvider",
    "SevGuestProvider",
    "cached_certificates",
    "provider_for",
]

CERTIFICATE_DIR = "tee-certificates"
COLLATERAL_FILE = "tdx-collateral.json"
KINDS = ("simulated", "sev-snp", "tdx")


# Host-supplied files are read only as regular files of at most this size.
_MAX_HOST_FILE = 4 * 1024 * 1024


def cached_certificates(data_dir: Path) -> tuple[bytes, ...]:
    """DER certificates from ``data_dir/tee-certificates/`` (sorted by file name).

    The directory is the host's: a file is used only if it is a regular file,
    not a link, and every certificate in it parses; anything else is refused.
    """
    directory = Path(data_dir) / CERTIFICATE_DIR
    if not directory.is_dir() or directory.is_symlink():
        return ()
    out: list[bytes] = []
    for path in sorted(directory.iterdir()):
        data = read_regular_file(path, _MAX_HOST_FILE)
        if data is None:
            raise ConfigurationError(
                f"{str(path)!r} is not a regular file of at most {_MAX_HOST_FILE} bytes",
                remedy="put certificate files (PEM or DER) there, not links or directories",
            )
        found = split_certificates(data)
        for der in found:
            try:
                asn1crypto.x509.Certificate.load(der, strict=True).native  # noqa: B018
            except (ValueError, TypeError):
                raise ConfigurationError(
                    f"{str(path)!r} holds something else than certificates"
                ) from None
        out.extend(found)
    return tuple(out)


def _cached_collateral(data_dir: Path) -> dict[str, Any] | None:
    path = Path(data_dir) / COLLATERAL_FILE
    if not path.exists() and not path.is_symlink():
        return None
    data = read_regular_file(path, _MAX_HOST_FILE)
    if data is None:
        raise ConfigurationError(
            f"{str(path)!r} is not a regular file of at most {_MAX_HOST_FILE} bytes"
        )
    try:
        doc = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise ConfigurationError(f"cannot read {str(path)!r} as JSON") from exc
    if not isinstance(doc, dict):
        raise ConfigurationError(f"{str(path)!r} must hold a JSON object")
    return doc


def provider_for(
    kind: str,
    data_dir: Path,
    *,
    configfs_root: Path = CONFIGFS_TSM_REPORT,
    sev_guest_device: Path = SEV_GUEST_DEVICE,
    configfs_entry_name: Callable[[], str] | None = None,
    fetcher: KdsFetcher | None = None,
) -> EvidenceProvider:
    """The evidence provider for ``--tee`` *kind* (see the module docstring).

    ``configfs_root``, ``sev_guest_device`` and ``configfs_entry_name`` (the
    report item's name, random by default) locate the kernel interfaces.
    ``fetcher`` (off by default) completes SEV-SNP evidence from AMD KDS,
    e.g. ``KdsFetcher()``: the VCEK chain when the host gave
    none, and the current AMD CRL, which clients require by default.
    """
    if kind == "simulated":
        from cleanroom.attestation.simulated import SimulatedSnpTee

        return SimulatedSnpTee.open(Path(data_dir))
    if kind not in KINDS:
        raise ConfigurationError(f"unknown TEE kind {kind!r}", remedy=f"use {', '.join(KINDS)}")
    certificates = cached_certificates(data_dir)
    provider: EvidenceProvider
    if ConfigfsTsmProvider.available(configfs_root):
        provider = ConfigfsTsmProvider(
            configfs_root,
            certificates=certificates,
            collateral=_cached_collateral(data_dir),
            entry_name=configfs_entry_name,
        )
        if provider.platform != kind:
            raise ConfigurationError(
                f"--tee {kind} was asked for but this guest's TSM is {provider.platform}"
            )
    elif kind == "sev-snp" and SevGuestProvider.available(sev_guest_device):
        provider = SevGuestProvider(sev_guest_device, certificates=certificates)
    else:
        raise ServiceUnavailable(
            f"no {kind} attestation interface found",
            remedy=f"expected {configfs_root} (configfs-tsm)"
            + (f" or {sev_guest_device}" if kind == "sev-snp" else ""),
        )
    if fetcher is not None and kind == "sev-snp":
        return FetchingProvider(provider, fetcher)
    return provider


class FetchingProvider:
    """Wraps a SEV-SNP provider: evidence is completed from AMD KDS (through
    *fetcher*, which caches): the VCEK chain when none came with it, and the
    current AMD CRL."""

    simulated = False

    def __init__(self, inner: EvidenceProvider, fetcher: KdsFetcher) -> None:
        self.platform = inner.platform
        self._inner = inner
        self._fetcher = fetcher

    def evidence(self, report_data: bytes) -> Evidence:
        return complete_evidence(self._inner.evidence(report_data), kds=self._fetcher)
