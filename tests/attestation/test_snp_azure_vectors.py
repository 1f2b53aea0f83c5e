"""SEV-SNP reports from Azure confidential VMs (inside HCL reports) verify
through the same SEV-SNP verifier; REPORT_DATA binds the HCL runtime claims."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.attestation.snp.verify import SnpVerifier

AZ = (
    Path(__file__).resolve().parents[1]
    / "assets"
    / "attestation"
    / "snp"
    / "coco-trustee-az-snp-vtpm"
)
HCL_REPORT_OFFSET = 0x20  # the SNP report inside the "HCLA" blob
RUNTIME_OFFSET = 0x4C0  # runtime claims header; the JSON follows at 0x4D4


def _hcl_from(name: str) -> bytes:
    if name.endswith(".bin"):
        return (AZ / name).read_bytes()
    doc = json.loads((AZ / name).read_text())
    if "report" in doc:
        return bytes(doc["report"])
    text = doc["hcl_report"]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _vcek_from(name: str) -> bytes:
    if name.endswith(".bin"):
        return split_certificates((AZ / "snp_vcek.pem").read_bytes())[0]
    vcek = json.loads((AZ / name).read_text())["vcek"]
    if "BEGIN" in vcek:
        return split_certificates(vcek.encode())[0]
    return base64.urlsafe_b64decode(vcek + "=" * (-len(vcek) % 4))


CASES = [
    ("snp_hcl-report.bin", "milan_ask_ark_asvk.pem", "ARK-Milan"),
    ("snp_evidence-v0.json", "milan_ask_ark_asvk.pem", "ARK-Milan"),
    ("snp_evidence-v1.json", "milan_ask_ark_asvk.pem", "ARK-Milan"),
    ("snp_evidence-v2.json", "milan_ask_ark_asvk.pem", "ARK-Milan"),
    ("snp_evidence-genoa.json", "genoa_ask_ark_asvk.pem", "ARK-Genoa"),
]


@pytest.mark.parametrize(("name", "chain", "root"), CASES, ids=[c[0] for c in CASES])
def test_azure_snp_reports_verify(name: str, chain: str, root: str) -> None:
    hcl = _hcl_from(name)
    assert hcl[:4] == b"HCLA"
    report = hcl[HCL_REPORT_OFFSET : HCL_REPORT_OFFSET + 1184]
    vcek = _vcek_from(name)
    at = parse_certificate(vcek).not_before + timedelta(days=1)
    certs = [vcek, *split_certificates((AZ / chain).read_bytes())]
    claims = SnpVerifier().verify(report, certs, None, at=at)
    assert claims.root == root
    assert claims.fields["VMPL"] == 0
    # On Azure, REPORT_DATA[0:32] is SHA-256 of the runtime claims JSON.
    size = int.from_bytes(hcl[RUNTIME_OFFSET + 16 : RUNTIME_OFFSET + 20], "little")
    runtime = hcl[RUNTIME_OFFSET + 20 : RUNTIME_OFFSET + 20 + size]
    assert claims.report_data[:32] == hashlib.sha256(runtime).digest()
    assert claims.report_data[32:] == bytes(32)
