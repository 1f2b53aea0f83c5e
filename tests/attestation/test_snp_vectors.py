"""Every stored real SEV-SNP vector verifies; the sources' own negative cases fail.

Vectors: ``tests/assets/attestation/snp/<set>/`` (see each PROVENANCE.md).
The verification time is injected: one day after the newest certificate of
the chain was issued, inside every validity window. No source ships an AMD
CRL (nor does the shared vector collection), so every policy here opts out
of the CRL requirement explicitly (``snp_require_crl=False``); that a real
report without a CRL is refused by default is in ``test_snp_crl_required.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cleanroom.attestation import AttestationPolicy, Evidence, verify_evidence
from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.attestation.snp.verify import SnpVerifier
from cleanroom.errors import AttestationError, EvidenceSignatureError, PolicyViolation

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "attestation" / "snp"


@dataclass(frozen=True)
class Vector:
    name: str
    report: str
    certs: tuple[str, ...]
    signing_key: str
    root: str
    tcb: dict[str, int]
    version: int

    def report_bytes(self) -> bytes:
        return (ASSETS / self.report).read_bytes()

    def cert_ders(self) -> list[bytes]:
        out: list[bytes] = []
        for name in self.certs:
            out.extend(split_certificates((ASSETS / name).read_bytes()))
        return out

    def at(self) -> datetime:
        return max(parse_certificate(d).not_before for d in self.cert_ders()) + timedelta(days=1)


MS = "ms-tav-milan-genoa-turin/"
GO = "go-sev-guest-milan-v2/"
COCO = "coco-trustee-milan-vcek-vlek/"
ANOLIS = "openanolis-trustee-turin-v5-and-vlek/"

VECTORS = [
    Vector(
        "milan-v3",
        MS + "milan_attestation_report.bin",
        (MS + "milan_vcek.pem", MS + "milan_ask.pem", MS + "milan_ark.pem"),
        "vcek",
        "ARK-Milan",
        {"BOOT_LOADER": 4, "TEE": 0, "SNP": 24, "MICROCODE": 219},
        3,
    ),
    Vector(
        "genoa-v3",
        MS + "genoa_attestation_report.bin",
        (MS + "genoa_vcek.pem", MS + "genoa_ask.pem"),
        "vcek",
        "ARK-Genoa",
        {"BOOT_LOADER": 10, "TEE": 0, "SNP": 23, "MICROCODE": 84},
        3,
    ),
    Vector(
        "turin-v5",
        MS + "turin_attestation_report.bin",
        (MS + "turin_vcek.pem", MS + "turin_ask.pem", MS + "turin_ark.pem"),
        "vcek",
        "ARK-Turin",
        {"FMC": 1, "BOOT_LOADER": 1, "TEE": 1, "SNP": 4, "MICROCODE": 81},
        5,
    ),
    Vector(
        "milan-v2-go-sev-guest",
        GO + "attestation.bin",
        (GO + "vcek.der", GO + "ask_ark_milan.pem"),
        "vcek",
        "ARK-Milan",
        {"BOOT_LOADER": 2, "TEE": 0, "SNP": 5, "MICROCODE": 68},
        2,
    ),
    Vector(
        "milan-v2-trustee-vcek",
        COCO + "test-report.bin",
        (COCO + "test-vcek.der", COCO + "milan_ask_ark_asvk.pem"),
        "vcek",
        "ARK-Milan",
        {"BOOT_LOADER": 3, "TEE": 0, "SNP": 8, "MICROCODE": 115},
        2,
    ),
    Vector(
        "milan-v3-trustee-vlek",
        COCO + "test-vlek-report.bin",
        (COCO + "test-vlek.der", COCO + "milan_ask_ark_asvk.pem"),
        "vlek",
        "ARK-Milan",
        {"BOOT_LOADER": 4, "TEE": 0, "SNP": 24, "MICROCODE": 217},
        3,
    ),
    Vector(
        "turin-v5-anolis",
        ANOLIS + "turin-report.bin",
        (ANOLIS + "turin-vcek.der", ANOLIS + "turin_ask_ark_asvk.pem"),
        "vcek",
        "ARK-Turin",
        # openanolis/trustee asserts (bl, tee, snp, ucode) = (3, 2, 5, 97) and fmc = 1.
        {"FMC": 1, "BOOT_LOADER": 3, "TEE": 2, "SNP": 5, "MICROCODE": 97},
        5,
    ),
    Vector(
        "milan-v2-anolis-vlek",
        ANOLIS + "test-vlek-report.bin",
        (ANOLIS + "test-vlek.der", ANOLIS + "milan_ask_ark_asvk.pem"),
        "vlek",
        "ARK-Milan",
        {"BOOT_LOADER": 3, "TEE": 0, "SNP": 21, "MICROCODE": 209},
        2,
    ),
]
BY_NAME = {v.name: v for v in VECTORS}


def _manifest_fields(vector: Vector) -> dict[str, object]:
    set_name, report = vector.report.split("/")
    manifest = json.loads((ASSETS / set_name / "MANIFEST.json").read_text())
    for entry in manifest["vectors"]:
        if entry["report"] == report:
            parsed: dict[str, object] = entry["parsed_report"]
            return parsed
    raise AssertionError(f"{report} not in the manifest")


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_every_stored_vector_verifies(vector: Vector) -> None:
    claims = SnpVerifier().verify(vector.report_bytes(), vector.cert_ders(), None, at=vector.at())
    expected = _manifest_fields(vector)
    assert claims.platform == "sev-snp"
    assert claims.simulated is False
    assert claims.root == vector.root
    assert claims.signing_key == vector.signing_key
    assert dict(claims.tcb) == vector.tcb
    assert claims.fields["VERSION"] == vector.version == expected["version"]
    assert claims.measurements["MEASUREMENT"].hex() == expected["measurement"]
    assert claims.report_data.hex() == expected["report_data"]
    assert claims.fields["VMPL"] == expected["vmpl"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_every_stored_vector_passes_a_policy_naming_it(vector: Vector) -> None:
    expected = _manifest_fields(vector)
    evidence = Evidence("sev-snp", vector.report_bytes(), tuple(vector.cert_ders()))
    policy = AttestationPolicy(
        [str(expected["measurement"])],
        vmpl=int(str(expected["vmpl"])),
        allow_debug=True,
        min_tcb=vector.tcb,
        snp_require_crl=False,
    )
    verified = verify_evidence(
        evidence, policy, report_data=bytes.fromhex(str(expected["report_data"])), at=vector.at()
    )
    assert verified.simulated is False
    assert verified.measurement.hex() == expected["measurement"]


def test_debug_report_is_refused_by_default() -> None:
    # The go-sev-guest vector was launched with POLICY.DEBUG set (0xb0000).
    vector = BY_NAME["milan-v2-go-sev-guest"]
    expected = _manifest_fields(vector)
    evidence = Evidence("sev-snp", vector.report_bytes(), tuple(vector.cert_ders()))
    with pytest.raises(PolicyViolation) as info:
        verify_evidence(
            evidence,
            AttestationPolicy([str(expected["measurement"])], snp_require_crl=False),
            report_data=bytes.fromhex(str(expected["report_data"])),
            at=vector.at(),
        )
    assert info.value.failures == ["POLICY.DEBUG: got enabled, expected disabled"]


def _flip(offset: int, mask: int = 0xFF) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        out[offset] ^= mask
        return bytes(out)

    return mutate


def _add(offset: int) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        out[offset] = (out[offset] + 1) & 0xFF
        return bytes(out)

    return mutate


def _certs(*names: str) -> list[bytes]:
    out: list[bytes] = []
    for name in names:
        out.extend(split_certificates((ASSETS / name).read_bytes()))
    return out


def _pick(names: Sequence[str], *cns: str) -> list[bytes]:
    return [d for d in _certs(*names) if parse_certificate(d).subject_cn in cns]


@dataclass(frozen=True)
class Negative:
    name: str
    vector: str
    report: Callable[[bytes], bytes] | None = None
    certs: Callable[[], list[bytes]] | None = None
    at: Callable[[datetime], datetime] | None = None
    roots: Callable[[], list[bytes]] | None = None
    field: str = ""


NEGATIVES = [
    # microsoft/TEE-Attestation-Verification tests/common.rs
    Negative("ms: REPORT_DATA byte 100 ^ 0xff", "milan-v3", report=_flip(100), field="SIGNATURE"),
    Negative(
        "ms: Milan VCEK under the Genoa ASK",
        "milan-v3",
        certs=lambda: _certs(MS + "milan_vcek.pem", MS + "genoa_ask.pem"),
        field="certificates",
    ),
    Negative(
        "ms: ASK used as the root",
        "milan-v3",
        certs=lambda: _certs(MS + "milan_vcek.pem"),
        roots=lambda: _certs(MS + "milan_ask.pem"),
        field="certificates",
    ),
    # confidential-containers/trustee deps/verifier/src/snp/mod.rs
    Negative("trustee: IMAGE_ID byte 42 + 1", "milan-v2-trustee-vcek", report=_add(42)),
    Negative("trustee: REPORTED_TCB byte 384 + 1", "milan-v2-trustee-vcek", report=_add(384)),
    Negative("trustee: VLEK report byte 42 + 1", "milan-v3-trustee-vlek", report=_add(42)),
    Negative(
        "trustee: VCEK byte 42 + 1",
        "milan-v2-trustee-vcek",
        certs=lambda: [
            bytes(b + 1 if i == 42 else b for i, b in enumerate(_certs(COCO + "test-vcek.der")[0])),
            *_pick([COCO + "milan_ask_ark_asvk.pem"], "SEV-Milan"),
        ],
    ),
    Negative(
        "trustee: ASVK in place of the ASK",
        "milan-v2-trustee-vcek",
        certs=lambda: [
            *_certs(COCO + "test-vcek.der"),
            *_pick([COCO + "milan_ask_ark_asvk.pem"], "SEV-VLEK-Milan"),
        ],
        field="certificates",
    ),
    Negative(
        "trustee: invalid legacy VCEK (does not chain)",
        "milan-v2-trustee-vcek",
        certs=lambda: _certs(
            COCO + "test-vcek-invalid-legacy.der", COCO + "milan_ask_ark_asvk.pem"
        ),
    ),
    Negative(
        "trustee: invalid new VCEK (does not chain)",
        "milan-v2-trustee-vcek",
        certs=lambda: _certs(COCO + "test-vcek-invalid-new.der", COCO + "milan_ask_ark_asvk.pem"),
    ),
    # openanolis/trustee
    Negative("anolis: MEASUREMENT byte 0x90 ^ 1", "turin-v5-anolis", report=_flip(0x90, 0x01)),
    # chains and keys from elsewhere
    Negative(
        "Turin report under the Milan chain",
        "turin-v5",
        certs=lambda: _certs(MS + "turin_vcek.pem", MS + "milan_ask.pem"),
    ),
    Negative(
        "Milan v3 report with a Genoa VCEK and chain",
        "milan-v3",
        certs=lambda: _certs(MS + "genoa_vcek.pem", MS + "genoa_ask.pem"),
        field="productName",
    ),
    Negative(
        "report signed by another chip (swapped VCEK)",
        "milan-v3",
        certs=lambda: _certs(COCO + "test-vcek.der", MS + "milan_ask.pem"),
    ),
    Negative(
        "VLEK report without its VLEK",
        "milan-v3-trustee-vlek",
        certs=lambda: _certs(COCO + "milan_ask_ark_asvk.pem"),
        field="SEV-VLEK",
    ),
    Negative(
        "VLEK report with the VLEK but no ASVK",
        "milan-v3-trustee-vlek",
        certs=lambda: [
            *_certs(COCO + "test-vlek.der"),
            *_pick([COCO + "milan_ask_ark_asvk.pem"], "SEV-Milan"),
        ],
        field="certificates",
    ),
    Negative(
        "VCEK expired",
        "milan-v3",
        at=lambda at: (
            parse_certificate(_certs(MS + "milan_vcek.pem")[0]).not_after + timedelta(seconds=1)
        ),
        field="not valid at",
    ),
    Negative(
        "VCEK not yet valid",
        "genoa-v3",
        at=lambda at: (
            parse_certificate(_certs(MS + "genoa_vcek.pem")[0]).not_before - timedelta(seconds=1)
        ),
        field="not valid at",
    ),
]


@pytest.mark.parametrize("case", NEGATIVES, ids=[n.name for n in NEGATIVES])
def test_negative_cases_are_refused(case: Negative) -> None:
    vector = BY_NAME[case.vector]
    report = vector.report_bytes()
    if case.report is not None:
        report = case.report(report)
    certs = case.certs() if case.certs is not None else vector.cert_ders()
    at = case.at(vector.at()) if case.at is not None else vector.at()
    roots = case.roots() if case.roots is not None else []
    with pytest.raises(EvidenceSignatureError) as info:
        SnpVerifier().verify(report, certs, None, at=at, additional_roots=roots)
    assert info.value.failures
    if case.field:
        assert any(case.field in f for f in info.value.failures), info.value.failures


def test_real_evidence_never_chains_to_a_simulated_root(simulated_tee: object) -> None:
    from cleanroom.attestation.simulated import SimulatedSnpTee

    assert isinstance(simulated_tee, SimulatedSnpTee)
    vector = BY_NAME["milan-v3"]
    expected = _manifest_fields(vector)
    evidence = Evidence("sev-snp", vector.report_bytes(), tuple(vector.cert_ders()))
    policy = AttestationPolicy(
        [str(expected["measurement"])],
        allow_simulated=True,
        simulated_root=simulated_tee.root_pem_path,
        snp_require_crl=False,
    )
    verified = verify_evidence(evidence, policy, report_data=bytes(64), at=vector.at())
    assert verified.simulated is False
    assert verified.root == "ARK-Milan"


def test_collateral_is_refused_for_snp() -> None:
    vector = BY_NAME["milan-v3"]
    with pytest.raises(AttestationError):
        SnpVerifier().verify(
            vector.report_bytes(), vector.cert_ders(), {"tcb_info": {}}, at=vector.at()
        )


def test_a_report_of_another_vector_fails() -> None:
    one, two = BY_NAME["milan-v3"], BY_NAME["genoa-v3"]
    with pytest.raises(EvidenceSignatureError):
        SnpVerifier().verify(two.report_bytes(), one.cert_ders(), None, at=one.at())


@pytest.mark.parametrize(
    ("csp_ids", "accepted"),
    [(["CN=cc-us-east-2.amazonaws.com"], True), (["CN=other-cloud.example"], False)],
)
def test_vlek_csp_id_policy(csp_ids: list[str], accepted: bool) -> None:
    vector = BY_NAME["milan-v3-trustee-vlek"]
    expected = _manifest_fields(vector)
    evidence = Evidence("sev-snp", vector.report_bytes(), tuple(vector.cert_ders()))
    policy = AttestationPolicy(
        [str(expected["measurement"])],
        vmpl=1,
        signing_keys=["vlek"],
        snp_vlek_csp_ids=csp_ids,
        snp_require_crl=False,
    )
    report_data = bytes.fromhex(str(expected["report_data"]))
    if accepted:
        verified = verify_evidence(evidence, policy, report_data=report_data, at=vector.at())
        assert verified.fields["cspID"] == "CN=cc-us-east-2.amazonaws.com"
    else:
        with pytest.raises(PolicyViolation) as info:
            verify_evidence(evidence, policy, report_data=report_data, at=vector.at())
        assert info.value.failures == [
            "cspID: got CN=cc-us-east-2.amazonaws.com, expected one of CN=other-cloud.example"
        ]
