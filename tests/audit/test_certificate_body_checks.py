"""A correctly signed certificate is still refused when its body is not a certificate.

The signature proves who signed, not what was signed: a body that labels an
estimate as the bound, states a verdict outside the two defined ones, or
lacks a digest must not verify, whoever signed it. The policy gate's age
limit is inclusive: a certificate exactly ``max_age`` old is still current.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cleanroom.audit import (
    CERTIFICATE_FORMAT,
    require_current_certificate,
    sign_certificate,
    verify_certificate,
)
from cleanroom.errors import ConfigurationError, LogIntegrityError, PolicyDenied

ISSUED = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
SPEC = "sha256:" + "1" * 64
MODEL = "sha256:" + "2" * 64


def _body() -> dict[str, Any]:
    return {
        "format": CERTIFICATE_FORMAT,
        "audit": "membership-audit",
        "issued_at": "2026-11-21T12:00:00Z",
        "spec_digest": SPEC,
        "model_digest": MODEL,
        "confidence": 0.95,
        "epsilon_lower_bound": {"kind": "lower-bound", "epsilon": 0.7, "confidence": 0.95},
        "ceiling": 5.2,
        "verdict": "CONSISTENT",
    }


def _set(path: tuple[str, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        target = body
        for name in path[:-1]:
            target = target[name]
        target[path[-1]] = value

    return mutate


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda body: body.pop(name)


@pytest.mark.parametrize(
    ("name", "mutate", "reason"),
    [
        (
            "estimate labelled as the bound",
            _set(("epsilon_lower_bound", "kind"), "bayesian-estimate"),
            "not labelled a lower bound",
        ),
        ("bound kind missing", lambda b: b["epsilon_lower_bound"].pop("kind"), "lower bound"),
        ("verdict outside the two", _set(("verdict",), "PRIVATE"), "verdict"),
        ("verdict missing", _drop("verdict"), "verdict"),
        ("spec digest not sha256", _set(("spec_digest",), "md5:" + "1" * 32), "spec_digest"),
        ("model digest missing", _drop("model_digest"), "model_digest"),
        ("epsilon a boolean", _set(("epsilon_lower_bound", "epsilon"), True), "epsilon"),
        ("epsilon a string", _set(("epsilon_lower_bound", "epsilon"), "0.7"), "epsilon"),
        ("ceiling a string", _set(("ceiling",), "5.2"), "ceiling"),
        ("issued_at not RFC 3339", _set(("issued_at",), "21/11/2026"), "issued_at"),
        ("issued_at missing", _drop("issued_at"), "issued_at"),
    ],
)
def test_a_signed_body_that_is_not_a_certificate_is_refused(
    name: str, mutate: Callable[[dict[str, Any]], None], reason: str
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    body = _body()
    mutate(body)
    document = sign_certificate(body, key)
    with pytest.raises(LogIntegrityError, match=reason):
        verify_certificate(document, public_key=key.public_key())


def test_the_well_formed_body_verifies() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    certificate = verify_certificate(sign_certificate(_body(), key), public_key=key.public_key())
    assert certificate.verdict == "CONSISTENT"
    assert certificate.epsilon_lower_bound == 0.7
    assert certificate.issued_at == ISSUED


@pytest.fixture(scope="module")
def certificate() -> Any:
    key = ed25519.Ed25519PrivateKey.generate()
    return verify_certificate(sign_certificate(_body(), key), public_key=key.public_key())


@pytest.mark.parametrize(
    "now",
    [ISSUED, ISSUED + timedelta(days=30)],
    ids=["issued now", "exactly max_age old"],
)
def test_the_age_limit_is_inclusive(certificate: Any, now: datetime) -> None:
    require_current_certificate(
        certificate, spec_digest=SPEC, model_digest=MODEL, now=now, max_age=timedelta(days=30)
    )


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (ISSUED + timedelta(days=30, seconds=1), "older than the allowed age"),
        (ISSUED - timedelta(seconds=1), "in the future"),
    ],
)
def test_one_second_past_either_end_is_refused(
    certificate: Any, now: datetime, reason: str
) -> None:
    with pytest.raises(PolicyDenied, match=reason):
        require_current_certificate(
            certificate, spec_digest=SPEC, model_digest=MODEL, now=now, max_age=timedelta(days=30)
        )


def test_the_signature_covers_the_format_prefix_and_the_canonical_body() -> None:
    # Recomputed here: the prefix line, then the body with sorted keys and no
    # whitespace (RFC 8785 for this ASCII, short-float body).
    key = ed25519.Ed25519PrivateKey.generate()
    body = _body()
    document = json.loads(sign_certificate(body, key))
    value = document["signature"]["value"]
    signature = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    key.public_key().verify(signature, b"cleanroom-audit-certificate/v1\n" + canonical)


def test_a_trusted_key_and_an_evidence_verifier_together_are_refused() -> None:
    # Given both, one of them would silently go unchecked.
    key = ed25519.Ed25519PrivateKey.generate()
    document = sign_certificate(_body(), key, evidence={"report": "x"})
    with pytest.raises(ConfigurationError, match="exactly one"):
        verify_certificate(
            document, public_key=key.public_key(), evidence_key=lambda _: key.public_key()
        )
