"""An attestation document whose fields have the wrong JSON type is refused with
EvidenceFormatError, never a builtin exception.

The document comes from the other end of the connection (the server's handshake
answer, a calling clean room's proof): a document or config that is not an object, a nonce
that is not a string, or a ``keys.hpke`` that is not a base64 string is a typed
refusal, both when the document is read and when it is verified.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from atls_fakes import make_identity

from cleanroom.atls.document import AttestationDocument, verify_document
from cleanroom.attestation import AttestationPolicy
from cleanroom.errors import EvidenceFormatError

NONCE = b"\x05" * 32

# (case, field, value) applied to a genuine document's JSON
DOCUMENT_CASES: list[tuple[str, str, Any]] = [
    ("config a list", "config", []),
    ("config a list of pairs", "config", [["purpose", "cleanroom/v1 attested-tls"]]),
    ("config a string", "config", "purpose"),
    ("config a number", "config", 7),
    ("config null", "config", None),
    ("nonce a number", "nonce", 5),
    ("nonce a list", "nonce", [5]),
    ("nonce null", "nonce", None),
    ("nonce an object", "nonce", {"hex": "05"}),
    ("nonce not hex", "nonce", "zz"),
]


@pytest.mark.parametrize(
    ("case", "field", "value"), DOCUMENT_CASES, ids=[c[0] for c in DOCUMENT_CASES]
)
def test_a_document_field_of_the_wrong_type_is_refused(
    case: str, field: str, value: Any, tee_dir: Path
) -> None:
    doc = make_identity(tee_dir).document(NONCE, role="server").to_json()
    doc[field] = value
    with pytest.raises(EvidenceFormatError, match=f"document's {field} must be"):
        AttestationDocument.from_json(doc)


NOT_AN_OBJECT: list[tuple[str, Any]] = [
    ("a list of the three key names", ["evidence", "config", "nonce"]),
    ("null", None),
    ("a number", 3),
    ("a string", "evidence"),
]


@pytest.mark.parametrize(("case", "value"), NOT_AN_OBJECT, ids=[c[0] for c in NOT_AN_OBJECT])
def test_a_document_that_is_not_an_object_is_refused(case: str, value: Any) -> None:
    with pytest.raises(EvidenceFormatError, match="is an object with evidence, config and nonce"):
        AttestationDocument.from_json(value)
    with pytest.raises(EvidenceFormatError, match="is an object with evidence, config and nonce"):
        AttestationDocument.from_bytes(json.dumps(value).encode())


HPKE_CASES: list[tuple[str, Any]] = [
    ("a number", 7),
    ("a list", ["AAAA"]),
    ("null", None),
    ("an object", {"key": "AAAA"}),
    ("a boolean", True),
]


@pytest.mark.parametrize(("case", "value"), HPKE_CASES, ids=[c[0] for c in HPKE_CASES])
def test_a_bound_document_whose_hpke_key_is_not_a_string_is_refused(
    case: str, value: Any, tee_dir: Path, policy: AttestationPolicy
) -> None:
    # Bound to this connection (purpose, role, nonce and TLS key all right), so the
    # verifier goes on to compute REPORT_DATA from keys.hpke.
    attester = make_identity(tee_dir)
    genuine = attester.document(NONCE, role="server")
    config = {**genuine.config, "keys": {**genuine.config["keys"], "hpke": value}}
    document = AttestationDocument(genuine.evidence, config, NONCE)
    with pytest.raises(EvidenceFormatError, match=r"no keys\.hpke"):
        _ = document.hpke_public_key
    with pytest.raises(EvidenceFormatError, match=r"no keys\.hpke"):
        verify_document(
            document, policy, nonce=NONCE, role="server", tls_spki_der=attester.spki_der
        )
