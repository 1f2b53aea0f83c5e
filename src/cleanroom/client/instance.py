"""One clean-room instance, as seen by one party."""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from cleanroom.atls.certificate import load_certificate, spki_der
from cleanroom.atls.transport import ServerAttestation, attestation_of
from cleanroom.attestation import AttestationPolicy, Evidence, VerifiedEvidence, verify_evidence
from cleanroom.background import in_background
from cleanroom.client.secret import Secret
from cleanroom.crypto import envelope
from cleanroom.crypto.binding import TLS_SPKI_KEY, config_digest, report_data, tls_key_digest
from cleanroom.crypto.key_proof import key_registration
from cleanroom.crypto.keys import PublicKey
from cleanroom.crypto.stream import CHUNK_SIZE, seal_stream, stream_info
from cleanroom.errors import (
    AttestationError,
    AuthenticationFailed,
    InvalidRequest,
    InvalidTensor,
    LogIntegrityError,
    ModelNotReady,
    PolicyViolation,
    StaleAttestation,
)
from cleanroom.wire.tensors import (
    decode_tensors,
    encode_tensor_parts,
    tensors_from_json,
)

if TYPE_CHECKING:
    from cleanroom.client.client import Client

__all__ = ["Instance", "read_audit_spec", "read_policy"]

log = logging.getLogger("cleanroom.client")


KEY_ID_HEADER = "cleanroom-key-id"
CONFIG_HEADER = "cleanroom-config-digest"
RECEIPT_HEADER = "cleanroom-receipt"
NONCE_SIZE = 32
T = TypeVar("T")

Inputs = Mapping[str, npt.ArrayLike] | npt.NDArray[Any] | bytes | str


def read_policy(policy: str | os.PathLike[str] | None) -> str | None:
    """A Rego module given as text or as a path to a file."""
    if policy is None:
        return None
    if isinstance(policy, str) and ("\n" in policy or policy.lstrip().startswith("package")):
        return policy
    path = Path(policy)
    if not path.is_file():
        raise InvalidRequest(f"the policy {os.fspath(policy)!r} is neither Rego text nor a file")
    return path.read_text(encoding="utf-8")


def read_audit_spec(
    spec: Mapping[str, Any] | str | os.PathLike[str] | None,
) -> dict[str, Any] | None:
    """An audit spec given as a JSON object or as a path to a JSON file."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return dict(spec)
    path = Path(spec)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"cannot read the audit spec {os.fspath(spec)!r} as JSON") from exc
    if not isinstance(doc, dict):
        raise InvalidRequest("an audit spec is a JSON object")
    return doc


def _blob(data: str | os.PathLike[str] | bytes) -> tuple[int, Callable[[], Iterator[bytes]]]:
    """The size of *data* and a function giving it in chunks (bytes, or a file read lazily)."""
    if isinstance(data, bytes):
        size = len(data)

        def from_bytes() -> Iterator[bytes]:
            for start in range(0, size, CHUNK_SIZE):
                yield data[start : start + CHUNK_SIZE]

        return size, from_bytes
    path = Path(data)
    if not path.is_file():
        raise InvalidRequest(f"{path} is not a file")

    def from_file() -> Iterator[bytes]:
        with open(path, "rb") as f:
            while piece := f.read(CHUNK_SIZE):
                yield piece

    return path.stat().st_size, from_file


@dataclass(frozen=True)
class _Attested:
    """What a successful validation established: the key to seal to, and the configuration."""

    hpke_key: PublicKey
    config: Mapping[str, Any]
    config_digest: str
    evidence: VerifiedEvidence


def _receipt(header: str | None) -> dict[str, Any] | None:
    if not header:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(header))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class Instance:
    def __init__(
        self, client: Client, doc: Mapping[str, Any], *, expected_id: str | None = None
    ) -> None:
        """*doc* is the service's instance document; *expected_id* the id asked for.

        The id is pinned here: every later document must name the same
        instance, and attestation is checked against it (an answer that names
        another instance is refused, whoever sent it).
        """
        self._client = client
        got = doc.get("id") if isinstance(doc, Mapping) else None
        if not isinstance(got, str) or (expected_id is not None and got != expected_id):
            raise AttestationError(
                f"asked for instance {expected_id!r}, the service answered with {got!r}"
            )
        self._id = got
        self._doc = dict(doc)
        self._policy: AttestationPolicy | None = None
        self._attested: _Attested | None = None
        self._secret: Secret | None = None
        self.last_receipt: dict[str, Any] | None = None
        """The receipt of the last prediction: its log entry, signed checkpoint and proof."""

    # what the service says about the instance (not attested unless noted) --------

    @property
    def id(self) -> str:
        return self._id

    def _replace_doc(self, doc: Mapping[str, Any]) -> None:
        """Take the service's newer document of this instance (never of another)."""
        got = doc.get("id") if isinstance(doc, Mapping) else None
        if got != self._id:
            raise AttestationError(
                f"the service answered for instance {got!r} instead of {self._id!r}"
            )
        self._doc = dict(doc)

    @property
    def name(self) -> str:
        return str(self._doc["name"])

    @property
    def owner(self) -> str:
        return str(self._doc["owner"])

    @property
    def users(self) -> list[str]:
        return [str(u) for u in self._doc["users"]]

    @property
    def model_ready(self) -> bool:
        return bool(self._doc["model"]["ready"])

    @property
    def model_signature(self) -> Mapping[str, Any] | None:
        signature = self._doc["model"].get("signature")
        return signature if isinstance(signature, Mapping) else None

    @property
    def policy_digest(self) -> str | None:
        """The digest of the policy in force, as attested (or as reported before attestation)."""
        if self._attested is not None:
            instance = self._attested.config.get("instance", {})
            return str(instance.get("policy_digest")) if instance.get("policy_digest") else None
        value = self._doc.get("policy_digest")
        return str(value) if value else None

    @property
    def attested_config(self) -> Mapping[str, Any] | None:
        """The configuration document the last successful validation verified."""
        return None if self._attested is None else self._attested.config

    @property
    def evidence(self) -> VerifiedEvidence | None:
        return None if self._attested is None else self._attested.evidence

    def refresh(self) -> None:
        self._replace_doc(self._client._instance_doc(self.id))

    def __repr__(self) -> str:
        return f"Instance(id={self.id!r}, name={self.name!r}, owner={self.owner!r})"

    # attestation ------------------------------------------------------------------

    def validate_attestation(self, policy: AttestationPolicy) -> VerifiedEvidence:
        """Verify the clean room's evidence for this instance against *policy*.

        Checks, with a fresh nonce: the evidence's signature and certificate
        chain, the measurement allow-list and every other policy field, and
        that REPORT_DATA commits to the HPKE key, the nonce and the
        configuration document the service returned. Raises
        :class:`cleanroom.errors.AttestationError` if anything is off; only
        then may secrets be sent. A failed validation also drops any earlier
        one: nothing is sealed to this instance until a validation succeeds.
        """
        self._attested = None
        nonce = os.urandom(NONCE_SIZE)
        response = self._client.request(
            "GET", f"/v1/instances/{self.id}/attestation", params={"nonce": nonce.hex()}
        )
        channel = attestation_of(response)
        doc = response.json()
        try:
            evidence = Evidence.from_json(doc["evidence"])
            config = doc["config"]
            hpke_raw = base64.b64decode(doc["hpke_public_key"], validate=True)
            if not isinstance(config, dict):
                raise TypeError("config is not an object")
        except (KeyError, TypeError, ValueError) as exc:
            raise AttestationError(f"the attestation document is malformed: {exc}") from None
        digest = config_digest(config)
        expected = report_data(hpke_public_key=hpke_raw, nonce=nonce, config_digest=digest)
        if self._client.fetchers is not None:
            evidence = self._client.fetchers.complete(evidence)
        verified = verify_evidence(evidence, policy, report_data=expected)
        failures = self._config_failures(config, hpke_raw, channel)
        if failures:
            raise PolicyViolation(
                "the attested configuration is not this instance's", failures=failures
            )
        if verified.simulated:
            log.warning(
                "instance %s runs on a SIMULATED TEE: no confidentiality; development only", self.id
            )
        self._policy = policy
        self._attested = _Attested(PublicKey(hpke_raw), config, digest.hex(), verified)
        return verified

    validate_fatquote = validate_attestation

    def _config_failures(
        self, config: Mapping[str, Any], hpke_raw: bytes, channel: ServerAttestation | None
    ) -> list[str]:
        failures: list[str] = []
        instance = config.get("instance")
        keys = config.get("keys")
        if not isinstance(instance, Mapping) or instance.get("id") != self.id:
            got = instance.get("id") if isinstance(instance, Mapping) else None
            failures.append(f"instance.id: got {got!r}, expected {self.id!r}")
        if not isinstance(keys, Mapping) or keys.get("hpke") != base64.b64encode(hpke_raw).decode():
            failures.append("keys.hpke: the configuration names another key than the one served")
        # Over attested TLS, the instance must live in the TEE whose TLS key the
        # connection this document came over verified: channel and instance end in one TEE.
        if channel is not None:
            expected = tls_key_digest(spki_der(load_certificate(channel.certificate_der))).hex()
            named = keys.get(TLS_SPKI_KEY) if isinstance(keys, Mapping) else None
            if named != expected:
                failures.append(
                    f"keys.{TLS_SPKI_KEY}: got {named!r}, expected the key of the attested"
                    " TLS connection the document came over (the instance is not behind"
                    " this channel)"
                )
        elif self._client.attested:
            failures.append("the attestation document did not come over an attested connection")
        return failures

    def _require_attested(self) -> _Attested:
        if self._attested is None:
            raise AttestationError(
                "this instance's attestation has not been validated",
                remedy="call validate_attestation(policy) before sending anything secret",
            )
        return self._attested

    def _require_secret(self) -> Secret:
        if self._secret is None:
            raise InvalidRequest(
                "no secret set for this instance", remedy="call set_secret(Secret()) first"
            )
        return self._secret

    def _fresh(self, action: Callable[[_Attested], T]) -> T:
        """Run *action*; if the clean room's key or configuration changed, re-attest once.

        A changed *policy* is not accepted silently: the caller must read it
        and call :meth:`validate_attestation` again.
        """
        attested = self._require_attested()
        try:
            return action(attested)
        except StaleAttestation as exc:
            assert self._policy is not None
            log.warning("instance %s: %s; validating the attestation again", self.id, exc.message)
            before = self.policy_digest
            self._attested = None
            self.validate_attestation(self._policy)
            if self.policy_digest != before:
                new = self.policy_digest
                self._attested = None
                raise StaleAttestation(
                    f"the instance's policy changed from {before} to {new}",
                    remedy="read it (Instance.policy()), then call validate_attestation() "
                    "again to accept it",
                ) from None
            return action(self._require_attested())

    @staticmethod
    def _binding_headers(attested: _Attested) -> dict[str, str]:
        return {
            KEY_ID_HEADER: attested.hpke_key.key_id.hex(),
            CONFIG_HEADER: attested.config_digest,
        }

    # keys ---------------------------------------------------------------------------

    def set_secret(self, secret: Secret) -> None:
        """Register this party's public key with the instance (after attestation).

        The registration carries a proof that this party holds the private key,
        sealed to the attested clean room: nobody else can register the key.
        """
        email = self._client.email
        if email is None:
            raise AuthenticationFailed(
                "sign in first", remedy="call Client.sign_in(email, password)"
            )

        def register(attested: _Attested) -> None:
            body = key_registration(
                recipient=attested.hpke_key,
                sender=secret.key_pair,
                instance_id=self.id,
                config_digest=bytes.fromhex(attested.config_digest),
                email=email,
            )
            self._client.request(
                "PUT",
                f"/v1/instances/{self.id}/keys",
                json=body,
                headers=self._binding_headers(attested),
            )

        self._fresh(register)
        self._secret = secret

    # model owner ------------------------------------------------------------------------

    def _send_stream(self, path: str, purpose: str, data: str | os.PathLike[str] | bytes) -> Any:
        """Seal *data* locally to the attested key as a chunked stream and PUT it to *path*."""
        secret = self._require_secret()
        size, source = _blob(data)

        def send(attested: _Attested) -> Any:
            body = seal_stream(
                source(),
                total_size=size,
                recipient=attested.hpke_key,
                sender=secret.key_pair,
                info=stream_info(self.id, purpose, bytes.fromhex(attested.config_digest)),
            )
            return self._client.request(
                "PUT",
                path,
                content=body,
                headers={
                    "content-type": "application/octet-stream",
                    **self._binding_headers(attested),
                },
            ).json()

        return self._fresh(send)

    def upload_model(self, model: str | os.PathLike[str] | bytes) -> None:
        """Seal the model locally to the attested key and stream it to the clean room."""
        self._replace_doc(self._send_stream(f"/v1/instances/{self.id}/model", "model", model))

    def _check_receipt(
        self,
        attested: _Attested,
        receipt: dict[str, Any] | None,
        request_digest: str,
        response: bytes,
    ) -> None:
        """The receipt must verify under the attested signing key and name these ciphertexts.

        *request_digest* is the ``content_digest`` of the sealed request.
        """
        from cleanroom.policy.decision_log import content_digest
        from cleanroom.policy.verify import verify_receipt

        if receipt is None:
            raise LogIntegrityError("the clean room returned no receipt for this prediction")
        key = attested.config.get("keys", {}).get("signing")
        if not isinstance(key, str):
            raise LogIntegrityError("the attested configuration names no receipt-signing key")
        entry = verify_receipt(receipt, key)
        problems = []
        if entry.request_digest != request_digest:
            problems.append("request_digest")
        if entry.response_digest != content_digest(response):
            problems.append("response_digest")
        if entry.instance_id != self.id or entry.decision != "allow":
            problems.append("instance or decision")
        if problems:
            raise LogIntegrityError(
                f"the receipt does not record this prediction ({', '.join(problems)} differ)"
            )

    def policy(self) -> str:
        """The Rego module in force, checked against the attested policy digest."""
        from cleanroom.policy.engine import policy_digest

        source = str(
            self._client.request("GET", f"/v1/instances/{self.id}/policy").json()["policy"]
        )
        attested = self._require_attested()
        expected = attested.config.get("instance", {}).get("policy_digest")
        if policy_digest(source) != expected:
            raise PolicyViolation(
                "the policy text served does not match the attested policy digest",
                failures=[f"policy_digest: got {policy_digest(source)}, expected {expected}"],
            )
        return source

    def set_policy(self, policy: str | os.PathLike[str] | None) -> None:
        """Replace the instance's policy (owner only; None restores the default).

        Every party, this one included, must validate the attestation again.
        """
        self._replace_doc(
            self._client.request(
                "PUT", f"/v1/instances/{self.id}/policy", json={"policy": read_policy(policy)}
            ).json()
        )

    def usage_log(self, *, after: int = -1, limit: int = 1000) -> dict[str, Any]:
        """A page of this instance's decision log: every entry for the owner, a data
        owner's own entries otherwise, each verifiable offline (``cleanroom log verify``).

        At most *limit* entries (the service serves at most 1000) with ``seq``
        above *after*; ``page.next_after`` is where the next page starts, or
        ``None`` after the last. :meth:`usage_log_pages` walks them all.
        """
        doc: dict[str, Any] = self._client.request(
            "GET", f"/v1/instances/{self.id}/log", params={"after": after, "limit": limit}
        ).json()
        return doc

    def usage_log_pages(self, *, limit: int = 1000) -> Iterator[dict[str, Any]]:
        """Every page of this instance's decision log, in order (see :meth:`usage_log`)."""
        after = -1
        while True:
            page = self.usage_log(after=after, limit=limit)
            yield page
            next_after = (page.get("page") or {}).get("next_after")
            if next_after is None:
                return
            if type(next_after) is not int or next_after <= after:
                raise LogIntegrityError("the log's next page does not come after this one")
            after = next_after

    # privacy audits ------------------------------------------------------------------------

    def upload_audit_data(
        self,
        members: str | os.PathLike[str] | bytes,
        nonmembers: str | os.PathLike[str] | bytes,
    ) -> None:
        """Seal the committed member and non-member record sets (.npz) to the clean room."""
        for name, data in (("members", members), ("nonmembers", nonmembers)):
            self._send_stream(
                f"/v1/instances/{self.id}/audit/datasets/{name}", f"audit-{name}", data
            )

    def upload_audit_pool(self, pool: str | os.PathLike[str] | bytes) -> None:
        """Seal the committed pool (.npz) of an audit whose spec names one: the clean
        room derives the member and non-member sets from it (``cleanroom.audit.split``)."""
        self._send_stream(f"/v1/instances/{self.id}/audit/datasets/pool", "audit-pool", data=pool)

    def run_audit(self) -> Any:
        """Run the instance's fixed audit; returns the verified certificate (owner only)."""
        self._require_attested()
        document = self._client.request("POST", f"/v1/instances/{self.id}/audit").content
        return self._verified_certificate(document)

    def audit_certificate(self) -> Any:
        """The instance's audit certificate, verified against the evidence it carries."""
        self._require_attested()
        document = self._client.request("GET", f"/v1/instances/{self.id}/audit/certificate").content
        return self._verified_certificate(document)

    def _verified_certificate(self, document: bytes) -> Any:
        """The certificate, verified, and of this instance as this party attested it."""
        from cleanroom.audit import verify_certificate_with_evidence

        attested = self._require_attested()
        assert self._policy is not None
        return verify_certificate_with_evidence(
            document, self._policy, instance=attested.config.get("instance")
        )

    def grant(self, email: str) -> None:
        self._replace_doc(
            self._client.request(
                "POST", f"/v1/instances/{self.id}/users", json={"email": email}
            ).json()
        )

    def revoke(self, email: str) -> None:
        user = urllib.parse.quote(email, safe="@")  # "/", "?", "#" may be in an address
        self._replace_doc(
            self._client.request("DELETE", f"/v1/instances/{self.id}/users/{user}").json()
        )

    def delete(self) -> None:
        self._client.request("DELETE", f"/v1/instances/{self.id}")

    # data owner ---------------------------------------------------------------------------

    def _as_tensors(self, inputs: Inputs) -> dict[str, npt.NDArray[Any]]:
        if isinstance(inputs, Mapping):
            return {str(k): np.asarray(v) for k, v in inputs.items()}
        signature = self.model_signature
        if signature is None:
            self.refresh()
            signature = self.model_signature
        if signature is None:
            raise ModelNotReady("this instance has no model yet")
        declared = {str(s["name"]): str(s["dtype"]) for s in signature["inputs"]}
        if isinstance(inputs, bytes | str):
            return tensors_from_json(inputs, declared)
        if len(declared) != 1:
            raise InvalidTensor(
                f"the model has {len(declared)} inputs {sorted(declared)}; pass a dict of arrays"
            )
        return {next(iter(declared)): np.asarray(inputs)}

    def predict(
        self, inputs: Inputs, *, context: Mapping[str, Any] | None = None
    ) -> dict[str, npt.NDArray[Any]]:
        """Seal *inputs* to the attested key, run the model, open the sealed outputs.

        *inputs* is a dict of named arrays, a single array (single-input
        models), or JSON bytes/str ``{"name": nested lists}``. *context* is a
        JSON object sealed with the request and shown to the instance's policy
        as ``input.context`` (e.g. a consent artefact). The receipt of the
        decision is kept in :attr:`last_receipt`.
        """
        from cleanroom.policy.decision_log import content_digest

        secret = self._require_secret()
        tensors = self._as_tensors(inputs)
        body = encode_tensor_parts(tensors)

        def send(attested: _Attested) -> dict[str, npt.NDArray[Any]]:
            sealed = envelope.seal_request(
                recipient=attested.hpke_key,
                sender=secret.key_pair,
                instance_id=self.id,
                config_digest=bytes.fromhex(attested.config_digest),
                action="predict",
                body=body,
                context=context,
            )
            # Hashed while the request is in flight (the receipt must name it).
            request_digest = in_background(content_digest, sealed.parts)
            response = self._client.request(
                "POST",
                f"/v1/instances/{self.id}/predict",
                content=list(sealed.parts),  # sent as they are, not joined again
                headers={
                    "content-type": "application/octet-stream",
                    "content-length": str(sealed.size),
                    **self._binding_headers(attested),
                },
            )
            _meta, payload = envelope.open_response(sealed, response.content)
            outputs = decode_tensors(bytes(payload))
            receipt = _receipt(response.headers.get(RECEIPT_HEADER))
            self._check_receipt(attested, receipt, request_digest.result(), response.content)
            self.last_receipt = receipt
            return outputs

        return self._fresh(send)
