"""DCAP verification collateral: TCB info, QE identity, CRLs and their issuer chains.

Collateral comes from Intel's Provisioning Certification Service (PCS, API
v4) or a caching service with the same shapes. It is accepted as a mapping in
either of two shapes:

* **flat** (the shape of dcap-qvl's ``QuoteCollateralV3``): ``tcb_info`` and
  ``qe_identity`` are the *exact* JSON text of the signed objects,
  ``tcb_info_signature`` and ``qe_identity_signature`` hex ``r || s``;
* **PCS responses**: ``tcb_info_response`` is the body of
  ``GET /tdx|sgx/certification/v4/tcb`` (``{"tcbInfo": {...}, "signature":
  "..."}``) and ``qe_identity_response`` the body of ``.../qe/identity``
  (``{"enclaveIdentity": {...}, "signature": "..."}``), as text or bytes.

Both shapes also need ``tcb_info_issuer_chain``, ``qe_identity_issuer_chain``
and ``pck_crl_issuer_chain`` (PEM, as the ``TCB-Info-Issuer-Chain``,
``SGX-Enclave-Identity-Issuer-Chain`` and ``SGX-PCK-CRL-Issuer-Chain``
headers; URL-encoding is undone), ``pck_crl`` and ``root_ca_crl`` (DER or
PEM bytes, or hex text of the DER).

The signatures cover the exact bytes of the inner objects; re-serialising
parsed JSON would break them, so those bytes are cut out of the text as
delivered.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from cleanroom.attestation.dcap.pck import load_pem_chain
from cleanroom.errors import EvidenceFormatError

__all__ = ["Collateral", "collateral_from_mapping", "signed_member"]

_MAX_TEXT = 256 * 1024


@dataclass(frozen=True, slots=True)
class Collateral:
    """Parsed, not yet verified, collateral for one quote."""

    tcb_info_json: bytes
    tcb_info_signature: bytes
    tcb_info_issuer_chain: tuple[x509.Certificate, ...]
    qe_identity_json: bytes
    qe_identity_signature: bytes
    qe_identity_issuer_chain: tuple[x509.Certificate, ...]
    pck_crl: x509.CertificateRevocationList
    pck_crl_issuer_chain: tuple[x509.Certificate, ...]
    root_ca_crl: x509.CertificateRevocationList


def _fail(message: str, detail: str) -> EvidenceFormatError:
    return EvidenceFormatError(message, failures=[detail])


def _text(value: Any, key: str) -> str:
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("collateral is not UTF-8", f"{key}: not UTF-8 text") from None
    if not isinstance(value, str):
        raise _fail(
            "collateral has the wrong type",
            f"{key}: got {type(value).__name__}, expected the exact JSON/PEM text",
        )
    if len(value) > _MAX_TEXT:
        raise _fail("collateral is too large", f"{key}: {len(value)} characters")
    return value


def _required(mapping: Mapping[str, Any], key: str) -> Any:
    if key not in mapping or mapping[key] is None:
        raise _fail("collateral is incomplete", f"{key}: missing")
    return mapping[key]


def _signature(value: Any, key: str) -> bytes:
    text = _text(value, key).strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise _fail("collateral signature is not hex", f"{key}: not hex") from None
    if len(raw) != 64:
        raise _fail(
            "collateral signature has the wrong size", f"{key}: {len(raw)} bytes, expected 64"
        )
    return raw


def _chain(value: Any, key: str) -> tuple[x509.Certificate, ...]:
    text = _text(value, key)
    if "%" in text and "-----BEGIN CERTIFICATE-----" not in text:
        text = unquote(text)
    certs = load_pem_chain(text.encode("ascii", errors="replace"), key)
    if not certs:
        raise _fail("collateral issuer chain is empty", f"{key}: no certificates")
    return tuple(certs)


def _crl(value: Any, key: str) -> x509.CertificateRevocationList:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-----BEGIN"):
            data = text.encode("ascii", errors="replace")
        else:
            try:
                data = binascii.unhexlify(text)
            except (binascii.Error, ValueError):
                raise _fail("collateral CRL is not hex", f"{key}: not hex DER or PEM") from None
    elif isinstance(value, bytes | bytearray):
        data = bytes(value)
    else:
        raise _fail("collateral has the wrong type", f"{key}: got {type(value).__name__}")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
        # Parse lazily-read fields now, so a malformed one is a format error.
        _ = (crl.issuer, crl.last_update_utc, crl.next_update_utc, crl.signature_hash_algorithm)
        _ = [(entry.serial_number, entry.revocation_date_utc) for entry in crl]
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion, x509.DuplicateExtension) as exc:
        raise _fail("collateral CRL does not parse", f"{key}: {exc}") from None
    return crl


def signed_member(response: str, member: str, key: str) -> tuple[bytes, bytes]:
    """The exact bytes of *member* in a PCS response object, and its signature.

    The top-level object is walked with the JSON decoder, recording where each
    member's value starts and ends, so the returned bytes are the ones Intel
    signed, whitespace and key order included.
    """
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    values: dict[str, Any] = {}
    try:
        pos = _skip_ws(response, 0)
        if response[pos : pos + 1] != "{":
            raise ValueError("not a JSON object")
        pos = _skip_ws(response, pos + 1)
        while response[pos : pos + 1] != "}":
            name, pos = decoder.raw_decode(response, pos)
            if not isinstance(name, str):
                raise ValueError("member name is not a string")
            pos = _skip_ws(response, pos)
            if response[pos : pos + 1] != ":":
                raise ValueError("expected ':'")
            start = _skip_ws(response, pos + 1)
            value, end = decoder.raw_decode(response, start)
            if name in spans:
                raise ValueError(f"duplicate member {name!r}")
            spans[name] = (start, end)
            values[name] = value
            pos = _skip_ws(response, end)
            if response[pos : pos + 1] == ",":
                pos = _skip_ws(response, pos + 1)
            elif response[pos : pos + 1] != "}":
                raise ValueError("expected ',' or '}'")
        if response[_skip_ws(response, pos + 1) :]:
            raise ValueError("text after the JSON object")
    except (ValueError, IndexError) as exc:
        raise _fail("collateral response is not valid JSON", f"{key}: {exc}") from None
    if member not in spans or not isinstance(values[member], dict):
        raise _fail("collateral response is incomplete", f"{key}: no {member!r} object")
    if "signature" not in values:
        raise _fail("collateral response is incomplete", f"{key}: no 'signature'")
    start, end = spans[member]
    return response[start:end].encode("utf-8"), _signature(values["signature"], key + ".signature")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def collateral_from_mapping(mapping: Mapping[str, Any]) -> Collateral:
    """Parse collateral in either accepted shape (see the module docstring)."""
    if not isinstance(mapping, Mapping):
        raise _fail("collateral has the wrong type", f"collateral: got {type(mapping).__name__}")
    if "tcb_info_response" in mapping:
        tcb_info, tcb_sig = signed_member(
            _text(mapping["tcb_info_response"], "tcb_info_response"),
            "tcbInfo",
            "tcb_info_response",
        )
    else:
        tcb_info = _text(_required(mapping, "tcb_info"), "tcb_info").encode("utf-8")
        tcb_sig = _signature(_required(mapping, "tcb_info_signature"), "tcb_info_signature")
    if "qe_identity_response" in mapping:
        qe_identity, qe_sig = signed_member(
            _text(mapping["qe_identity_response"], "qe_identity_response"),
            "enclaveIdentity",
            "qe_identity_response",
        )
    else:
        qe_identity = _text(_required(mapping, "qe_identity"), "qe_identity").encode("utf-8")
        qe_sig = _signature(_required(mapping, "qe_identity_signature"), "qe_identity_signature")
    return Collateral(
        tcb_info_json=tcb_info,
        tcb_info_signature=tcb_sig,
        tcb_info_issuer_chain=_chain(
            _required(mapping, "tcb_info_issuer_chain"), "tcb_info_issuer_chain"
        ),
        qe_identity_json=qe_identity,
        qe_identity_signature=qe_sig,
        qe_identity_issuer_chain=_chain(
            _required(mapping, "qe_identity_issuer_chain"), "qe_identity_issuer_chain"
        ),
        pck_crl=_crl(_required(mapping, "pck_crl"), "pck_crl"),
        pck_crl_issuer_chain=_chain(
            _required(mapping, "pck_crl_issuer_chain"), "pck_crl_issuer_chain"
        ),
        root_ca_crl=_crl(_required(mapping, "root_ca_crl"), "root_ca_crl"),
    )
