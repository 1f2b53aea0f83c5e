"""Mutually attested TLS (docs/attested-tls.md).

A clean room's TLS key is made inside its TEE; its certificate carries the
attestation evidence in the ``id-pe-cmw`` extension. A client never accepts
that evidence alone: on every connection it obtains evidence bound to its
own fresh nonce and to the key of the certificate it sees on that
connection, before it sends anything. A clean room calling another proves
itself the same way, answering the callee's challenge.

The server side (:mod:`.serving`, :mod:`.routes`) is imported by the
server only.
"""

from cleanroom.atls.certificate import build_certificate, certificate_document, spki_der
from cleanroom.atls.cmw import CMW_OID, MEDIA_TYPE, decode_cmw, encode_cmw
from cleanroom.atls.document import AttestationDocument, verify_document
from cleanroom.atls.identity import AttestedTlsIdentity
from cleanroom.atls.settings import AtlsSettings, PeerRoute, Upstream
from cleanroom.atls.transport import AttestedTransport, ServerAttestation

__all__ = [
    "CMW_OID",
    "MEDIA_TYPE",
    "AtlsSettings",
    "AttestationDocument",
    "AttestedTlsIdentity",
    "AttestedTransport",
    "PeerRoute",
    "ServerAttestation",
    "Upstream",
    "build_certificate",
    "certificate_document",
    "decode_cmw",
    "encode_cmw",
    "spki_der",
    "verify_document",
]
