"""verify_document accepts only a verifier nonce of 16 to 64 bytes.

Freshness rests on the verifier's nonce being unpredictable: a document that
answers an empty or short nonce could have been made long before it is shown.
Each refused nonce here is one the document genuinely answers, bound to the
right TLS key in the right role, so only the length guard refuses it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from atls_fakes import make_identity

from cleanroom.atls.document import NONCE_MAX, NONCE_MIN, verify_document
from cleanroom.attestation import AttestationPolicy
from cleanroom.errors import ConfigurationError

REFUSED = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\x01", id="one byte"),
    pytest.param(b"\x01" * (NONCE_MIN - 1), id="one byte short"),
    pytest.param(b"\x01" * (NONCE_MAX + 1), id="one byte long"),
    pytest.param(b"\x01" * 4096, id="4 KiB"),
]


@pytest.mark.parametrize("role", ["server", "client"])
@pytest.mark.parametrize("nonce", REFUSED)
def test_a_document_for_a_nonce_of_the_wrong_length_is_refused(
    nonce: bytes, role: str, tee_dir: Path, policy: AttestationPolicy
) -> None:
    attester = make_identity(tee_dir)
    verifier_spki = make_identity(tee_dir).spki_der if role == "client" else None
    document = attester.document(nonce, role=role, peer_spki_der=verifier_spki)
    with pytest.raises(ConfigurationError, match=f"{NONCE_MIN} to {NONCE_MAX} bytes"):
        verify_document(
            document,
            policy,
            nonce=nonce,
            role=role,
            tls_spki_der=attester.spki_der,
            peer_spki_der=verifier_spki,
        )


@pytest.mark.parametrize("length", [NONCE_MIN, NONCE_MAX])
def test_nonces_at_the_bounds_are_accepted(
    length: int, tee_dir: Path, policy: AttestationPolicy
) -> None:
    attester = make_identity(tee_dir)
    nonce = b"\x02" * length
    document = attester.document(nonce, role="server")
    verified = verify_document(
        document, policy, nonce=nonce, role="server", tls_spki_der=attester.spki_der
    )
    assert verified.measurement
