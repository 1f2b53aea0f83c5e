"""DCAP checks that only a purpose-built world reaches: the masked QE
MISCSELECT and TDX SEAMATTRIBUTES comparisons, the PCK chain's CA and CN
rules, and a PCK CRL that never says when it expires.

Each case builds the fake world of ``dcap_fakes`` with one thing changed and
everything signed by the world's own keys (the quote and QE report as built,
the QE identity and TCB info again by the TCB Signing key, a CRL again by the
PCK CA), so only the named check can refuse it. Controls show the same
change passes where the check must let it through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import asn1crypto.core
import asn1crypto.crl
import dcap_fakes
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from dcap_fakes import NOW, QE_MRSIGNER, Built, World, build, key, raw_sign

from cleanroom.attestation.dcap import SgxVerifier, TdxVerifier
from cleanroom.attestation.platform import Claims
from cleanroom.errors import AttestationError, EvidenceSignatureError

TDX = World()
SGX = World(tee="SGX", version=3)
PCK_CN = "Intel SGX PCK Certificate"
PCK_CA_CN = "Intel SGX PCK Platform CA"
SEAMATTRIBUTES = slice(0x70, 0x78)  # in the TD report body


@dataclass(frozen=True)
class Case:
    """One change to the default world. ``qe_miscselect`` and
    ``seam_attributes`` go into the QE report and the TD report; ``issue``
    changes the certificate with that subject CN (``cn``: another subject
    CN, ``ca``: another basicConstraints CA flag, ``constraints=False``: no
    basicConstraints); ``collateral`` rewrites the built collateral."""

    name: str
    world: World = TDX
    qe_miscselect: int | None = None
    seam_attributes: bytes | None = None
    issue: tuple[str, dict[str, Any]] | None = None
    collateral: Callable[[Built], Built] | None = None
    pattern: str = ""


def _without_constraints(
    subject_cn: str,
    subject_key: ec.EllipticCurvePrivateKey,
    issuer_cn: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    serial: int,
    not_before: Any,
    not_after: Any,
    extensions: tuple[x509.ExtensionType, ...] = (),
) -> x509.Certificate:
    """``dcap_fakes.cert`` without the basicConstraints extension."""
    del ca
    builder = (
        x509.CertificateBuilder()
        .subject_name(dcap_fakes._name(subject_cn))
        .issuer_name(dcap_fakes._name(issuer_cn))
        .public_key(subject_key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _build(case: Case, monkeypatch: pytest.MonkeyPatch) -> Built:
    """The world of *case*, built through ``dcap_fakes`` with its builders
    wrapped for this test only."""
    enclave_report, td_report, cert = (
        dcap_fakes.enclave_report,
        dcap_fakes.td_report,
        dcap_fakes.cert,
    )

    def qe_or_enclave(**kwargs: Any) -> bytes:
        if case.qe_miscselect is not None and kwargs.get("mrsigner") == QE_MRSIGNER:
            kwargs["miscselect"] = case.qe_miscselect
        return enclave_report(**kwargs)

    def td(**kwargs: Any) -> bytes:
        body = bytearray(td_report(**kwargs))
        if case.seam_attributes is not None:
            body[SEAMATTRIBUTES] = case.seam_attributes
        return bytes(body)

    def certificate(subject_cn: str, *args: Any, **kwargs: Any) -> x509.Certificate:
        if case.issue is None or case.issue[0] != subject_cn:
            return cert(subject_cn, *args, **kwargs)
        changes = case.issue[1]
        if changes.get("constraints", True) is False:
            return _without_constraints(subject_cn, *args, **kwargs)
        kwargs["ca"] = changes.get("ca", kwargs["ca"])
        return cert(changes.get("cn", subject_cn), *args, **kwargs)

    monkeypatch.setattr(dcap_fakes, "enclave_report", qe_or_enclave)
    monkeypatch.setattr(dcap_fakes, "td_report", td)
    monkeypatch.setattr(dcap_fakes, "cert", certificate)
    built = build(case.world)
    return case.collateral(built) if case.collateral is not None else built


def _verify(built: Built, tee: str) -> Claims:
    verifier = TdxVerifier() if tee == "TDX" else SgxVerifier()
    return verifier.verify(
        built.quote, (), built.collateral, at=NOW, additional_roots=[built.root_der]
    )


def _identity(field: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Built], Built]:
    """Rewrite the ``qe_identity`` or ``tcb_info`` JSON and sign it again with
    the TCB Signing key."""

    def rewrite(built: Built) -> Built:
        document = json.loads(built.collateral[field])
        change(document)
        text = json.dumps(document, separators=(",", ":"))
        collateral = {
            **built.collateral,
            field: text,
            f"{field}_signature": raw_sign(key("signing"), text.encode()).hex(),
        }
        return replace(built, collateral=collateral)

    return rewrite


def miscselect_mask(mask: str) -> Callable[[Built], Built]:
    def change(document: dict[str, Any]) -> None:
        document["miscselectMask"] = mask

    return _identity("qe_identity", change)


def seam_attributes_mask(mask: str) -> Callable[[Built], Built]:
    def change(document: dict[str, Any]) -> None:
        for identity in document["tdxModuleIdentities"]:
            identity["attributesMask"] = mask

    return _identity("tcb_info", change)


def pck_crl_without_next_update(built: Built) -> Built:
    """The PCK CRL encoded again without nextUpdate and signed again by the
    PCK CA (``cryptography`` will not build such a CRL)."""
    parsed = asn1crypto.crl.CertificateList.load(bytes.fromhex(built.collateral["pck_crl"]))
    tbs = parsed["tbs_cert_list"]
    kept = ("version", "signature", "issuer", "this_update", "revoked_certificates")
    stripped = asn1crypto.crl.TbsCertList(
        {name: tbs[name] for name in kept if not isinstance(tbs[name], asn1crypto.core.Void)}
    )
    signature = key("pck-ca").sign(stripped.dump(), ec.ECDSA(hashes.SHA256()))
    der: bytes = asn1crypto.crl.CertificateList(
        {
            "tbs_cert_list": stripped,
            "signature_algorithm": parsed["signature_algorithm"],
            "signature": signature,
        }
    ).dump()
    assert x509.load_der_x509_crl(der).next_update_utc is None
    return replace(built, collateral={**built.collateral, "pck_crl": der.hex()})


# MISCSELECT 0x100 is bytes 00 01 00 00 (little-endian), as the masks compare them.
REFUSALS = [
    Case(
        "QE MISCSELECT bit set under the mask",
        qe_miscselect=0x100,
        pattern=r"QE MISCSELECT & miscselectMask: got 00010000, expected 00000000",
    ),
    Case(
        "QE MISCSELECT bit set under the mask (SGX)",
        world=SGX,
        qe_miscselect=0x100,
        pattern=r"QE MISCSELECT & miscselectMask: got 00010000, expected 00000000",
    ),
    Case(
        "TDX module SEAMATTRIBUTES bit set under the mask",
        seam_attributes=bytes([0x01]) + bytes(7),
        pattern=r"SEAMATTRIBUTES & attributesMask: got 0100000000000000, expected "
        r"tdxModuleIdentities\[TDX_01\]\.attributes 0000000000000000",
    ),
    Case(
        "PCK CA whose basicConstraints say it is no CA",
        issue=(PCK_CA_CN, {"ca": False}),
        pattern=r"PCK CA certificate: basicConstraints CA is not set",
    ),
    Case(
        "PCK CA without basicConstraints",
        issue=(PCK_CA_CN, {"constraints": False}),
        pattern=r"PCK CA certificate: basicConstraints CA is not set",
    ),
    Case(
        "PCK leaf with another CN",
        issue=(PCK_CN, {"cn": "Intel SGX Attestation Key"}),
        pattern=r"PCK subject CN: got 'Intel SGX Attestation Key', "
        r"expected 'Intel SGX PCK Certificate'",
    ),
    Case(
        "PCK CRL without nextUpdate",
        collateral=pck_crl_without_next_update,
        pattern=r"PCK CRL nextUpdate: missing",
    ),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c.name for c in REFUSALS])
def test_refused_by_the_check_it_names(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    built = _build(case, monkeypatch)
    with pytest.raises(AttestationError) as info:
        _verify(built, case.world.tee)
    assert type(info.value) is EvidenceSignatureError, info.value.failures
    text = "\n".join([info.value.message, *info.value.failures])
    assert re.search(case.pattern, text), text


CONTROLS = [
    Case("the default world"),
    Case(
        "QE MISCSELECT bit set outside the mask",
        qe_miscselect=0x100,
        collateral=miscselect_mask("FF00FFFF"),
    ),
    Case(
        "SEAMATTRIBUTES bit set outside the mask",
        seam_attributes=bytes([0x01]) + bytes(7),
        collateral=seam_attributes_mask("00FFFFFFFFFFFFFF"),
    ),
]


@pytest.mark.parametrize("case", CONTROLS, ids=[c.name for c in CONTROLS])
def test_differences_outside_the_mask_pass(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    claims = _verify(_build(case, monkeypatch), case.world.tee)
    assert claims.tcb_status == "UpToDate"
    assert claims.revocation_checked is True
