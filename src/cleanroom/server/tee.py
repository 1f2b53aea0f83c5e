"""The clean room's view of its TEE: in-TEE keys, evidence, and the sealing key.

The HPKE key that parties seal to lives only in this process's memory
(inside the confidential VM on real hardware) and changes at every start.
The Ed25519 key that signs receipts, log checkpoints and audit certificates
is kept sealed under the sealing key, so the decision log keeps one identity
across restarts; a missing sealed key is made anew only while the data
directory holds no logged decisions (docs/receipts.md). Both public halves
are in the attested configuration, so a party that verified the evidence
knows they belong to this clean room.

The sealing key protects models at rest, and a key derived from it
authenticates the rows of the store (accounts, sessions, instances, party
keys). On the simulated TEE the sealing key is derived from a root secret kept
in the data directory and bound to the measurement of the running code (like
an SNP derived key with the measurement selected): code that measures
differently cannot unseal what this code sealed. Simulation gives no
confidentiality: the root secret is an ordinary file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from cleanroom.attestation import Evidence
from cleanroom.attestation.fetch import EvidenceFetchers, KdsFetcher, PcsFetcher
from cleanroom.attestation.measurement import package_measurement
from cleanroom.attestation.providers import EvidenceProvider, SevGuestProvider, provider_for
from cleanroom.attestation.providers.sev_guest import SEV_GUEST_DEVICE
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.crypto.binding import config_digest, report_data
from cleanroom.crypto.keys import KeyPair
from cleanroom.errors import ConfigurationError, Error
from cleanroom.policy.decision_log import stored_log_size
from cleanroom.server.settings import ServerSettings

__all__ = ["SIMULATION_WARNING", "Tee"]

log = logging.getLogger("cleanroom.server")

SIMULATION_WARNING = (
    "SIMULATED TEE: this clean room runs without TEE hardware. Its evidence is signed by a "
    "locally generated root and its keys are ordinary memory and files: it gives NO "
    "confidentiality. Use it for development only."
)

KINDS = ("simulated", "sev-snp", "tdx")
_SIGNING_KEY_FILE = "receipt-signing-key.sealed"
_ROOT_SECRET_FILE = "simulated-sealing-root.bin"  # noqa: S105 (a file name)


class Tee:
    """Keys and evidence of one running clean room."""

    def __init__(
        self,
        kind: str,
        data_dir: Path,
        *,
        provider: EvidenceProvider | None = None,
        amd_kds_url: str | None = None,
        intel_pcs_url: str | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ConfigurationError(f"unknown TEE kind {kind!r}; use one of {list(KINDS)}")
        data_dir.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.simulated = kind == "simulated"
        self.hpke = KeyPair()
        # Complete evidence on this side: this clean room's own SEV-SNP evidence
        # (KDS), and its attested-TLS peers' (KDS, PCS). Each is None when not set.
        # No cache directory: what they fetch stays in memory, since the data
        # directory is the host's and a file planted there must never become evidence.
        self.fetchers = EvidenceFetchers(
            kds=None if amd_kds_url is None else KdsFetcher(base_url=amd_kds_url),
            pcs=None if intel_pcs_url is None else PcsFetcher(base_url=intel_pcs_url),
        )
        # The attested-TLS key (docs/attested-tls.md): made here, never leaves memory.
        self.tls_key = ec.generate_private_key(ec.SECP256R1())
        self._provider: EvidenceProvider
        self.sealing_key: bytes | None
        self.sealing_label: bytes | None
        if self.simulated:
            self.measurement: bytes | None = package_measurement()
            self._simulator: SimulatedSnpTee | None = SimulatedSnpTee.open(data_dir)
            # The simulator reports package_measurement() as MEASUREMENT.
            self._provider = provider or self._simulator
            self.sealing_key, self.sealing_label = self._simulated_sealing_key(data_dir)
            self.signing_key = self._sealed_signing_key(data_dir / _SIGNING_KEY_FILE)
            log.warning(SIMULATION_WARNING)
        else:
            # On hardware the launch digest is measured by the platform, not by us.
            self.measurement = None
            self._simulator = None
            self._provider = provider or provider_for(
                kind, data_dir, fetcher=self.fetchers.kds if kind == "sev-snp" else None
            )
            root = self._hardware_sealing_root(kind)
            if root is not None:
                self.sealing_key, self.sealing_label = _sealing_key(root, salt=b"")
                self.signing_key = self._sealed_signing_key(data_dir / _SIGNING_KEY_FILE)
            else:
                # Nothing can be sealed at rest: models live in memory only and the
                # signing key changes at every start.
                self.sealing_key, self.sealing_label = None, None
                self.signing_key = Ed25519PrivateKey.generate()
                log.warning(
                    "TEE %s: no sealing key available; models are kept in memory only and "
                    "must be uploaded again after a restart",
                    kind,
                )

    def _hardware_sealing_root(self, kind: str) -> bytes | None:
        """A key only this guest, launched with this code, can derive (SNP MSG_KEY_REQ).

        TDX has no firmware-derived keys; there a key broker would release one.
        """
        derive = getattr(self._provider, "derived_key", None)
        if derive is None and kind == "sev-snp" and SEV_GUEST_DEVICE.exists():
            derive = SevGuestProvider().derived_key
        if derive is None:
            return None
        try:
            root = derive()
        except Error as exc:
            log.warning("TEE %s: the firmware did not derive a sealing key: %s", kind, exc.message)
            return None
        return bytes(root) if isinstance(root, bytes | bytearray) and len(root) == 32 else None

    @property
    def store_integrity_key(self) -> bytes | None:
        """The key that authenticates the rows of the service's store, or None.

        Derived from the sealing key, so it is bound to the measurement like
        everything sealed: rows written by other code, or altered outside the
        clean room, do not verify. None when there is no sealing key.
        """
        if self.sealing_key is None:
            return None
        return HKDF(hashes.SHA256(), 32, salt=b"", info=b"cleanroom/v1 store integrity key").derive(
            self.sealing_key
        )

    @property
    def simulated_root(self) -> Path | None:
        return None if self._simulator is None else self._simulator.root_pem_path

    def _sealed_signing_key(self, path: Path) -> Ed25519PrivateKey:
        """The receipt-signing key, kept sealed under the sealing key so the log keeps its id.

        A blob sealed by other code (another measurement) does not open; a new
        key is made then, and the log's later checkpoints carry the new key id.
        No blob at all while the data directory holds a logged history is
        refused (:func:`_refuse_orphaned_log`): only a first start makes a key.
        """
        assert self.sealing_key is not None
        aead = AESGCM(self.sealing_key)
        if path.exists():
            blob = path.read_bytes()
            try:
                raw = aead.decrypt(blob[:12], blob[12:], self.sealing_label)
                return Ed25519PrivateKey.from_private_bytes(raw)
            except (InvalidTag, ValueError):
                log.warning("the sealed receipt-signing key does not open here; making a new one")
        else:
            _refuse_orphaned_log(path)
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        nonce = os.urandom(12)
        tmp = path.with_suffix(".partial")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(nonce + aead.encrypt(nonce, raw, self.sealing_label))
        os.replace(tmp, path)
        return key

    def tls_spki_der(self) -> bytes:
        """The TLS key's DER SubjectPublicKeyInfo, as bound by ``keys.tls_spki_sha256``."""
        return self.tls_key.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )

    def signing_public_key_pem(self) -> str:
        return (
            self.signing_key.public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    def evidence(self, nonce: bytes, config: dict[str, Any]) -> Evidence:
        data = report_data(
            hpke_public_key=self.hpke.public.raw, nonce=nonce, config_digest=config_digest(config)
        )
        return self._provider.evidence(data)

    def _simulated_sealing_key(self, data_dir: Path) -> tuple[bytes, bytes]:
        path = data_dir / _ROOT_SECRET_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32))
        root = path.read_bytes()
        if len(root) != 32:
            raise ConfigurationError(f"{path} is damaged (expected 32 bytes)")
        assert self.measurement is not None
        return _sealing_key(root, salt=self.measurement)


def _refuse_orphaned_log(key_path: Path) -> None:
    """Refuse to make a new log key while the data directory holds entries the old one signed.

    A new key would re-sign that history, so a host could restore an older
    store, delete the sealed key and continue a forked log under a fresh,
    self-consistent identity.
    """
    db = ServerSettings(data_dir=key_path.parent).db_path
    size = stored_log_size(db)
    if size:
        raise ConfigurationError(
            f"the sealed receipt-signing key {key_path} is missing, but {db} holds a "
            f"decision log of {size} entries signed with it; a new key would re-sign "
            "that history, so the clean room does not start",
            remedy=(
                f"restore {key_path.name}; or, to start a new log, move {db} (with its "
                "-wal and -shm files) aside: that starts a new store too, since accounts "
                "and instances are kept in the same database"
            ),
        )


def _sealing_key(root: bytes, *, salt: bytes) -> tuple[bytes, bytes]:
    """The sealing key and its public label, from a TEE-held root secret."""
    key = HKDF(hashes.SHA256(), 32, salt=salt, info=b"cleanroom/v1 sealing key").derive(root)
    label = hashlib.sha256(b"cleanroom/v1 sealing key label\x00" + key).digest()
    return key, label
