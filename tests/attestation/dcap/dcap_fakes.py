"""A fake Intel DCAP world built from test keys: root CA, PCK CA, PCK with SGX
extensions, TCB Signing cert, CRLs, signed tcbInfo / QE identity, and quotes.

Every option defaults to a consistent, valid setup; a test changes one field
(``dataclasses.replace``) to break exactly one check. The fake root is passed
to the verifier as an additional root, so results are ``simulated``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, ClassVar

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
SGX_OID = "1.2.840.113741.1.13.1"
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
QE_MRSIGNER = bytes.fromhex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5")
FMSPC = bytes.fromhex("b0c06f000000")
CPUSVN = (3, 3, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0)
TDX_SVN = bytes([6, 1, 3] + [0] * 13)


class _Entry(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[str, type[core.Asn1Value]]]] = [
        ("id", core.ObjectIdentifier),
        ("value", core.Any),
    ]


class _Entries(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _Entry


class _SgxType(core.Enumerated):  # type: ignore[misc]
    _map: ClassVar[dict[int, int]] = {0: 0, 1: 1, 2: 2}


def _entry(oid: str, value: core.Asn1Value) -> _Entry:
    return _Entry({"id": oid, "value": value})


def sgx_extension(cpusvn: tuple[int, ...], pcesvn: int, fmspc: bytes, pceid: bytes) -> bytes:
    tcb = [_entry(f"{SGX_OID}.2.{i + 1}", core.Integer(svn)) for i, svn in enumerate(cpusvn)]
    tcb.append(_entry(f"{SGX_OID}.2.17", core.Integer(pcesvn)))
    tcb.append(_entry(f"{SGX_OID}.2.18", core.OctetString(bytes(cpusvn))))
    top = _Entries(
        [
            _entry(f"{SGX_OID}.1", core.OctetString(bytes(16))),
            _entry(f"{SGX_OID}.2", _Entries(tcb)),
            _entry(f"{SGX_OID}.3", core.OctetString(pceid)),
            _entry(f"{SGX_OID}.4", core.OctetString(fmspc)),
            _entry(f"{SGX_OID}.5", _SgxType(1)),
        ]
    )
    out: bytes = top.dump()
    return out


@cache
def key(name: str) -> ec.EllipticCurvePrivateKey:
    """One P-256 key per name, generated once per session."""
    del name
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
        ]
    )


def cert(
    subject_cn: str,
    subject_key: ec.EllipticCurvePrivateKey,
    issuer_cn: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    extensions: tuple[x509.ExtensionType, ...] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn))
        .issuer_name(_name(issuer_cn))
        .public_key(subject_key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def crl(
    issuer_cn: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    revoked: tuple[int, ...],
    last_update: datetime,
    next_update: datetime,
) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name(issuer_cn))
        .last_update(last_update)
        .next_update(next_update)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(last_update)
            .build()
        )
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def raw_sign(signer: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(signer.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def raw_public(k: ec.EllipticCurvePrivateKey) -> bytes:
    return k.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )[1:]


def enclave_report(
    *,
    cpusvn: bytes = bytes(CPUSVN),
    miscselect: int = 0,
    attributes: bytes = bytes.fromhex("1100000000000000e700000000000000"),
    mrenclave: bytes = bytes(32),
    mrsigner: bytes = bytes(32),
    isvprodid: int = 0,
    isvsvn: int = 0,
    report_data: bytes = bytes(64),
) -> bytes:
    body = bytearray(384)
    body[0:16] = cpusvn
    struct.pack_into("<I", body, 0x10, miscselect)
    body[0x30:0x40] = attributes
    body[0x40:0x60] = mrenclave
    body[0x80:0xA0] = mrsigner
    struct.pack_into("<HH", body, 0x100, isvprodid, isvsvn)
    body[0x140:0x180] = report_data
    return bytes(body)


def td_report(
    *,
    tee_tcb_svn: bytes = TDX_SVN,
    td_attributes: bytes = bytes(8),
    mrsignerseam: bytes = bytes(48),
    report_data: bytes = bytes(range(64)),
    tdx15: bool = False,
    tee_tcb_svn2: bytes = bytes(16),
) -> bytes:
    body = bytearray(648 if tdx15 else 584)
    body[0:16] = tee_tcb_svn
    body[0x10:0x40] = b"\x5a" * 48  # MRSEAM
    body[0x40:0x70] = mrsignerseam
    body[0x78:0x80] = td_attributes
    body[0x80:0x88] = bytes.fromhex("e702060000000000")
    body[0x88:0xB8] = b"\x11" * 48  # MRTD
    body[0xB8:0xE8] = b"\x22" * 48  # MRCONFIGID
    for i in range(4):
        body[0x148 + 48 * i : 0x178 + 48 * i] = bytes([0x30 + i]) * 48
    body[0x208:0x248] = report_data
    if tdx15:
        body[0x248:0x258] = tee_tcb_svn2
    return bytes(body)


@dataclass(frozen=True)
class World:
    """Everything that goes into one fake quote and its collateral."""

    tee: str = "TDX"  # or "SGX"
    version: int = 4
    tdx15: bool = False
    td_attributes: bytes = bytes(8)
    tee_tcb_svn: bytes = TDX_SVN
    tee_tcb_svn2: bytes = bytes(16)
    mrsignerseam: bytes = bytes(48)
    sgx_attributes: bytes = bytes.fromhex("0500000000000000e700000000000000")
    # (offset, bytes) written over the quote body before it is signed.
    body_patches: tuple[tuple[int, bytes], ...] = ()
    cpusvn: tuple[int, ...] = CPUSVN
    pcesvn: int = 11
    pck_fmspc: bytes = FMSPC
    pck_pceid: bytes = b"\x00\x00"
    qe_mrsigner: bytes = QE_MRSIGNER
    qe_isvprodid: int = 2
    qe_isvsvn: int = 6
    qe_auth_data: bytes = bytes(range(32))
    qe_attributes: bytes = bytes.fromhex("1100000000000000e700000000000000")
    bind_qe: bool = True
    pck_serial: int = 0x1234
    pck_not_after: datetime = NOW + timedelta(days=365)
    pck_ca_cn: str = "Intel SGX PCK Platform CA"
    pck_revoked: tuple[int, ...] = ()
    pck_ca_revoked: bool = False
    signing_revoked: bool = False
    issue: datetime = NOW - timedelta(days=1)
    next_update: datetime = NOW + timedelta(days=29)
    qe_next_update: datetime = NOW + timedelta(days=29)
    pck_crl_next_update: datetime = NOW + timedelta(days=29)
    root_crl_next_update: datetime = NOW + timedelta(days=300)
    signing_not_after: datetime = NOW + timedelta(days=3650)
    tcb_info_id: str = ""  # "" = follows tee
    qe_identity_id: str = ""
    tcb_fmspc: bytes = FMSPC
    tcb_pceid: bytes = b"\x00\x00"
    tcb_levels: tuple[dict[str, Any], ...] = ()  # () = a default ladder
    qe_levels: tuple[dict[str, Any], ...] = (
        {"tcb": {"isvsvn": 4}, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": "UpToDate"},
        {
            "tcb": {"isvsvn": 2},
            "tcbDate": "2023-01-01T00:00:00Z",
            "tcbStatus": "OutOfDate",
            "advisoryIDs": ["INTEL-SA-00999"],
        },
    )
    module_levels: tuple[dict[str, Any], ...] = (
        {"tcb": {"isvsvn": 4}, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": "UpToDate"},
        {
            "tcb": {"isvsvn": 2},
            "tcbDate": "2023-08-09T00:00:00Z",
            "tcbStatus": "OutOfDate",
            "advisoryIDs": ["INTEL-SA-00888"],
        },
    )
    extra: dict[str, Any] = field(default_factory=dict)

    def but(self, **changes: Any) -> World:
        return replace(self, **changes)


def level(
    sgx: tuple[int, ...], pcesvn: int, tdx: tuple[int, ...], status: str, *advisories: str
) -> dict[str, Any]:
    tcb: dict[str, Any] = {
        "sgxtcbcomponents": [{"svn": s} for s in sgx],
        "pcesvn": pcesvn,
    }
    if tdx:
        tcb["tdxtcbcomponents"] = [{"svn": s} for s in tdx]
    out: dict[str, Any] = {"tcb": tcb, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": status}
    if advisories:
        out["advisoryIDs"] = list(advisories)
    return out


def default_levels(tee: str) -> tuple[dict[str, Any], ...]:
    tdx = (5, 0, 2) + (0,) * 13 if tee == "TDX" else ()
    return (
        level(CPUSVN, 11, tdx, "UpToDate"),
        level(
            (3, 3, 2, 2, 4, 1, 0, 0) + (0,) * 8, 11, tdx, "ConfigurationNeeded", "INTEL-SA-00111"
        ),
        level((2, 2, 2, 2, 3, 1, 0, 0) + (0,) * 8, 5, tdx, "OutOfDate", "INTEL-SA-00222"),
    )


@dataclass(frozen=True)
class Built:
    quote: bytes
    collateral: dict[str, Any]
    root_der: bytes
    pck: x509.Certificate


ROOT_CN = "Test SGX Root CA"
SIGNING_CN = "Intel SGX TCB Signing"


def build(world: World) -> Built:
    root_key, ca_key, pck_key = key("root"), key("pck-ca"), key("pck")
    signing_key, attest_key = key("signing"), key("attest")
    start = NOW - timedelta(days=400)
    root = cert(
        ROOT_CN,
        root_key,
        ROOT_CN,
        root_key,
        ca=True,
        serial=1,
        not_before=start,
        not_after=NOW + timedelta(days=9000),
    )
    pck_ca = cert(
        world.pck_ca_cn,
        ca_key,
        ROOT_CN,
        root_key,
        ca=True,
        serial=2,
        not_before=start,
        not_after=NOW + timedelta(days=3000),
    )
    sgx_ext = x509.UnrecognizedExtension(
        x509.ObjectIdentifier(SGX_OID),
        sgx_extension(world.cpusvn, world.pcesvn, world.pck_fmspc, world.pck_pceid),
    )
    pck = cert(
        "Intel SGX PCK Certificate",
        pck_key,
        world.pck_ca_cn,
        ca_key,
        ca=False,
        serial=world.pck_serial,
        not_before=start,
        not_after=world.pck_not_after,
        extensions=(sgx_ext,),
    )
    signing = cert(
        SIGNING_CN,
        signing_key,
        ROOT_CN,
        root_key,
        ca=False,
        serial=3,
        not_before=start,
        not_after=world.signing_not_after,
    )

    # The quote.
    is_tdx = world.tee == "TDX"
    header = struct.pack("<HHIHH", world.version, 2, 0x81 if is_tdx else 0, 0, 0)
    header += INTEL_QE_VENDOR_ID + bytes(20)
    if is_tdx:
        body = td_report(
            tee_tcb_svn=world.tee_tcb_svn,
            td_attributes=world.td_attributes,
            mrsignerseam=world.mrsignerseam,
            tdx15=world.tdx15,
            tee_tcb_svn2=world.tee_tcb_svn2,
        )
        body_type = 3 if world.tdx15 else 2
    else:
        body = enclave_report(
            attributes=world.sgx_attributes,
            mrenclave=b"\xee" * 32,
            mrsigner=b"\x55" * 32,
            isvprodid=7,
            isvsvn=3,
            report_data=bytes(range(64)),
        )
        body_type = 1
    for offset, patch in world.body_patches:
        body = body[:offset] + patch + body[offset + len(patch) :]
    descriptor = struct.pack("<HI", body_type, len(body)) if world.version == 5 else b""
    signed = header + descriptor + body
    attest_raw = raw_public(attest_key)
    binding = hashlib.sha256(attest_raw + world.qe_auth_data).digest() + bytes(32)
    qe_report = enclave_report(
        attributes=world.qe_attributes,
        mrsigner=world.qe_mrsigner,
        isvprodid=world.qe_isvprodid,
        isvsvn=world.qe_isvsvn,
        report_data=binding if world.bind_qe else bytes(64),
    )
    chain = pem(pck, pck_ca, root).encode() + b"\x00"
    qe_cert_data = (
        qe_report
        + raw_sign(pck_key, qe_report)
        + struct.pack("<H", len(world.qe_auth_data))
        + world.qe_auth_data
        + struct.pack("<HI", 5, len(chain))
        + chain
    )
    sig_data = raw_sign(attest_key, signed) + attest_raw
    if world.version == 3:
        sig_data += qe_cert_data
    else:
        sig_data += struct.pack("<HI", 6, len(qe_cert_data)) + qe_cert_data
    quote = signed + struct.pack("<I", len(sig_data)) + sig_data

    # The collateral.
    iso = "%Y-%m-%dT%H:%M:%SZ"
    tcb_info: dict[str, Any] = {
        "id": world.tcb_info_id or world.tee,
        "version": 3,
        "issueDate": world.issue.strftime(iso),
        "nextUpdate": world.next_update.strftime(iso),
        "fmspc": world.tcb_fmspc.hex().upper(),
        "pceId": world.tcb_pceid.hex().upper(),
        "tcbType": 0,
        "tcbEvaluationDataNumber": 17,
    }
    if is_tdx:
        tcb_info["tdxModule"] = {
            "mrsigner": "00" * 48,
            "attributes": "0000000000000000",
            "attributesMask": "FFFFFFFFFFFFFFFF",
        }
        tcb_info["tdxModuleIdentities"] = [
            {
                "id": "TDX_01",
                "mrsigner": "00" * 48,
                "attributes": "0000000000000000",
                "attributesMask": "FFFFFFFFFFFFFFFF",
                "tcbLevels": list(world.module_levels),
            }
        ]
    tcb_info["tcbLevels"] = list(world.tcb_levels or default_levels(world.tee))
    qe_identity = {
        "id": world.qe_identity_id or ("TD_QE" if is_tdx else "QE"),
        "version": 2,
        "issueDate": world.issue.strftime(iso),
        "nextUpdate": world.qe_next_update.strftime(iso),
        "tcbEvaluationDataNumber": 17,
        "miscselect": "00000000",
        "miscselectMask": "FFFFFFFF",
        "attributes": "11000000000000000000000000000000",
        "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
        "mrsigner": QE_MRSIGNER.hex().upper(),
        "isvprodid": 2,
        "tcbLevels": list(world.qe_levels),
    }
    tcb_text = json.dumps(tcb_info, separators=(",", ":"))
    qe_text = json.dumps(qe_identity, separators=(",", ":"))
    root_revoked = tuple(
        serial for serial, flag in ((2, world.pck_ca_revoked), (3, world.signing_revoked)) if flag
    )
    collateral: dict[str, Any] = {
        "pck_crl_issuer_chain": pem(pck_ca, root),
        "root_ca_crl": crl(
            ROOT_CN, root_key, root_revoked, world.issue, world.root_crl_next_update
        ).hex(),
        "pck_crl": crl(
            world.pck_ca_cn, ca_key, world.pck_revoked, world.issue, world.pck_crl_next_update
        ).hex(),
        "tcb_info_issuer_chain": pem(signing, root),
        "tcb_info": tcb_text,
        "tcb_info_signature": raw_sign(signing_key, tcb_text.encode()).hex(),
        "qe_identity_issuer_chain": pem(signing, root),
        "qe_identity": qe_text,
        "qe_identity_signature": raw_sign(signing_key, qe_text.encode()).hex(),
    }
    collateral.update(world.extra)
    return Built(
        quote=quote,
        collateral=collateral,
        root_der=root.public_bytes(serialization.Encoding.DER),
        pck=pck,
    )
