"""The client side: an httpx transport that attests every connection before using it.

Each new TLS connection is checked inside the connection set-up, before the
HTTP client may write a byte of its own request: the transport sends a fresh
nonce over the new session, verifies the answer against the attestation
policy and the certificate presented on THIS connection, and (for a calling
clean room) answers the server's challenge with its own proof. A failure
closes the socket and raises :class:`~cleanroom.errors.AttestationError`;
the request that triggered the connection (and its credentials) is never
written.

Every response carries what its own connection verified, under the
:data:`SERVER_ATTESTATION` extension: what a caller reports about the
channel is the channel its request actually took, not the newest one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import typing
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import h11
import httpcore
import httpx

from cleanroom.atls.certificate import load_certificate, spki_der
from cleanroom.atls.document import AttestationDocument, verify_document
from cleanroom.atls.identity import AttestedTlsIdentity, client_context
from cleanroom.atls.peer import PeerProof
from cleanroom.attestation import AttestationPolicy, VerifiedEvidence
from cleanroom.attestation.fetch import EvidenceFetchers
from cleanroom.errors import (
    AttestationError,
    Error,
    EvidenceFormatError,
    ServiceUnavailable,
    error_class_for_code,
)

__all__ = ["SERVER_ATTESTATION", "AttestedTransport", "ServerAttestation", "attestation_of"]

log = logging.getLogger("cleanroom.atls")

NONCE_SIZE = 32
MAX_ANSWER = 1024 * 1024
HANDSHAKE_TIMEOUT = 30.0
DEFAULT_LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5)
#: The response extension holding the :class:`ServerAttestation` of its connection.
SERVER_ATTESTATION = "cleanroom.server_attestation"


@dataclass(frozen=True)
class ServerAttestation:
    """What the set-up of one connection verified about the server."""

    evidence: VerifiedEvidence
    document: AttestationDocument
    certificate_der: bytes
    mutual: bool


def _exchange(
    stream: httpcore.NetworkStream, host: str, path: str, body: Mapping[str, Any]
) -> tuple[int, Any]:
    """One HTTP/1.1 request over *stream*, before the pool owns it (RFC 9112)."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="POST",
        target=path,
        headers=[
            ("host", host),
            ("user-agent", "cleanroom-sdk/1 atls"),
            ("content-type", "application/json"),
            ("content-length", str(len(payload))),
        ],
    )
    out = conn.send(request) or b""
    out += conn.send(h11.Data(data=payload)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    stream.write(out, timeout=HANDSHAKE_TIMEOUT)
    status = 0
    received = bytearray()
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                # An empty read is the end of the stream; h11 decides if the answer was complete.
                conn.receive_data(stream.read(65536, timeout=HANDSHAKE_TIMEOUT))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                received += event.data
                if len(received) > MAX_ANSWER:
                    raise EvidenceFormatError("the attestation answer is too large")
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise AttestationError("the server closed the connection during attestation")
    except h11.ProtocolError as exc:
        raise EvidenceFormatError(
            f"the attestation answer is not HTTP/1.1: {type(exc).__name__}"
        ) from None
    if conn.trailing_data[0]:
        raise EvidenceFormatError("the server sent bytes after its attestation answer")
    try:
        return status, json.loads(bytes(received))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return status, None


def _refusal(status: int, doc: Any, what: str) -> AttestationError:
    if isinstance(doc, Mapping) and "code" in doc:
        cls = error_class_for_code(str(doc["code"]))
        failures = doc.get("failures")
        failure_list = [str(f) for f in failures] if isinstance(failures, list) else []
        detail = str(doc.get("detail") or doc.get("title") or "refused")
        if issubclass(cls, AttestationError):
            return cls(f"{what}: {detail}", failures=failure_list)
        return AttestationError(f"{what}: {detail} ({doc['code']})", failures=failure_list)
    return AttestationError(f"{what}: HTTP {status}")


#: How many connections' :class:`ServerAttestation` a transport keeps (the newest).
MAX_VERIFIED = 64


class _Attestor:
    def __init__(
        self,
        policy: AttestationPolicy,
        identity: AttestedTlsIdentity | None,
        fetchers: EvidenceFetchers | None,
    ) -> None:
        self.policy = policy
        self.identity = identity
        self.fetchers = fetchers
        self.lock = threading.Lock()
        # The newest only: a long-lived client (a pipeline stage) opens connections
        # for as long as it runs, and each result holds the server's whole evidence.
        self.verified: deque[ServerAttestation] = deque(maxlen=MAX_VERIFIED)
        # What each open connection verified, by its TLS stream: dropped with it.
        self.by_stream: weakref.WeakKeyDictionary[httpcore.NetworkStream, ServerAttestation] = (
            weakref.WeakKeyDictionary()
        )

    def attest(self, stream: httpcore.NetworkStream, host: str) -> ServerAttestation:
        ssl_object = stream.get_extra_info("ssl_object")
        if ssl_object is None:
            raise AttestationError("the connection is not TLS; attested connections need https")
        certificate_der = ssl_object.getpeercert(True)
        if not certificate_der:
            raise AttestationError("the server presented no certificate")
        server_spki = spki_der(load_certificate(certificate_der))
        nonce = os.urandom(NONCE_SIZE)
        status, answer = _exchange(stream, host, "/v1/atls/handshake", {"nonce": nonce.hex()})
        if status != 200 or not isinstance(answer, Mapping):
            raise _refusal(status, answer, "the server offers no attested-TLS handshake")
        document = AttestationDocument.from_json(answer.get("document"))
        evidence = verify_document(
            document,
            self.policy,
            nonce=nonce,
            role="server",
            tls_spki_der=server_spki,
            fetchers=self.fetchers,
        )
        if self.identity is not None:
            self._prove(stream, host, answer.get("challenge"), server_spki)
        if evidence.simulated:
            log.warning("attested TLS to a SIMULATED TEE: no confidentiality; development only")
        result = ServerAttestation(evidence, document, certificate_der, self.identity is not None)
        with self.lock:
            self.verified.append(result)
            self.by_stream[stream] = result
        return result

    def of_stream(self, stream: object) -> ServerAttestation | None:
        """What the connection behind *stream* verified, if it is one of ours."""
        if not isinstance(stream, httpcore.NetworkStream):
            return None
        with self.lock:
            return self.by_stream.get(stream)

    def _prove(
        self, stream: httpcore.NetworkStream, host: str, challenge_hex: object, server_spki: bytes
    ) -> None:
        assert self.identity is not None
        if not isinstance(challenge_hex, str):
            raise EvidenceFormatError("the server issued no challenge")
        try:
            challenge = bytes.fromhex(challenge_hex)
        except ValueError:
            raise EvidenceFormatError("the server's challenge is not hex") from None
        document = self.identity.document(challenge, role="client", peer_spki_der=server_spki)
        signature = self.identity.sign_proof(challenge, server_spki, document)
        proof = PeerProof(self.identity.certificate_der, document, signature)
        status, answer = _exchange(stream, host, "/v1/atls/peer", proof.to_json())
        if status != 200:
            raise _refusal(status, answer, "the server refused this clean room's attestation")


class _AttestingStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, attestor: _Attestor, host: str) -> None:
        self._inner = inner
        self._attestor = attestor
        self._host = host

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, timeout)
        try:
            self._attestor.attest(tls, self._host)
        except Error:
            # Refused, or the verifier's own fetch of collateral failed
            # (ServiceUnavailable): either way the connection is not used.
            tls.close()
            raise
        except (httpcore.NetworkError, httpcore.TimeoutException, OSError) as exc:
            tls.close()
            raise AttestationError(
                f"the attested-TLS handshake failed: {type(exc).__name__}"
            ) from None
        return tls


class _AttestingBackend(httpcore.NetworkBackend):
    def __init__(self, attestor: _Attestor) -> None:
        self._inner = httpcore.SyncBackend()
        self._attestor = attestor

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _AttestingStream(stream, self._attestor, f"{host}:{port}")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise ServiceUnavailable("attested TLS runs over TCP only")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AttestedTransport(httpx.HTTPTransport):
    """An httpx transport whose every connection is attested before use.

    *policy* judges the server's evidence; *identity* (a calling clean room)
    is presented when the server challenges. *fetchers* complete the server's
    evidence on this side (the current AMD CRL, Intel's current collateral).
    ``verified`` lists what the last :data:`MAX_VERIFIED` connections verified,
    oldest first.
    """

    def __init__(
        self,
        policy: AttestationPolicy,
        *,
        identity: AttestedTlsIdentity | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        fetchers: EvidenceFetchers | None = None,
    ) -> None:
        context = identity.client_context() if identity is not None else client_context()
        super().__init__(verify=context, limits=limits)
        self._attestor = _Attestor(policy, identity, fetchers)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=_AttestingBackend(self._attestor),
        )

    @property
    def verified(self) -> list[ServerAttestation]:
        with self._attestor.lock:
            return list(self._attestor.verified)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "https":
            raise AttestationError(
                "an attested connection needs an https:// URL",
                remedy="serve the clean room with --tls and use its https:// URL",
            )
        response = super().handle_request(request)
        verified = self._attestor.of_stream(response.extensions.get("network_stream"))
        if verified is None:
            # Every connection of this pool is attested in its set-up; a response
            # whose connection is not known is never handed on.
            response.close()
            raise AttestationError("the response came over a connection that was not attested")
        response.extensions[SERVER_ATTESTATION] = verified
        return response


def attestation_of(response: httpx.Response) -> ServerAttestation | None:
    """What the attested-TLS connection *response* came over verified (None without it)."""
    found = response.extensions.get(SERVER_ATTESTATION)
    return found if isinstance(found, ServerAttestation) else None
