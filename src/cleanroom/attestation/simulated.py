"""The simulated TEE: real SEV-SNP reports signed by a locally made AMD-style chain.

SIMULATION ONLY. THIS GIVES NO CONFIDENTIALITY AND NO INTEGRITY. The private
keys that sign the "hardware" reports are ordinary files in the data
directory (mode 0600), readable by whoever runs or administers the host. Any
such party can forge evidence for any measurement. Use it to develop and
test without TEE hardware; never to protect a real secret. Clients accept its
evidence only when their attestation policy sets ``allow_simulated`` and
names this TEE's root (``simulated-root.pem``).

What it produces is the real format, so verification of simulated and real
evidence is one code path (:mod:`cleanroom.attestation.snp.verify`) with a
different root:

* an ARK (self-signed, RSA-3072 rather than AMD's RSA-4096 so a fresh data
  directory is ready in well under a second) -> ASK -> VCEK (EC P-384) chain
  with AMD's certificate profile: RSASSA-PSS SHA-384 (MGF1 SHA-384, salt 48)
  signatures, common names ``ARK-Simulated`` / ``SEV-Simulated`` /
  ``SEV-VCEK``, and the VCEK extensions of AMD's VCEK specification (57230):
  structVersion, productName, the SPLs of the reported TCB, and hwID equal to
  CHIP_ID;
* ATTESTATION_REPORT version 3 (1184 bytes, Milan CPUID, SIGNATURE_ALGO 1,
  POLICY bit 17 set, VMPL 0) signed with ECDSA P-384 over bytes
  0x000-0x29F, R and S stored as 72-byte little-endian fields (SEV-SNP ABI
  specification 56860, "ATTESTATION_REPORT Structure").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asn1crypto.core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from cleanroom.attestation.evidence import Evidence
from cleanroom.attestation.measurement import package_measurement
from cleanroom.attestation.providers.base import check_report_data
from cleanroom.attestation.snp import abi
from cleanroom.errors import ConfigurationError

__all__ = ["SIMULATED_TCB", "SimulatedSnpTee"]

ROOT_FILE = "simulated-root.pem"
_ASK_FILE = "simulated-ask.pem"
_VCEK_FILE = "simulated-vcek.pem"
_ARK_KEY = "simulated-ark.key"
_ASK_KEY = "simulated-ask.key"
_VCEK_KEY = "simulated-vcek.key"
_CHIP_FILE = "simulated-chip-id"
_LOCK_FILE = "simulated-tee.lock"

_PRODUCT = "Milan"
_PRODUCT_NAME = "Milan-B0"
_CPUID = (0x19, 0x01, 0x01)  # family 19h model 01h stepping 1: a Milan part
_FIRMWARE = (1, 55, 21)  # CURRENT_MAJOR, CURRENT_MINOR, CURRENT_BUILD
SIMULATED_TCB = abi.TcbVersion(BOOT_LOADER=4, TEE=0, SNP=24, MICROCODE=219)
_RSA_BITS = 3072
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
_AMD_ARC = "1.3.6.1.4.1.3704.1."


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Confidential Clean Room SIMULATION"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ext(oid: str, value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(_AMD_ARC + oid), value)


def _der_int(value: int) -> bytes:
    return bytes(asn1crypto.core.Integer(value).dump())


def _ca_cert(
    subject: str,
    issuer: str,
    public_key: rsa.RSAPublicKey,
    signer: rsa.RSAPrivateKey,
    now: dt.datetime,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=25 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(signer, hashes.SHA384(), rsa_padding=_PSS)
    )


def _vcek_cert(
    public_key: ec.EllipticCurvePublicKey,
    signer: rsa.RSAPrivateKey,
    chip_id: bytes,
    now: dt.datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("SEV-VCEK"))
        .issuer_name(_name("SEV-Simulated"))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7 * 365))
        .add_extension(_ext("1", _der_int(0)), critical=False)
        .add_extension(
            _ext("2", bytes(asn1crypto.core.IA5String(_PRODUCT_NAME).dump())), critical=False
        )
        .add_extension(_ext("3.1", _der_int(SIMULATED_TCB.BOOT_LOADER)), critical=False)
        .add_extension(_ext("3.2", _der_int(SIMULATED_TCB.TEE)), critical=False)
        .add_extension(_ext("3.3", _der_int(SIMULATED_TCB.SNP)), critical=False)
        .add_extension(_ext("3.8", _der_int(SIMULATED_TCB.MICROCODE)), critical=False)
        # hwID: the raw 64-byte chip id as the extension value, as AMD's KDS issues it.
        .add_extension(_ext("4", chip_id), critical=False)
    )
    return builder.sign(signer, hashes.SHA384(), rsa_padding=_PSS)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


def _pem_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    with open(data_dir / _LOCK_FILE, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _create(data_dir: Path) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ark_key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    ask_key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    vcek_key = ec.generate_private_key(ec.SECP384R1())
    chip_id = secrets.token_bytes(64)
    ark = _ca_cert("ARK-Simulated", "ARK-Simulated", ark_key.public_key(), ark_key, now)
    ask = _ca_cert("SEV-Simulated", "ARK-Simulated", ask_key.public_key(), ark_key, now)
    vcek = _vcek_cert(vcek_key.public_key(), ask_key, chip_id, now)
    _write_private(data_dir / _ARK_KEY, _pem_key(ark_key))
    _write_private(data_dir / _ASK_KEY, _pem_key(ask_key))
    _write_private(data_dir / _VCEK_KEY, _pem_key(vcek_key))
    _write_private(data_dir / _CHIP_FILE, chip_id)
    (data_dir / _ASK_FILE).write_bytes(ask.public_bytes(serialization.Encoding.PEM))
    (data_dir / _VCEK_FILE).write_bytes(vcek.public_bytes(serialization.Encoding.PEM))
    # The root is written last: its presence marks a complete data directory.
    (data_dir / ROOT_FILE).write_bytes(ark.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class _Chain:
    vcek_key: ec.EllipticCurvePrivateKey
    chip_id: bytes
    certificates: tuple[bytes, bytes, bytes]


def _load(data_dir: Path) -> _Chain:
    try:
        key = serialization.load_pem_private_key((data_dir / _VCEK_KEY).read_bytes(), None)
        chip_id = (data_dir / _CHIP_FILE).read_bytes()
        certs = tuple(
            x509.load_pem_x509_certificate((data_dir / name).read_bytes()).public_bytes(
                serialization.Encoding.DER
            )
            for name in (_VCEK_FILE, _ASK_FILE, ROOT_FILE)
        )
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"the simulated TEE in {str(data_dir)!r} is incomplete or corrupt",
            remedy="remove its simulated-* files to create a new simulated TEE",
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or len(chip_id) != 64:
        raise ConfigurationError(f"the simulated TEE in {str(data_dir)!r} is corrupt")
    return _Chain(key, chip_id, (certs[0], certs[1], certs[2]))


class SimulatedSnpTee:
    """A simulated SEV-SNP TEE rooted in a data directory (SIMULATION ONLY).

    Implements :class:`~cleanroom.attestation.providers.base.EvidenceProvider`.
    """

    platform = "sev-snp"
    simulated = True

    def __init__(self, data_dir: Path, chain: _Chain) -> None:
        self.data_dir = data_dir
        self.root_pem_path = data_dir / ROOT_FILE
        self._chain = chain
        self._report_id = secrets.token_bytes(32)

    @classmethod
    def open(cls, data_dir: Path) -> SimulatedSnpTee:
        """Load the simulated TEE of *data_dir*, creating its keys and
        certificates the first time (safe against concurrent openers)."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        with _locked(data_dir):
            if not (data_dir / ROOT_FILE).exists():
                _create(data_dir)
            chain = _load(data_dir)
        return cls(data_dir, chain)

    @property
    def root_pem(self) -> bytes:
        """The simulated ARK certificate, PEM: what a client policy must name."""
        return self.root_pem_path.read_bytes()

    def evidence(
        self,
        report_data: bytes,
        *,
        measurement: bytes | None = None,
        host_data: bytes = bytes(32),
        debug: bool = False,
    ) -> Evidence:
        """A signed ATTESTATION_REPORT binding *report_data* (64 bytes).

        ``measurement`` defaults to :func:`package_measurement` (48 bytes);
        ``host_data`` is 32 bytes; ``debug`` sets POLICY bit 19.
        """
        report_data = check_report_data(report_data)
        if measurement is None:
            measurement = package_measurement()
        if len(measurement) != 48 or len(host_data) != 32:
            raise ConfigurationError("measurement must be 48 bytes and host_data 32 bytes")
        report = self._report(report_data, bytes(measurement), bytes(host_data), debug)
        return Evidence(
            platform="sev-snp",
            report=report,
            certificates=self._chain.certificates,
            collateral=None,
            simulated=True,
        )

    def _report(
        self, report_data: bytes, measurement: bytes, host_data: bytes, debug: bool
    ) -> bytes:
        tcb = abi.encode_tcb(SIMULATED_TCB, _PRODUCT)
        policy = (
            abi.POLICY_SMT | abi.POLICY_RESERVED_MUST_BE_ONE | (abi.POLICY_DEBUG if debug else 0)
        )
        body = bytearray(abi.REPORT_SIZE)
        struct.pack_into("<IIQ", body, 0x000, 3, 0, policy)  # VERSION, GUEST_SVN, POLICY
        struct.pack_into("<II", body, 0x030, 0, abi.SIGNATURE_ALGO_ECDSA_P384_SHA384)  # VMPL, algo
        struct.pack_into("<QQ", body, 0x038, tcb, 0x1)  # CURRENT_TCB, PLATFORM_INFO (SMT_EN)
        struct.pack_into("<I", body, 0x048, 0)  # KEY_INFO: SIGNING_KEY 0 = VCEK
        body[0x050:0x090] = report_data
        body[0x090:0x0C0] = measurement
        body[0x0C0:0x0E0] = host_data
        body[0x140:0x160] = self._report_id
        body[0x160:0x180] = b"\xff" * 32  # REPORT_ID_MA: no migration agent
        struct.pack_into("<Q", body, 0x180, tcb)  # REPORTED_TCB
        body[0x188], body[0x189], body[0x18A] = _CPUID
        body[0x1A0:0x1E0] = self._chain.chip_id
        struct.pack_into("<Q", body, 0x1E0, tcb)  # COMMITTED_TCB
        body[0x1E8], body[0x1E9], body[0x1EA] = _FIRMWARE[2], _FIRMWARE[1], _FIRMWARE[0]
        body[0x1EC], body[0x1ED], body[0x1EE] = _FIRMWARE[2], _FIRMWARE[1], _FIRMWARE[0]
        struct.pack_into("<Q", body, 0x1F0, tcb)  # LAUNCH_TCB
        signature = self._chain.vcek_key.sign(
            bytes(body[: abi.SIGNED_LENGTH]), ec.ECDSA(hashes.SHA384())
        )
        r, s = decode_dss_signature(signature)
        body[0x2A0:0x2E8] = r.to_bytes(72, "little")
        body[0x2E8:0x330] = s.to_bytes(72, "little")
        return bytes(body)
