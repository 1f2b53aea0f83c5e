"""A consent manager that issues signed consent artefacts (JWS, ES256).

In the Account Aggregator framework a Consent Manager records the
customer's consent and signs the artefact; Financial Information Providers
and Users check that signature before data moves. Here the artefact is a
compact JWS (RFC 7515) signed with ECDSA P-256 / SHA-256 (``ES256``,
RFC 7518 §3.4). Its claims are the ReBIT ``ConsentDetail`` fields the clean
room's policy checks (``consentId``, ``consentMode``, ``consentTypes``,
``DataConsumer``, ``Customer``, ``Accounts``, ``Purpose``, ``FIDataRange``),
with the consent's start and expiry carried as the JWT registered claims
``nbf`` and ``exp`` (RFC 7519 §4.1) so a policy can check them with the
standard JWT built-ins.

The consent manager's *public* key is pinned in the instance policy, so it is
covered by the attested policy digest; its private key never leaves this
object (or the file the example writes with owner-only permissions).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cleanroom.errors import ConfigurationError

__all__ = ["ConsentManager", "ConsentTerms", "UNDERWRITING_PURPOSE"]

#: ReBIT purpose code 105, "Explicit one-time consent for the accounts": the
#: borrower lets the lender look at the accounts once, to decide a loan.
UNDERWRITING_PURPOSE = {
    "code": "105",
    "refUri": "https://api.rebit.org.in/aa/purpose/105.xml",
    "text": "Explicit one-time consent for the accounts",
    "Category": {"type": "Account Query and Monitoring"},
}


@dataclass(frozen=True)
class ConsentTerms:
    """What the customer agreed to: who may use which account's data, why, and when."""

    consent_id: str
    customer_id: str
    """The customer's Account Aggregator handle, e.g. ``borrower0001@aa.example``."""
    data_consumer_id: str
    """The Financial Information User the data may go to (the lender)."""
    fip_id: str
    """The Financial Information Provider holding the account (the bank)."""
    masked_acc_number: str
    link_ref_number: str
    fi_from: str
    """Start of the consented ``FIDataRange``, RFC 3339."""
    fi_to: str
    """End of the consented ``FIDataRange``, RFC 3339."""
    not_before: int
    """``consentStart``, seconds since the Unix epoch."""
    expires: int
    """``consentExpiry``, seconds since the Unix epoch."""
    purpose: dict[str, Any]

    def claims(self, issuer: str, issued_at: int) -> dict[str, Any]:
        return {
            "iss": issuer,
            "iat": issued_at,
            "nbf": self.not_before,
            "exp": self.expires,
            "consentId": self.consent_id,
            "consentMode": "QUERY",
            "fetchType": "ONETIME",
            "consentTypes": ["SUMMARY", "TRANSACTIONS"],
            "fiTypes": ["DEPOSIT"],
            "DataConsumer": {"id": self.data_consumer_id, "type": "FIU"},
            "Customer": {"id": self.customer_id},
            "Accounts": [
                {
                    "fiType": "DEPOSIT",
                    "fipId": self.fip_id,
                    "accType": "SAVINGS",
                    "linkRefNumber": self.link_ref_number,
                    "maskedAccNumber": self.masked_acc_number,
                }
            ],
            "Purpose": self.purpose,
            "FIDataRange": {"from": self.fi_from, "to": self.fi_to},
        }


class ConsentManager:
    """Holds the consent manager's ES256 signing key and signs consent artefacts."""

    def __init__(self, identifier: str, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ConfigurationError("ES256 needs a P-256 key (RFC 7518 §3.4)")
        self.identifier = identifier
        self._key = private_key

    @classmethod
    def generate(cls, identifier: str) -> ConsentManager:
        return cls(identifier, ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, identifier: str, pem: bytes) -> ConsentManager:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise ConfigurationError("the consent manager key is not a PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError("the consent manager key is not an EC key")
        return cls(identifier, key)

    def private_key_pem(self) -> bytes:
        """The signing key, PKCS #8 PEM, unencrypted: store it with owner-only permissions."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_key_pem(self) -> str:
        """The verification key, SubjectPublicKeyInfo PEM: the value pinned in the policy."""
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    @property
    def key_id(self) -> str:
        """``kid``: the first 16 hex digits of SHA-256 over the DER public key."""
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()[:16]

    def issue(self, terms: ConsentTerms, *, issued_at: int) -> str:
        """The signed consent artefact for *terms*: a compact JWS string."""
        if terms.expires <= terms.not_before:
            raise ConfigurationError("a consent must expire after it starts")
        return jwt.encode(
            terms.claims(self.identifier, issued_at),
            self._key,
            algorithm="ES256",
            headers={"kid": self.key_id, "typ": "JWT"},
        )
