"""The one exception tree of ``cleanroom``.

Every error the package raises on purpose is a subclass of :class:`Error`.
Each class carries a stable machine-readable ``code`` (used as the
``code`` member and the ``type`` URI suffix of RFC 9457 problem documents on
the wire) and the HTTP status it maps to. The SDK maps problem documents back
to these classes, so a caller can ``except cleanroom.errors.AccessDenied``
whether the refusal happened locally or in the clean room.

::

    Error
    ├── ConfigurationError          bad settings, options or files given to us
    ├── InvalidRequest              malformed input that is the caller's to fix
    │   ├── InvalidTensor           wrong names, dtypes, shapes, encodings
    │   ├── PayloadTooLarge         a body over the configured limit
    │   └── RequestTimeout          a body or upload not received in time
    ├── CryptoError                 sealing and opening
    │   ├── DecryptionFailed        opaque: tampered, truncated, wrong key
    │   ├── UnsupportedEnvelope     unknown magic, version or suite
    │   └── ReplayDetected          a sealed request seen before, or stale
    ├── AttestationError            evidence that must not be trusted
    │   ├── EvidenceFormatError     bytes that do not parse as evidence
    │   ├── EvidenceSignatureError  signatures or certificate chains that fail
    │   ├── PolicyViolation         authentic evidence whose claims break policy
    │   └── StaleAttestation        the clean room's key or configuration changed since
    ├── AuthenticationFailed        missing, wrong, expired or forged credentials
    ├── AccessDenied                an authenticated party may not do this
    │   └── PolicyDenied            the instance's Rego policy said no
    ├── NotFound                    no such instance or account (or not visible)
    ├── Conflict                    the resource already exists or is in the way
    ├── ModelNotReady               predict before a model was uploaded
    ├── ModelRejected               a model refused before loading (hostile or malformed)
    ├── InferenceFailed             the model ran and failed, crashed or timed out
    ├── PolicyError                 a Rego policy that does not compile or evaluate
    ├── LogIntegrityError           a decision log or receipt that does not verify
    ├── AuditError                  a privacy audit that cannot be run as specified
    ├── StateTampered               stored state that fails its integrity check
    └── ServiceUnavailable          the clean room cannot serve right now

Messages never contain secrets (keys, plaintext, passwords). Decryption
failures are deliberately opaque: one message whatever went wrong.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccessDenied",
    "AttestationError",
    "AuditError",
    "AuthenticationFailed",
    "Conflict",
    "ConfigurationError",
    "CryptoError",
    "DecryptionFailed",
    "Error",
    "EvidenceFormatError",
    "EvidenceSignatureError",
    "InferenceFailed",
    "InvalidRequest",
    "InvalidTensor",
    "LogIntegrityError",
    "MethodNotAllowed",
    "ModelNotReady",
    "ModelRejected",
    "NotFound",
    "PayloadTooLarge",
    "PolicyDenied",
    "PolicyError",
    "PolicyViolation",
    "ReplayDetected",
    "RequestTimeout",
    "ServiceUnavailable",
    "StaleAttestation",
    "StateTampered",
    "UnsupportedEnvelope",
    "error_class_for_code",
]


class Error(Exception):
    """Base class of every error raised by ``cleanroom``.

    ``remedy`` is a short human-readable hint of what to do about it; the CLI
    prints it after the message.
    """

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    default_remedy: ClassVar[str] = ""

    def __init__(self, message: str, *, remedy: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy if remedy is not None else self.default_remedy
        self.details: dict[str, Any] = details

    def diagnostics(self) -> str:
        """The message and the remedy, as one paragraph for humans."""
        if self.remedy:
            return f"{self.message} ({self.remedy})"
        return self.message


class ConfigurationError(Error):
    code = "configuration"
    status = 500


class InvalidRequest(Error):
    code = "invalid-request"
    status = 400


class MethodNotAllowed(InvalidRequest):
    code = "method-not-allowed"
    status = 405
    default_remedy = "see docs/http-api.md for the methods each endpoint takes"


class InvalidTensor(InvalidRequest):
    code = "invalid-tensor"
    status = 422
    default_remedy = "send the input names, dtypes and shapes the model declares"


class PayloadTooLarge(InvalidRequest):
    code = "payload-too-large"
    status = 413
    default_remedy = "send a smaller body or raise the server's size limit"


class RequestTimeout(InvalidRequest):
    code = "request-timeout"
    status = 408
    default_remedy = "send the whole body at once, over a faster connection, or retry"


class CryptoError(Error):
    code = "crypto"
    status = 400


class DecryptionFailed(CryptoError):
    """Opaque on purpose: tampering, truncation and a wrong key look the same."""

    code = "decryption-failed"
    status = 400
    default_remedy = "re-attest the clean room and seal the request again"

    def __init__(self, message: str = "the sealed data could not be opened", **kw: Any) -> None:
        super().__init__(message, **kw)


class UnsupportedEnvelope(CryptoError):
    code = "unsupported-envelope"
    status = 400
    default_remedy = "upgrade the client or the clean room so both speak the same envelope version"


class ReplayDetected(CryptoError):
    code = "replay-detected"
    status = 409
    default_remedy = "seal every request afresh; sealed requests are single-use"


class AttestationError(Error):
    code = "attestation-failed"
    status = 502
    default_remedy = "do not send secrets to this clean room; check the attestation policy"

    def __init__(self, message: str, *, failures: list[str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.failures: list[str] = list(failures or [])


class EvidenceFormatError(AttestationError):
    code = "evidence-format"


class EvidenceSignatureError(AttestationError):
    code = "evidence-signature"


class PolicyViolation(AttestationError):
    code = "attestation-policy-violation"


class StaleAttestation(AttestationError):
    """The request was sealed for a key or configuration the clean room no longer has.

    The SDK answers it by validating the attestation again (same policy) and
    retrying once.
    """

    code = "attestation-stale"
    status = 409
    default_remedy = "validate the attestation again, then retry"


class AuthenticationFailed(Error):
    code = "authentication-failed"
    status = 401
    default_remedy = "sign in again"


class AccessDenied(Error):
    code = "access-denied"
    status = 403


class PolicyDenied(AccessDenied):
    code = "policy-denied"
    status = 403


class NotFound(Error):
    code = "not-found"
    status = 404


class Conflict(Error):
    code = "conflict"
    status = 409


class ModelNotReady(Error):
    code = "model-not-ready"
    status = 409
    default_remedy = "ask the model owner to upload the model"


class ModelRejected(Error):
    code = "model-rejected"
    status = 422


class InferenceFailed(Error):
    code = "inference-failed"
    status = 422


class PolicyError(Error):
    code = "policy-error"
    status = 422


class LogIntegrityError(Error):
    code = "log-integrity"
    status = 422


class AuditError(Error):
    code = "audit-error"
    status = 422


class StateTampered(Error):
    """Stored state that fails its integrity check: written by other code, or altered
    outside the clean room. It is refused, never used."""

    code = "state-tampered"
    status = 500
    default_remedy = (
        "ask the operator to restore the data directory this clean room wrote, "
        "or create the instance again"
    )


class ServiceUnavailable(Error):
    code = "service-unavailable"
    status = 503


def _all_subclasses(cls: type[Error]) -> list[type[Error]]:
    out: list[type[Error]] = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


def error_class_for_code(code: str) -> type[Error]:
    """The error class whose stable ``code`` is *code*; :class:`Error` if unknown."""
    for cls in _all_subclasses(Error):
        if cls.code == code:
            return cls
    return Error
