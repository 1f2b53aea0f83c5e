"""``cleanroom attestation``: verify and show TEE evidence from files, offline.

``verify`` detects the platform from the bytes, checks authenticity against
the pinned vendor roots and applies the attestation policy (without
``--policy``: authenticity only, and only an ``UpToDate`` TCB status). It
exits 0 when the evidence is accepted and 1 when it is rejected, printing one
line per failed check. ``show`` prints the parsed report.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cleanroom.attestation import fetch
from cleanroom.attestation.certificates import split_certificates
from cleanroom.attestation.describe import report_fields
from cleanroom.attestation.evidence import Evidence
from cleanroom.attestation.policy import AttestationPolicy
from cleanroom.attestation.registry import detect_platform, verifier_for
from cleanroom.attestation.snp import abi as snp_abi
from cleanroom.attestation.snp.certs import parse_certificate
from cleanroom.attestation.verifier import check_evidence
from cleanroom.errors import AttestationError, ConfigurationError, EvidenceFormatError

__all__ = ["register"]

_MAX_FILE = 1024 * 1024


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "attestation",
        help="verify or show TEE attestation evidence (SEV-SNP, TDX, SGX)",
        description="Verify or inspect attestation evidence offline.",
    )
    commands = parser.add_subparsers(dest="attestation_command", metavar="COMMAND", required=True)

    verify = commands.add_parser(
        "verify",
        help="verify evidence against the vendor roots and an attestation policy",
        description="Detect the platform from the bytes, verify authenticity against the pinned "
        "vendor roots, and apply the attestation policy. Exit 0 when accepted, 1 when rejected.",
    )
    _evidence_arguments(verify)
    verify.add_argument("--policy", type=Path, help="attestation policy file (TOML or JSON)")
    verify.add_argument(
        "--report-data",
        metavar="HEX",
        help="the 64-byte REPORT_DATA / REPORTDATA the evidence must carry (default: not checked)",
    )
    verify.add_argument(
        "--simulated-root",
        type=Path,
        help="without --policy: also accept evidence of the simulated TEE with this root",
    )
    verify.add_argument(
        "--no-require-crl",
        dest="require_crl",
        action="store_false",
        help="without --policy: accept SEV-SNP evidence that comes without a current AMD CRL "
        "(revocation unchecked; a policy file says require_crl = false instead)",
    )
    verify.add_argument(
        "--at",
        metavar="TIME",
        help="verify as of this ISO 8601 time (default: now; a time without zone is UTC)",
    )
    verify.add_argument(
        "--json", action="store_true", help="print the claims and the failures as JSON"
    )
    verify.add_argument(
        "--fetch",
        action="store_true",
        help="fetch what the evidence lacks (SEV-SNP VCEK chain and current CRL from AMD KDS, "
        "Intel collateral from PCS); off by default: verification is offline",
    )
    verify.add_argument(
        "--cache-dir", type=Path, help="with --fetch: keep fetched AMD certificates here"
    )
    verify.add_argument(
        "--product",
        choices=["Milan", "Genoa", "Turin"],
        help="with --fetch: the AMD product line of a version 2 report (which does not say)",
    )
    verify.set_defaults(handler=run_verify)

    show = commands.add_parser(
        "show",
        help="print the parsed report for humans",
        description="Parse the evidence and print its fields (no verification).",
    )
    _evidence_arguments(show)
    show.add_argument("--json", action="store_true", help="print the fields as JSON")
    show.set_defaults(handler=run_show)


def _evidence_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "evidence",
        type=Path,
        metavar="EVIDENCE",
        help="a raw report or quote, or an evidence JSON document as the clean room serves it",
    )
    parser.add_argument(
        "--certs",
        type=Path,
        nargs="+",
        default=[],
        metavar="FILE",
        help="certificates (PEM or DER, bundles or single; VCEK or VLEK and their chain)",
    )
    parser.add_argument(
        "--collateral", type=Path, metavar="FILE", help="Intel DCAP collateral (JSON)"
    )


def _read(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_FILE + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from exc
    if len(data) > _MAX_FILE:
        raise ConfigurationError(f"{what} {str(path)!r} is larger than {_MAX_FILE} bytes")
    return data


def _load_evidence(args: argparse.Namespace) -> Evidence:
    data = _read(args.evidence, "evidence")
    evidence: Evidence | None = None
    if data.lstrip().startswith(b"{"):
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise EvidenceFormatError("the evidence file is neither a report nor JSON") from exc
        if isinstance(doc, dict) and "evidence" in doc and isinstance(doc["evidence"], dict):
            doc = doc["evidence"]
        evidence = Evidence.from_json(doc)
    else:
        evidence = Evidence(platform=detect_platform(data), report=data)
    extra: list[bytes] = []
    for path in args.certs:
        extra.extend(split_certificates(_read(path, "certificate file")))
    collateral = evidence.collateral
    if args.collateral is not None:
        try:
            loaded = json.loads(_read(args.collateral, "collateral"))
        except ValueError as exc:
            raise ConfigurationError(f"collateral {str(args.collateral)!r} is not JSON") from exc
        if not isinstance(loaded, dict):
            raise ConfigurationError("collateral must be a JSON object")
        collateral = loaded
    return Evidence(
        platform=evidence.platform,
        report=evidence.report,
        certificates=(*evidence.certificates, *extra),
        collateral=collateral,
        simulated=evidence.simulated,
    )


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigurationError(f"--at {text!r} is not an ISO 8601 time") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _report_data(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise ConfigurationError("--report-data must be hex") from exc
    if len(raw) != 64:
        raise ConfigurationError(f"--report-data must be 64 bytes, got {len(raw)}")
    return raw


def _parsed(evidence: Evidence) -> dict[str, Any] | None:
    try:
        return report_fields(verifier_for(evidence.platform).parse(evidence.report))
    except AttestationError:
        return None


def run_verify(args: argparse.Namespace) -> int:
    if args.policy is not None:
        if not args.require_crl:
            raise ConfigurationError(
                "--no-require-crl applies without --policy",
                remedy="set require_crl = false in the policy's [sev-snp] section",
            )
        policy = AttestationPolicy.from_file(args.policy)
    else:
        policy = AttestationPolicy.authenticity_only(
            simulated_root=args.simulated_root, snp_require_crl=args.require_crl
        )
    at = _parse_time(args.at)
    expected = _report_data(args.report_data)
    evidence = _load_evidence(args)
    if args.fetch:
        evidence = fetch.complete_evidence(
            evidence,
            kds=fetch.KdsFetcher(fetch.httpx_get, cache_dir=args.cache_dir, product=args.product),
            pcs=fetch.PcsFetcher(fetch.httpx_get),
        )
    claims: dict[str, Any] | None = None
    try:
        verified, failures = check_evidence(evidence, policy, report_data=expected, at=at)
        claims = verified.to_json()
    except AttestationError as exc:
        failures = list(exc.failures) or [exc.message]
        failures = [f"{exc.message}: {f}" if f != exc.message else f for f in failures]
    accepted = not failures
    if args.json:
        doc = {
            "accepted": accepted,
            "platform": evidence.platform,
            "failures": failures,
            "claims": claims,
            "report": _parsed(evidence) if claims is None else None,
        }
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    elif accepted:
        assert claims is not None
        note = " SIMULATED: no confidentiality" if claims["simulated"] else ""
        print(f"accepted: {claims['platform']} evidence, root {claims['root']}{note}")
    else:
        for failure in failures:
            print(f"rejected: {failure}")
    if claims is not None and claims.get("simulated"):
        print(
            "warning: this evidence comes from a SIMULATED TEE and gives no confidentiality",
            file=sys.stderr,
        )
    return 0 if accepted else 1


def _print_fields(fields: dict[str, Any], indent: str = "") -> None:
    width = max((len(k) for k in fields), default=0)
    for name, value in fields.items():
        if isinstance(value, dict):
            print(f"{indent}{name}:")
            _print_fields(value, indent + "  ")
        else:
            print(f"{indent}{name.ljust(width)}  {value}")


def run_show(args: argparse.Namespace) -> int:
    evidence = _load_evidence(args)
    parsed = verifier_for(evidence.platform).parse(evidence.report)
    fields = report_fields(parsed)
    if isinstance(parsed, snp_abi.AttestationReport) and parsed.product is not None:
        # TCB_VERSION layouts differ per product (Turin has FMC in byte 0).
        for name in ("CURRENT_TCB", "REPORTED_TCB", "COMMITTED_TCB", "LAUNCH_TCB"):
            raw = getattr(parsed, name)
            fields[name] = {
                "raw": f"0x{raw:016x}",
                **snp_abi.decode_tcb(raw, parsed.product).as_dict(),
            }
        fields["PRODUCT"] = parsed.product
    if isinstance(parsed, snp_abi.AttestationReport):
        fields["POLICY"] = f"0x{parsed.POLICY:x} ({_policy_flags(parsed.POLICY)})"
        fields["PLATFORM_INFO"] = f"0x{parsed.PLATFORM_INFO:x}"
        fields["KEY_INFO"] = (
            f"0x{parsed.KEY_INFO:x} (SIGNING_KEY"
            f" {_SIGNING_KEYS.get(parsed.signing_key, parsed.signing_key)})"
        )
        fields["SIGNATURE_R"] = f"{parsed.SIGNATURE_R:096x}"
        fields["SIGNATURE_S"] = f"{parsed.SIGNATURE_S:096x}"
    if args.json:
        json.dump({"platform": evidence.platform, "report": fields}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"platform  {evidence.platform}{'  (SIMULATED)' if evidence.simulated else ''}")
    _print_fields(fields)
    for der in evidence.certificates:
        print(f"certificate  {_describe_certificate(der)}")
    return 0


_SIGNING_KEYS = {0: "VCEK", 1: "VLEK", 7: "none"}
# SEV-SNP guest policy bits (ABI 56860, Table "Guest Policy Structure").
_POLICY_BITS = {
    16: "SMT",
    18: "MIGRATE_MA",
    19: "DEBUG",
    20: "SINGLE_SOCKET",
    21: "CXL_ALLOW",
    22: "MEM_AES_256_XTS",
    23: "RAPL_DIS",
    24: "CIPHERTEXT_HIDING",
    25: "PAGE_SWAP_DISABLE",
}


def _policy_flags(policy: int) -> str:
    flags = [name for bit, name in _POLICY_BITS.items() if policy >> bit & 1]
    abi_version = f"ABI {policy >> 8 & 0xFF}.{policy & 0xFF}"
    return ", ".join([abi_version, *flags])


def _describe_certificate(der: bytes) -> str:
    try:
        cert = parse_certificate(der)
    except AttestationError:
        return f"{len(der)} bytes (does not parse)"
    return (
        f"CN={cert.subject_cn} issuer CN={cert.issuer_cn} serial {cert.serial_number:#x}"
        f" valid {cert.not_before.date()} to {cert.not_after.date()}"
    )
