"""Run the service with uvicorn: in the foreground (``cleanroom serve``) or on a thread."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import threading
import time

import uvicorn

from cleanroom.atls.identity import AttestedTlsIdentity
from cleanroom.atls.serving import AtlsServer, AttestedH11Protocol, PeerRouteGate
from cleanroom.atls.settings import AtlsSettings
from cleanroom.errors import ServiceUnavailable
from cleanroom.server.allocator import keep_request_buffers
from cleanroom.server.app import create_app
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings
from cleanroom.server.tee import Tee

__all__ = ["ServerThread", "bind", "serve_forever"]


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _config(service: CleanRoomService, atls: AtlsServer | None = None) -> uvicorn.Config:
    if atls is None:
        return uvicorn.Config(
            create_app(service),
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    # Attested TLS (docs/attested-tls.md): the TLS key and certificate come from the TEE.
    app = create_app(service)
    app.state.atls = atls
    return uvicorn.Config(
        PeerRouteGate(app, atls.settings),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        http=AttestedH11Protocol,
        ssl_context_factory=lambda _config, _default: atls.identity.server_context(),
    )


def serve_forever(
    settings: ServerSettings, host: str, port: int, tls: AtlsSettings | None = None
) -> None:
    keep_request_buffers()
    service = CleanRoomService(settings)
    sandbox = service.sandbox_report()
    print(
        f"model sandbox: {sandbox.mechanism} (network namespace: "
        f"{sandbox.network_namespace or 'none'}, sockets denied: {sandbox.socket_denied}, "
        f"execve denied: {sandbox.execve_denied})",
        file=sys.stderr,
    )
    atls = None
    if tls is not None:
        atls = AtlsServer(
            AttestedTlsIdentity.for_tee(service.tee, tls), tls, fetchers=service.tee.fetchers
        )
    server = uvicorn.Server(_config(service, atls))
    # What start-up built lives as long as the process: keep it out of every
    # later collection (a full one over it took 30-80 ms, a stall on some request).
    gc.freeze()
    server.run(sockets=[bind(host, port)])


class ServerThread:
    """A real clean-room server on a loopback port, in a background thread."""

    def __init__(
        self,
        settings: ServerSettings,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: AtlsSettings | None = None,
        tee: Tee | None = None,
    ) -> None:
        self.settings = settings
        keep_request_buffers()
        self.service = CleanRoomService(settings, tee=tee)
        self._sock = bind(host, port)
        bound_host, bound_port = self._sock.getsockname()[:2]
        self.url = f"{'https' if tls else 'http'}://{bound_host}:{bound_port}"
        self.atls: AtlsServer | None = None
        if tls is not None:
            self.atls = AtlsServer(
                AttestedTlsIdentity.for_tee(self.service.tee, tls),
                tls,
                fetchers=self.service.tee.fetchers,
            )
        self._server = uvicorn.Server(_config(self.service, self.atls))
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._sock])),
            name="cleanroom-server",
            daemon=True,
        )

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServiceUnavailable("the clean-room server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
