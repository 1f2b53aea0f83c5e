"""The public surface: simulated evidence verifies, and every mutation of the
report, the chain or the policy is refused with the right error."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

import cleanroom.attestation as attestation
from cleanroom.attestation import AttestationPolicy, Evidence, VerifiedEvidence, verify_evidence
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.errors import (
    AttestationError,
    EvidenceFormatError,
    EvidenceSignatureError,
    PolicyViolation,
)

MEASUREMENT = bytes(range(48))
REPORT_DATA = bytes(range(64))
SNP_ASSETS = Path(__file__).resolve().parents[1] / "assets" / "attestation" / "snp"


def resign(tee: SimulatedSnpTee, report: bytes) -> bytes:
    """Sign *report* again with *tee*'s VCEK, as the fake signer of a test
    that changes one field and keeps the signature valid."""
    key = serialization.load_pem_private_key(
        (tee.data_dir / "simulated-vcek.key").read_bytes(), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(key.sign(report[:0x2A0], ec.ECDSA(hashes.SHA384())))
    out = bytearray(report)
    out[0x2A0:0x2E8] = r.to_bytes(72, "little")
    out[0x2E8:0x330] = s.to_bytes(72, "little")
    return bytes(out)


def set_u32(report: bytes, offset: int, value: int) -> bytes:
    out = bytearray(report)
    struct.pack_into("<I", out, offset, value)
    return bytes(out)


def set_u64(report: bytes, offset: int, value: int) -> bytes:
    out = bytearray(report)
    struct.pack_into("<Q", out, offset, value)
    return bytes(out)


def put(report: bytes, offset: int, data: bytes) -> bytes:
    out = bytearray(report)
    out[offset : offset + len(data)] = data
    return bytes(out)


def xor(report: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(report)
    out[offset] ^= mask
    return bytes(out)


def test_exported_names_are_exactly_the_public_api() -> None:
    assert sorted(attestation.__all__) == [
        "AttestationPolicy",
        "Evidence",
        "VerifiedEvidence",
        "verify_evidence",
    ]


def _policy(tee: SimulatedSnpTee, **overrides: object) -> AttestationPolicy:
    fields: dict[str, object] = {
        "measurements": [MEASUREMENT.hex()],
        "allow_simulated": True,
        "simulated_root": tee.root_pem_path,
    }
    fields.update(overrides)
    return AttestationPolicy(**fields)  # type: ignore[arg-type]


def test_simulated_evidence_verifies(simulated_tee: SimulatedSnpTee) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    verified = verify_evidence(evidence, _policy(simulated_tee), report_data=REPORT_DATA)
    assert isinstance(verified, VerifiedEvidence)
    assert verified.platform == "sev-snp"
    assert verified.simulated is True
    assert verified.measurement == MEASUREMENT
    assert verified.report_data == REPORT_DATA
    assert verified.host_data == bytes(32)
    assert verified.debug is False
    assert verified.tcb == {"BOOT_LOADER": 4, "TEE": 0, "SNP": 24, "MICROCODE": 219}
    assert verified.tcb_status == "NotApplicable"
    assert verified.advisory_ids == ()
    assert verified.signing_key == "vcek"
    assert verified.root == "ARK-Simulated"
    assert verified.to_json()["measurement"] == MEASUREMENT.hex()


def test_simulated_evidence_survives_json(simulated_tee: SimulatedSnpTee) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    again = Evidence.from_json(evidence.to_json())
    assert again == evidence
    verify_evidence(again, _policy(simulated_tee), report_data=REPORT_DATA)


def test_policy_root_may_be_pem_text(simulated_tee: SimulatedSnpTee) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    policy = _policy(simulated_tee, simulated_root=simulated_tee.root_pem.decode())
    assert verify_evidence(evidence, policy, report_data=REPORT_DATA).simulated


# --- report mutations without re-signing: the signature must fail -------------

UNSIGNED_MUTATIONS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("MEASUREMENT", lambda r: xor(r, 0x090)),
    ("REPORT_DATA", lambda r: xor(r, 0x050 + 10)),
    ("HOST_DATA", lambda r: xor(r, 0x0C0)),
    ("POLICY (debug bit)", lambda r: xor(r, 0x00A, 0x08)),
    ("GUEST_SVN", lambda r: xor(r, 0x004)),
    ("VMPL", lambda r: set_u32(r, 0x030, 1)),
    ("REPORTED_TCB", lambda r: xor(r, 0x180)),
    ("CHIP_ID", lambda r: xor(r, 0x1A0)),
    ("FAMILY_ID", lambda r: xor(r, 0x010)),
    ("SIGNATURE.R", lambda r: xor(r, 0x2A0)),
    ("SIGNATURE.S", lambda r: xor(r, 0x2E8 + 5)),
]


@pytest.mark.parametrize(
    ("name", "mutate"), UNSIGNED_MUTATIONS, ids=[n for n, _ in UNSIGNED_MUTATIONS]
)
def test_tampered_report_fails_signature(
    simulated_tee: SimulatedSnpTee, name: str, mutate: Callable[[bytes], bytes]
) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    tampered = dataclasses.replace(evidence, report=mutate(evidence.report))
    with pytest.raises(EvidenceSignatureError) as info:
        verify_evidence(tampered, _policy(simulated_tee), report_data=REPORT_DATA)
    assert info.value.failures, name


# --- report mutations re-signed by the (simulated) VCEK: structure, binding, policy ---

SIGNED_MUTATIONS: list[tuple[str, Callable[[bytes], bytes], type[AttestationError], str]] = [
    ("unknown VERSION", lambda r: set_u32(r, 0x000, 9), EvidenceFormatError, "VERSION"),
    ("SIGNATURE_ALGO 2", lambda r: set_u32(r, 0x034, 2), EvidenceFormatError, "SIGNATURE_ALGO"),
    ("POLICY bit 17 clear", lambda r: xor(r, 0x00A, 0x02), EvidenceFormatError, "POLICY"),
    ("reserved 0x04C non-zero", lambda r: put(r, 0x04C, b"\x01"), EvidenceFormatError, "reserved"),
    ("reserved 0x208 non-zero", lambda r: put(r, 0x250, b"\x01"), EvidenceFormatError, "reserved"),
    ("reserved 0x1EB non-zero", lambda r: put(r, 0x1EB, b"\x01"), EvidenceFormatError, "0x1EB"),
    (
        # LAUNCH_MIT_VECTOR and CURRENT_MIT_VECTOR exist from VERSION 5 on only.
        "MIT vector bytes 0x1F8 on VERSION 3",
        lambda r: put(r, 0x1F8, b"\x01"),
        EvidenceFormatError,
        "0x1F8-0x207",
    ),
    (
        "MIT vector bytes 0x207 on VERSION 3",
        lambda r: put(r, 0x207, b"\x80"),
        EvidenceFormatError,
        "0x1F8-0x207",
    ),
    ("KEY_INFO high bits", lambda r: set_u32(r, 0x048, 0x20), EvidenceFormatError, "KEY_INFO"),
    (
        "SIGNING_KEY none",
        lambda r: set_u32(r, 0x048, 7 << 2),
        EvidenceSignatureError,
        "SIGNING_KEY",
    ),
    ("SIGNING_KEY VLEK", lambda r: set_u32(r, 0x048, 1 << 2), EvidenceSignatureError, "SEV-VLEK"),
    ("MASK_CHIP_KEY", lambda r: set_u32(r, 0x048, 0x2), EvidenceSignatureError, "MASK_CHIP_KEY"),
    (
        "REPORTED_TCB above the VCEK",
        lambda r: set_u64(r, 0x180, int.from_bytes(bytes([5, 0, 0, 0, 0, 0, 24, 219]), "little")),
        EvidenceSignatureError,
        "REPORTED_TCB.BOOT_LOADER",
    ),
    ("CHIP_ID of another chip", lambda r: xor(r, 0x1A0 + 63), EvidenceSignatureError, "CHIP_ID"),
    ("CHIP_ID masked", lambda r: put(r, 0x1A0, bytes(64)), EvidenceSignatureError, "CHIP_ID"),
    (
        "CPUID of a Turin part",
        lambda r: put(r, 0x188, b"\x1a\x02\x00"),
        EvidenceSignatureError,
        "productName",
    ),
    ("MEASUREMENT not allowed", lambda r: xor(r, 0x090), PolicyViolation, "MEASUREMENT"),
    ("REPORT_DATA of another session", lambda r: xor(r, 0x08F), PolicyViolation, "REPORT_DATA"),
    ("debug enabled", lambda r: xor(r, 0x00A, 0x08), PolicyViolation, "POLICY.DEBUG"),
    ("VMPL 1", lambda r: set_u32(r, 0x030, 1), PolicyViolation, "VMPL"),
    ("migration agent", lambda r: xor(r, 0x00A, 0x04), PolicyViolation, "POLICY.MIGRATE_MA"),
]


@pytest.mark.parametrize(
    ("name", "mutate", "error", "field"), SIGNED_MUTATIONS, ids=[m[0] for m in SIGNED_MUTATIONS]
)
def test_resigned_mutation_is_refused(
    simulated_tee: SimulatedSnpTee,
    name: str,
    mutate: Callable[[bytes], bytes],
    error: type[AttestationError],
    field: str,
) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    mutated = dataclasses.replace(evidence, report=resign(simulated_tee, mutate(evidence.report)))
    with pytest.raises(AttestationError) as info:
        verify_evidence(mutated, _policy(simulated_tee), report_data=REPORT_DATA)
    assert type(info.value) is error, (name, info.value.failures)
    assert any(field in failure for failure in info.value.failures), info.value.failures


# --- signature-area mutations: outside the signed bytes, so no re-signing needed ---

# R and S are 72-byte little-endian fields of which only the low 48 bytes are
# significant for P-384; the high 24 bytes must be zero.
SIGNATURE_AREA_MUTATIONS: list[tuple[str, int, str]] = [
    ("SIGNATURE.R byte 48", 0x2A0 + 48, "SIGNATURE.R high bytes"),
    ("SIGNATURE.R byte 71", 0x2A0 + 71, "SIGNATURE.R high bytes"),
    ("SIGNATURE.S byte 48", 0x2E8 + 48, "SIGNATURE.S high bytes"),
    ("SIGNATURE.S byte 71", 0x2E8 + 71, "SIGNATURE.S high bytes"),
    ("SIGNATURE reserved", 0x330, "SIGNATURE reserved"),
]


@pytest.mark.parametrize(
    ("name", "offset", "field"),
    SIGNATURE_AREA_MUTATIONS,
    ids=[m[0] for m in SIGNATURE_AREA_MUTATIONS],
)
def test_non_zero_signature_padding_is_a_format_error(
    simulated_tee: SimulatedSnpTee, name: str, offset: int, field: str
) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    mutated = dataclasses.replace(evidence, report=put(evidence.report, offset, b"\x01"))
    with pytest.raises(AttestationError) as info:
        verify_evidence(mutated, _policy(simulated_tee), report_data=REPORT_DATA)
    assert type(info.value) is EvidenceFormatError, (name, info.value.failures)
    assert any(failure.startswith(field) for failure in info.value.failures), info.value.failures


@pytest.mark.parametrize(
    ("name", "size"), [("truncated", 1183), ("empty", 0), ("oversized", 1185), ("doubled", 2368)]
)
def test_wrong_size_is_a_format_error(simulated_tee: SimulatedSnpTee, name: str, size: int) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    report = (evidence.report * 2)[:size]
    with pytest.raises(EvidenceFormatError):
        verify_evidence(
            dataclasses.replace(evidence, report=report),
            _policy(simulated_tee),
            report_data=REPORT_DATA,
        )


# --- chain mutations -----------------------------------------------------------


def _real_milan_ask() -> bytes:
    from cleanroom.attestation.certificates import split_certificates

    return split_certificates(
        (SNP_ASSETS / "ms-tav-milan-genoa-turin" / "milan_ask.pem").read_bytes()
    )[0]


ChainMutation = Callable[[SimulatedSnpTee, SimulatedSnpTee, Evidence], Evidence]

CHAIN_MUTATIONS: list[tuple[str, ChainMutation, type[AttestationError]]] = [
    (
        "missing VCEK",
        lambda tee, other, ev: dataclasses.replace(ev, certificates=ev.certificates[1:]),
        EvidenceSignatureError,
    ),
    (
        "missing ASK",
        lambda tee, other, ev: dataclasses.replace(
            ev, certificates=(ev.certificates[0], ev.certificates[2])
        ),
        EvidenceSignatureError,
    ),
    (
        "no certificates",
        lambda tee, other, ev: dataclasses.replace(ev, certificates=()),
        EvidenceSignatureError,
    ),
    (
        "ASK of another TEE",
        lambda tee, other, ev: dataclasses.replace(
            ev,
            certificates=(ev.certificates[0], other.evidence(REPORT_DATA).certificates[1]),
        ),
        EvidenceSignatureError,
    ),
    (
        "VCEK of another TEE (swapped VEK)",
        lambda tee, other, ev: dataclasses.replace(
            ev, certificates=(other.evidence(REPORT_DATA).certificates[0], *ev.certificates[1:])
        ),
        EvidenceSignatureError,
    ),
    (
        "whole chain of another TEE",
        lambda tee, other, ev: dataclasses.replace(
            ev, certificates=other.evidence(REPORT_DATA).certificates
        ),
        EvidenceSignatureError,
    ),
    (
        "real AMD Milan ASK instead of the ASK",
        lambda tee, other, ev: dataclasses.replace(
            ev, certificates=(ev.certificates[0], _real_milan_ask())
        ),
        EvidenceSignatureError,
    ),
    (
        "VCEK bytes corrupted",
        lambda tee, other, ev: dataclasses.replace(
            ev, certificates=(ev.certificates[0][:100], *ev.certificates[1:])
        ),
        EvidenceFormatError,
    ),
    (
        "report signed by another TEE",
        lambda tee, other, ev: dataclasses.replace(ev, report=resign(other, ev.report)),
        EvidenceSignatureError,
    ),
]


@pytest.mark.parametrize(
    ("name", "mutate", "error"), CHAIN_MUTATIONS, ids=[m[0] for m in CHAIN_MUTATIONS]
)
def test_broken_chain_is_refused(
    simulated_tee: SimulatedSnpTee,
    other_simulated_tee: SimulatedSnpTee,
    name: str,
    mutate: ChainMutation,
    error: type[AttestationError],
) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    with pytest.raises(AttestationError) as info:
        verify_evidence(
            mutate(simulated_tee, other_simulated_tee, evidence),
            _policy(simulated_tee),
            report_data=REPORT_DATA,
        )
    assert type(info.value) is error, (name, info.value.failures)


# --- validity windows of the ASK and the ARK (the VCEK's is tested below) --------

NOW = datetime.now(UTC)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def _reissued(tee: SimulatedSnpTee, der: bytes, not_before: datetime, not_after: datetime) -> bytes:
    """*der* signed again by the simulated ARK key with another validity window:
    same subject, issuer, key, serial and extensions, so the chain still links."""
    ark_key = serialization.load_pem_private_key(
        (tee.data_dir / "simulated-ark.key").read_bytes(), None
    )
    assert isinstance(ark_key, rsa.RSAPrivateKey)
    cert = x509.load_der_x509_certificate(der)
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    signed = builder.sign(ark_key, hashes.SHA384(), rsa_padding=PSS)
    return signed.public_bytes(serialization.Encoding.DER)


def _with_reissued(
    tee: SimulatedSnpTee, which: str, not_before: datetime, not_after: datetime
) -> tuple[Evidence, AttestationPolicy]:
    evidence = tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    vcek, ask, ark = evidence.certificates
    if which == "ASK":
        ask = _reissued(tee, ask, not_before, not_after)
        return dataclasses.replace(evidence, certificates=(vcek, ask)), _policy(tee)
    root = x509.load_der_x509_certificate(_reissued(tee, ark, not_before, not_after))
    pem = root.public_bytes(serialization.Encoding.PEM).decode()
    return dataclasses.replace(evidence, certificates=(vcek, ask)), _policy(tee, simulated_root=pem)


CA_WINDOWS: list[tuple[str, datetime, datetime]] = [
    ("expired an hour ago", NOW - timedelta(days=2), NOW - timedelta(hours=1)),
    ("valid from in an hour", NOW + timedelta(hours=1), NOW + timedelta(days=2)),
]
CA_NAMES = [("ASK", "SEV-Simulated"), ("ARK", "ARK-Simulated")]


@pytest.mark.parametrize(("which", "cn"), CA_NAMES, ids=[c[0] for c in CA_NAMES])
@pytest.mark.parametrize(
    ("window", "not_before", "not_after"), CA_WINDOWS, ids=[w[0] for w in CA_WINDOWS]
)
def test_an_ask_or_ark_outside_its_validity_is_refused(
    simulated_tee: SimulatedSnpTee,
    which: str,
    cn: str,
    window: str,
    not_before: datetime,
    not_after: datetime,
) -> None:
    evidence, policy = _with_reissued(simulated_tee, which, not_before, not_after)
    with pytest.raises(AttestationError) as info:
        verify_evidence(evidence, policy, report_data=REPORT_DATA)
    assert type(info.value) is EvidenceSignatureError, info.value.failures
    assert len(info.value.failures) == 1, info.value.failures
    assert info.value.failures[0].startswith(f"{cn}: not valid at"), info.value.failures


@pytest.mark.parametrize(("which", "cn"), CA_NAMES, ids=[c[0] for c in CA_NAMES])
def test_a_reissued_ask_or_ark_within_its_validity_verifies(
    simulated_tee: SimulatedSnpTee, which: str, cn: str
) -> None:
    """The control for the test above: re-issuing alone does not break the chain."""
    evidence, policy = _with_reissued(
        simulated_tee, which, NOW - timedelta(days=2), NOW + timedelta(days=2)
    )
    assert verify_evidence(evidence, policy, report_data=REPORT_DATA).root == "ARK-Simulated"


# --- policy mutations -------------------------------------------------------------

PolicyCase = tuple[
    str, Callable[[SimulatedSnpTee, SimulatedSnpTee], AttestationPolicy], type[AttestationError]
]

POLICY_MUTATIONS: list[PolicyCase] = [
    (
        "simulation not allowed",
        lambda tee, other: AttestationPolicy([MEASUREMENT.hex()]),
        PolicyViolation,
    ),
    (
        "simulation allowed without a root",
        lambda tee, other: AttestationPolicy([MEASUREMENT.hex()], allow_simulated=True),
        PolicyViolation,
    ),
    (
        "root of another TEE",
        lambda tee, other: _policy(other),
        EvidenceSignatureError,
    ),
    (
        "root named but simulation not allowed",
        lambda tee, other: AttestationPolicy([MEASUREMENT.hex()], simulated_root=tee.root_pem_path),
        PolicyViolation,
    ),
    ("empty allow-list", lambda tee, other: _policy(tee, measurements=()), PolicyViolation),
    (
        "other measurement",
        lambda tee, other: AttestationPolicy(
            ["ab" * 48], allow_simulated=True, simulated_root=tee.root_pem_path
        ),
        PolicyViolation,
    ),
    ("HOST_DATA required", lambda tee, other: _policy(tee, host_data=["11" * 32]), PolicyViolation),
    (
        "minimum SNP SPL above",
        lambda tee, other: _policy(tee, min_tcb={"SNP": 25}),
        PolicyViolation,
    ),
    ("minimum FMC on Milan", lambda tee, other: _policy(tee, min_tcb={"FMC": 0}), PolicyViolation),
    ("VLEK only", lambda tee, other: _policy(tee, signing_keys=["vlek"]), PolicyViolation),
    ("VMPL 1 required", lambda tee, other: _policy(tee, vmpl=1), PolicyViolation),
    (
        "ID key required",
        lambda tee, other: _policy(tee, id_key_digests=["22" * 48]),
        PolicyViolation,
    ),
]


@pytest.mark.parametrize(
    ("name", "make_policy", "error"), POLICY_MUTATIONS, ids=[m[0] for m in POLICY_MUTATIONS]
)
def test_policy_refuses(
    simulated_tee: SimulatedSnpTee,
    other_simulated_tee: SimulatedSnpTee,
    name: str,
    make_policy: Callable[[SimulatedSnpTee, SimulatedSnpTee], AttestationPolicy],
    error: type[AttestationError],
) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    with pytest.raises(AttestationError) as info:
        verify_evidence(
            evidence, make_policy(simulated_tee, other_simulated_tee), report_data=REPORT_DATA
        )
    assert type(info.value) is error, (name, info.value.failures)
    assert info.value.failures


def test_policy_passes_at_its_limits(simulated_tee: SimulatedSnpTee) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT, host_data=b"\x11" * 32)
    policy = _policy(
        simulated_tee,
        host_data=["11" * 32],
        min_tcb={"BOOT_LOADER": 4, "TEE": 0, "SNP": 24, "MICROCODE": 219},
        signing_keys=["vcek"],
        vmpl=0,
        snp_products=["Milan"],
        snp_min_guest_svn=0,
    )
    assert verify_evidence(evidence, policy, report_data=REPORT_DATA).host_data == b"\x11" * 32


def test_every_failure_is_reported_at_once(simulated_tee: SimulatedSnpTee) -> None:
    evidence = simulated_tee.evidence(
        REPORT_DATA, measurement=bytes(48), host_data=b"\x01" * 32, debug=True
    )
    policy = _policy(simulated_tee, host_data=["02" * 32], min_tcb={"SNP": 30}, vmpl=2)
    with pytest.raises(PolicyViolation) as info:
        verify_evidence(evidence, policy, report_data=bytes(64))
    fields = sorted(f.split(":", 1)[0] for f in info.value.failures)
    assert fields == [
        "HOST_DATA",
        "MEASUREMENT",
        "POLICY.DEBUG",
        "REPORTED_TCB.SNP",
        "REPORT_DATA",
        "VMPL",
    ]
    assert "got " + bytes(48).hex() in " ".join(info.value.failures)


def test_debug_allowed_when_the_policy_says_so(simulated_tee: SimulatedSnpTee) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT, debug=True)
    assert verify_evidence(
        evidence, _policy(simulated_tee, allow_debug=True), report_data=REPORT_DATA
    ).debug


@pytest.mark.parametrize(
    ("name", "at"),
    [
        ("before the chain was issued", datetime(2001, 1, 1, tzinfo=UTC)),
        ("after the VCEK expired", datetime.now(UTC) + timedelta(days=8 * 365)),
    ],
)
def test_certificates_outside_their_validity_are_refused(
    simulated_tee: SimulatedSnpTee, name: str, at: datetime
) -> None:
    evidence = simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT)
    with pytest.raises(EvidenceSignatureError) as info:
        verify_evidence(evidence, _policy(simulated_tee), report_data=REPORT_DATA, at=at)
    assert any("not valid at" in f for f in info.value.failures)


def test_unmarked_simulated_evidence_is_still_simulated(simulated_tee: SimulatedSnpTee) -> None:
    evidence = dataclasses.replace(
        simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT), simulated=False
    )
    # Without the simulated root, the chain ends nowhere trusted.
    with pytest.raises(EvidenceSignatureError):
        verify_evidence(evidence, AttestationPolicy([MEASUREMENT.hex()]), report_data=REPORT_DATA)
    # With it, the result says simulated whatever the evidence claimed.
    assert verify_evidence(evidence, _policy(simulated_tee), report_data=REPORT_DATA).simulated


def test_unknown_platform_is_a_format_error(simulated_tee: SimulatedSnpTee) -> None:
    evidence = dataclasses.replace(simulated_tee.evidence(REPORT_DATA), platform="nitro")
    with pytest.raises(EvidenceFormatError):
        verify_evidence(evidence, _policy(simulated_tee), report_data=REPORT_DATA)


@pytest.mark.parametrize("defect", [IndexError, AttributeError, RuntimeError])
def test_an_unexpected_verifier_error_still_refuses(
    simulated_tee: SimulatedSnpTee,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    defect: type[Exception],
) -> None:
    from cleanroom.attestation.snp.verify import SnpVerifier

    def broken(self: SnpVerifier, *args: object, **kwargs: object) -> None:
        raise defect("defect in 'attacker text'")

    monkeypatch.setattr(SnpVerifier, "verify", broken)
    with pytest.raises(EvidenceFormatError) as info:
        verify_evidence(
            simulated_tee.evidence(REPORT_DATA, measurement=MEASUREMENT),
            _policy(simulated_tee),
            report_data=REPORT_DATA,
        )
    assert info.value.failures == [f"evidence: verifier error ({defect.__name__})"]
    assert "attacker" not in str(info.value)
