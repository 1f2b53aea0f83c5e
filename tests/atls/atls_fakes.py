"""Test identities on a simulated TEE, and TLS servers that play attacker.

``make_identity`` builds an attested-TLS identity whose evidence a test can
break one field at a time (measurement, debug, root). ``FakeServer`` serves
any ASGI app over TLS with a chosen identity and records every request it
receives, so a test can prove that nothing but the handshake reached it.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cleanroom.atls.document import CONFIG_PURPOSE
from cleanroom.atls.identity import AttestedTlsIdentity
from cleanroom.atls.serving import AttestedH11Protocol
from cleanroom.attestation import AttestationPolicy, Evidence
from cleanroom.attestation.measurement import package_measurement
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.crypto.binding import TLS_SPKI_KEY, config_digest, report_data, tls_key_digest
from cleanroom.crypto.keys import KeyPair

PASSWORD = "correct horse battery staple"
STAGE_POLICY_DIGEST = "sha256:" + "ab" * 32


def policy_for(tee_dir: Path, **overrides: object) -> AttestationPolicy:
    args: dict[str, object] = {
        "measurements": [package_measurement().hex()],
        "allow_simulated": True,
        "simulated_root": tee_dir / "simulated-root.pem",
    }
    args.update(overrides)
    return AttestationPolicy(**args)  # type: ignore[arg-type]


def make_identity(
    tee_dir: Path,
    *,
    measurement: bytes | None = None,
    debug: bool = False,
    policy_digest: str | None = None,
    purpose: str | None = CONFIG_PURPOSE,
    evidence_for: Callable[[bytes], Evidence] | None = None,
) -> AttestedTlsIdentity:
    """An identity on the simulated TEE in *tee_dir* (its root is tee_dir/simulated-root.pem);
    its attested configuration names *purpose* (none if None). *evidence_for* turns
    REPORT_DATA into evidence instead of the simulator (hardware-like evidence, say)."""
    simulator = SimulatedSnpTee.open(tee_dir)
    hpke = KeyPair()
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    config: dict[str, Any] = {
        "version": 1,
        "service": {"tee": "simulated", "simulated": True},
        "keys": {
            "hpke": base64.b64encode(hpke.public.raw).decode(),
            TLS_SPKI_KEY: tls_key_digest(spki).hex(),
        },
        "policy_digest": policy_digest,
        "routes": [],
    }
    if purpose is not None:
        config["purpose"] = purpose

    def evidence(nonce: bytes, doc: dict[str, Any]) -> Evidence:
        data = report_data(
            hpke_public_key=hpke.public.raw, nonce=nonce, config_digest=config_digest(doc)
        )
        if evidence_for is not None:
            return evidence_for(data)
        return simulator.evidence(
            data, measurement=measurement or package_measurement(), debug=debug
        )

    return AttestedTlsIdentity(key, evidence, config)


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


Handler = Callable[[Request], Awaitable[Response]]


class FakeServer:
    """A TLS server with *identity*'s certificate; *handshake* answers /v1/atls/handshake."""

    def __init__(self, identity: AttestedTlsIdentity, handshake: Handler | None) -> None:
        self.seen: list[tuple[str, bool]] = []

        async def record(request: Request) -> Response:
            self.seen.append((request.url.path, "authorization" in request.headers))
            if request.url.path == "/v1/atls/handshake" and handshake is not None:
                return await handshake(request)
            return JSONResponse({"status": "ok"})

        app = Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST", "PUT"])])
        self._sock = _bind()
        port = self._sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{port}"
        context = identity.server_context()
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=AttestedH11Protocol,
            ssl_context_factory=lambda _c, _d: context,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._sock])), daemon=True
        )

    def __enter__(self) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert self._thread.is_alive()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
        self._sock.close()


def raw_tls(url: str) -> ssl.SSLSocket:
    """A bare TLS connection (no attestation) to *url*, for protocol-level tests."""
    host, port = url.removeprefix("https://").split(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(socket.create_connection((host, int(port)), timeout=20))


def post_raw(sock: ssl.SSLSocket, path: str, body: object) -> tuple[int, dict[str, str], Any]:
    """One HTTP/1.1 POST on an open connection; the parsed answer."""
    import json

    import h11

    conn = h11.Connection(h11.CLIENT)
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = [("host", "x"), ("content-type", "application/json")]
    headers.append(("content-length", str(len(payload))))
    sock.sendall(
        conn.send(h11.Request(method="POST", target=path, headers=headers))
        + conn.send(h11.Data(data=payload))
        + conn.send(h11.EndOfMessage())
    )
    status, answer_headers, data = 0, {}, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
            answer_headers = {k.decode(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            data += event.data
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    return status, answer_headers, json.loads(data) if data else None


def closed_by_peer(sock: ssl.SSLSocket) -> bool:
    """True when the server has closed the connection (EOF, or a reset)."""
    try:
        return sock.recv(1) == b""
    except (ConnectionError, ssl.SSLError):
        return True


class RawTlsServer:
    """A TLS server that answers the first request with *reply* bytes, then closes."""

    def __init__(self, identity: AttestedTlsIdentity, reply: bytes) -> None:
        self.requests: list[bytes] = []
        self._reply = reply
        self._context = identity.server_context()
        self._sock = _bind()
        self.url = f"https://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return
        with conn:
            try:
                tls = self._context.wrap_socket(conn, server_side=True)
                self.requests.append(tls.recv(65536))
                tls.sendall(self._reply)
                tls.close()
            except (OSError, ssl.SSLError):
                return

    def __enter__(self) -> RawTlsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
        self._thread.join(timeout=20)
