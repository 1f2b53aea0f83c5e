"""Bad evidence gets a refusal, never a crash: seeded random mutations of real
reports, certificates and evidence documents raise only AttestationError."""

from __future__ import annotations

import base64
import random
from datetime import timedelta
from pathlib import Path

import pytest

from cleanroom.attestation import AttestationPolicy, Evidence, verify_evidence
from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.errors import AttestationError

MS = (
    Path(__file__).resolve().parents[1]
    / "assets"
    / "attestation"
    / "snp"
    / "ms-tav-milan-genoa-turin"
)
REPORT = (MS / "turin_attestation_report.bin").read_bytes()
CERTS = [
    split_certificates((MS / f"turin_{n}.pem").read_bytes())[0] for n in ("vcek", "ask", "ark")
]
AT = parse_certificate(CERTS[0]).not_before + timedelta(days=1)
POLICY = AttestationPolicy(["00" * 48])


def _mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    choice = rng.randrange(4)
    if choice == 0 and out:
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif choice == 1:
        del out[rng.randrange(len(out) + 1) :]
    elif choice == 2:
        out += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    elif out:
        start = rng.randrange(len(out))
        out[start : start + 8] = bytes(rng.randrange(256) for _ in range(8))
    return bytes(out)


def _refused(evidence: Evidence) -> None:
    # The policy allows no real measurement, so every outcome is a refusal;
    # the point is that it is an AttestationError and never anything else.
    with pytest.raises(AttestationError):
        verify_evidence(evidence, POLICY, report_data=bytes(64), at=AT)


@pytest.mark.parametrize("seed", range(4))
def test_mutated_reports_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        _refused(Evidence("sev-snp", _mutate(REPORT, rng), tuple(CERTS)))


@pytest.mark.parametrize("seed", range(4))
def test_mutated_certificates_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        certs = list(CERTS)
        index = rng.randrange(len(certs))
        certs[index] = _mutate(certs[index], rng)
        _refused(Evidence("sev-snp", REPORT, tuple(certs)))


@pytest.mark.parametrize("seed", range(2))
def test_mutated_evidence_documents_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    doc = Evidence("sev-snp", REPORT, tuple(CERTS)).to_json()
    for _ in range(50):
        mutated = dict(doc)
        mutated["report"] = base64.b64encode(_mutate(REPORT, rng)).decode()
        with pytest.raises(AttestationError):
            verify_evidence(Evidence.from_json(mutated), POLICY, report_data=bytes(64), at=AT)
