"""The SDK entry point: accounts and instances."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx

from cleanroom.atls.identity import AttestedTlsIdentity
from cleanroom.atls.transport import AttestedTransport, ServerAttestation, attestation_of
from cleanroom.attestation import AttestationPolicy
from cleanroom.attestation.fetch import EvidenceFetchers, KdsFetcher, PcsFetcher
from cleanroom.client.http import raise_for_problem, transport_error
from cleanroom.client.instance import Instance, read_audit_spec, read_policy
from cleanroom.errors import AuthenticationFailed, ConfigurationError
from cleanroom.wire.formats import ModelFormat

__all__ = ["Client"]

DEFAULT_URL = "http://127.0.0.1:8000"


class Client:
    """A connection to one clean room, as one signed-in party.

    ``transport`` is the one seam to the network (tests pass an in-process
    transport). Nothing secret is sent before an instance's attestation has
    been validated; passwords go only to the account endpoints.

    ``attestation``: an https URL's clean room is attested on every new
    connection, before anything (even credentials) is sent; a failure raises
    :class:`~cleanroom.errors.AttestationError`. ``identity``: a calling
    clean room's own attested-TLS identity, presented when the server asks
    (docs/attested-tls.md). ``kds``, ``pcs``: complete evidence on this side
    instead of relying on what the host being verified sends, both for
    ``validate_attestation`` and for every attested-TLS connection:
    ``KdsFetcher()`` adds the current AMD CRL to SEV-SNP evidence (and the VCEK
    chain if none came), ``PcsFetcher()`` judges TDX and SGX quotes with
    Intel's current collateral.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = 300.0,
        transport: httpx.BaseTransport | None = None,
        attestation: AttestationPolicy | None = None,
        identity: AttestedTlsIdentity | None = None,
        kds: KdsFetcher | None = None,
        pcs: PcsFetcher | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.fetchers = None if kds is None and pcs is None else EvidenceFetchers(kds, pcs)
        self._attested: AttestedTransport | None = None
        if (attestation is not None or identity is not None) and transport is not None:
            # Fail closed: a custom transport would silently skip attested TLS.
            raise ConfigurationError("pass either a transport or attested TLS, not both")
        if identity is not None and attestation is None:
            raise ConfigurationError("an attested-TLS identity needs an attestation policy")
        if attestation is not None:
            transport = self._attested = AttestedTransport(
                attestation, identity=identity, fetchers=self.fetchers
            )
        self._http = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            headers={"user-agent": "cleanroom-sdk/1"},
        )
        self._token: str | None = None
        self.email: str | None = None
        self._last = threading.local()

    # plumbing ---------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        if self._token is None:
            raise AuthenticationFailed(
                "sign in first", remedy="call Client.sign_in(email, password)"
            )
        return {"authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if kwargs.pop("auth", True):
            headers.update(self._auth_headers())
        self._last.attestation = None
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        self._last.attestation = attestation_of(response)
        raise_for_problem(response)
        return response

    def close(self) -> None:
        self._http.close()

    @property
    def server_attestations(self) -> list[ServerAttestation]:
        """What attested TLS verified for each connection so far (empty without it)."""
        return [] if self._attested is None else self._attested.verified

    @property
    def attested(self) -> bool:
        """Whether every connection of this client is attested TLS."""
        return self._attested is not None

    @property
    def last_server_attestation(self) -> ServerAttestation | None:
        """What the connection of this thread's last request verified.

        None without attested TLS, or when that request failed before a response.
        """
        found: ServerAttestation | None = getattr(self._last, "attestation", None)
        return found

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # accounts -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/health", auth=False).json()
        return result

    def sign_up(self, email: str, password: str) -> None:
        """Create an account (only when the clean room runs with open registration)."""
        self.request(
            "POST", "/v1/accounts", json={"email": email, "password": password}, auth=False
        )

    def sign_in(self, email: str, password: str) -> None:
        doc = self.request(
            "POST", "/v1/sessions", json={"email": email, "password": password}, auth=False
        ).json()
        self._token = str(doc["token"])
        self.email = str(doc["email"])

    # instances -------------------------------------------------------------------------

    def create_instance(
        self,
        name: str,
        model_format: ModelFormat | str,
        users: Iterable[str] = (),
        *,
        policy: str | os.PathLike[str] | None = None,
        audit_spec: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        limits: Mapping[str, Any] | None = None,
        upstreams: Iterable[Mapping[str, str]] | None = None,
    ) -> Instance:
        """Create an instance owned by the signed-in party, naming its data owners.

        *policy* is a Rego module (its text, or a path to a ``.rego`` file) in
        package ``cleanroom``; without one the documented default applies.
        A policy that does not compile is refused with the engine's message.
        *audit_spec* (a JSON object, or a path to one) fixes the instance's
        privacy audit before any data exists (docs/privacy-audits.md).
        *limits* lowers the sandbox's limits for this instance and sets its worker
        count: ``request_timeout_s``, ``memory_bytes``, ``cpu_seconds``,
        ``open_files``, ``workers``, ``intra_op_threads`` (docs/sandbox.md).
        *upstreams* (``{measurement, policy_digest}`` each) makes the instance serve
        only those clean rooms, calling over mutually attested TLS
        (docs/attested-tls.md); the list is attested.
        """
        doc = self.request(
            "POST",
            "/v1/instances",
            json={
                "name": name,
                "format": ModelFormat(model_format).value,
                "users": list(users),
                "policy": read_policy(policy),
                "audit_spec": read_audit_spec(audit_spec),
                "limits": dict(limits) if limits else None,
                "upstreams": None if upstreams is None else [dict(u) for u in upstreams],
            },
        ).json()
        return Instance(self, doc)

    def get_instance(self, instance_id: str) -> Instance:
        """The instance *instance_id* (an answer naming another instance is refused)."""
        return Instance(self, self._instance_doc(instance_id), expected_id=instance_id)

    def _instance_doc(self, instance_id: str) -> Mapping[str, Any]:
        doc: Mapping[str, Any] = self.request("GET", f"/v1/instances/{instance_id}").json()
        return doc

    def list_instances(self) -> list[Instance]:
        """The instances the signed-in party owns or is named on."""
        docs = self.request("GET", "/v1/instances").json()["instances"]
        return [Instance(self, d) for d in docs]
