"""Benchmark (not a test): full SEV-SNP verification with certificates cached.

Run: ``PYTHONPATH=src .venv/bin/python tests/attestation/bench_snp_verify.py``.
Prints the median and 95th percentile time of ``verify_evidence`` on the
stored Milan, Genoa and Turin reports once their certificates have been
parsed and their chain signatures checked (the per-process caches).
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from pathlib import Path

from cleanroom.attestation import AttestationPolicy, Evidence, verify_evidence
from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.snp.abi import parse_report
from cleanroom.attestation.snp.certs import parse_certificate

MS = (
    Path(__file__).resolve().parents[1]
    / "assets"
    / "attestation"
    / "snp"
    / "ms-tav-milan-genoa-turin"
)
ROUNDS = 300


def main() -> None:
    for product in ("milan", "genoa", "turin"):
        report = (MS / f"{product}_attestation_report.bin").read_bytes()
        certs = tuple(
            split_certificates((MS / f"{product}_{name}.pem").read_bytes())[0]
            for name in ("vcek", "ask")
        )
        at = parse_certificate(certs[0]).not_before + timedelta(days=1)
        parsed = parse_report(report)
        # The stored vectors come without AMD CRLs: opt out of requiring one.
        policy = AttestationPolicy(
            [parsed.MEASUREMENT.hex()], allow_debug=True, snp_require_crl=False
        )
        evidence = Evidence("sev-snp", report, certs)
        verify_evidence(evidence, policy, report_data=parsed.REPORT_DATA, at=at)  # warm caches
        times = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            verify_evidence(evidence, policy, report_data=parsed.REPORT_DATA, at=at)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        print(
            f"{product:6s} median {statistics.median(times):.2f} ms,"
            f" p95 {times[int(len(times) * 0.95)]:.2f} ms over {ROUNDS} runs"
        )


if __name__ == "__main__":
    main()
