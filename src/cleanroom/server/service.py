"""The clean room's data plane, independent of HTTP.

Routes in ``app.py`` are thin adapters over this class: they authenticate the
caller, hand bytes in, and turn :class:`cleanroom.errors.Error` into problem
documents. Everything that decides who may do what lives here.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool

from cleanroom.crypto import envelope
from cleanroom.crypto.binding import TLS_SPKI_KEY, config_digest, tls_key_digest
from cleanroom.crypto.key_proof import open_key_proof
from cleanroom.crypto.keys import PublicKey
from cleanroom.crypto.stream import PlaintextSink, StreamOpener, StreamParams, stream_info
from cleanroom.errors import (
    AccessDenied,
    Conflict,
    DecryptionFailed,
    Error,
    InvalidRequest,
    ModelNotReady,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    StaleAttestation,
)
from cleanroom.policy import PolicyBundle, content_digest
from cleanroom.runtime import SandboxReport, Supervisor
from cleanroom.runtime.base import ModelRunner
from cleanroom.runtime.memory import wipe as _wipe
from cleanroom.runtime.sandbox.supervisor import ModelSource
from cleanroom.server.accounts import Accounts, normalise_email
from cleanroom.server.audits import SPEC_OPTION, AuditRoom
from cleanroom.server.gate import PREDICT, UPLOAD, Gate, GateTicket
from cleanroom.server.limits import instance_limits
from cleanroom.server.model_upload import ModelSink
from cleanroom.server.models import SealedModelStore
from cleanroom.server.replay import ReplayGuard
from cleanroom.server.settings import ServerSettings
from cleanroom.server.store import InstanceRecord, Store
from cleanroom.server.streaming import UploadPace, relay_stream
from cleanroom.server.tee import Tee
from cleanroom.server.upstreams import (
    UPSTREAMS_OPTION,
    UpstreamCaller,
    check_upstream,
    parse_upstreams,
)
from cleanroom.wire.formats import ModelFormat
from cleanroom.wire.tensors import decode_tensors, encode_tensors

__all__ = ["CleanRoomService"]

log = logging.getLogger("cleanroom.server")

NONCE_MIN, NONCE_MAX = 16, 64
CONFIG_VERSION = 1
LIMITS_OPTION = "limits"
LOG_PAGE_LIMIT = 1000  # entries per page of GET /v1/instances/{id}/log


class CleanRoomService:
    def __init__(self, settings: ServerSettings, *, tee: Tee | None = None) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.tee = tee or Tee(
            settings.tee,
            settings.data_dir,
            amd_kds_url=settings.amd_kds_url,
            intel_pcs_url=settings.intel_pcs_url,
        )
        # The store's rows are authenticated under a key derived from the sealing key.
        integrity_key = self.tee.store_integrity_key
        if integrity_key is None:
            log.warning(
                "TEE %s: no sealing key available; stored accounts, sessions, instances "
                "and party keys are not integrity-protected",
                self.tee.kind,
            )
        self.store = Store(settings.db_path, integrity_key=integrity_key)
        self.accounts = Accounts(
            self.store,
            open_registration=settings.open_registration,
            token_ttl_s=settings.token_ttl_s,
        )
        self.models: SealedModelStore | None = None
        if self.tee.sealing_key is not None and self.tee.sealing_label is not None:
            self.models = SealedModelStore(
                settings.models_dir, self.tee.sealing_key, self.tee.sealing_label
            )
        self.replay = ReplayGuard(settings.replay_window_s)
        self.gate = Gate(settings.db_path, self.tee.signing_key)
        self.audits = AuditRoom(self.store, self.tee)
        # Every model runs in sandboxed worker processes (docs/sandbox.md).
        self.supervisor = Supervisor(settings.runtime)
        self._runners: dict[str, ModelRunner] = {}
        # The supervisor's key for each instance's current runner: a new upload loads
        # under a new key, then replaces the old runner, so serving never stops.
        self._runner_keys: dict[str, str] = {}
        self._runners_lock = threading.Lock()
        self._uploading: dict[str, str] = {}  # instance -> owner, of uploads in progress
        # Held while an instance is deleted and while an upload installs its model,
        # so an upload never installs into (or leaves files for) a deleted instance.
        self._install_lock = threading.Lock()
        self._config_digests: dict[str, tuple[InstanceRecord, str]] = {}
        # A pipeline stage wraps an instance's model with a call to the next clean room.
        self.compose_runner: Callable[[InstanceRecord, ModelRunner], ModelRunner] = (
            lambda _record, runner: runner
        )
        self._reload_models()

    def sandbox_report(self) -> SandboxReport:
        return self.supervisor.report()

    def close(self) -> None:
        self.supervisor.close()  # stops every instance's workers
        with self._runners_lock:
            self._runners.clear()
            self._runner_keys.clear()
        self.store.close()

    # start-up ---------------------------------------------------------------

    def _reload_models(self) -> None:
        if self.models is None:
            return
        for record in self.store.instances():
            if record.model_digest is None:
                continue
            try:
                plaintext = self.models.load(
                    record.id, self.settings.max_model_bytes, record.model_digest
                )
                try:
                    key, runner = self._load_runner(record.id, record.format, plaintext)
                finally:
                    _wipe(plaintext)
                with self._runners_lock:
                    self._runners[record.id] = runner
                    self._runner_keys[record.id] = key
                log.info("instance %s: model reloaded from sealed storage", record.id)
            except DecryptionFailed:
                log.warning(
                    "instance %s: the sealed model cannot be opened as this instance's "
                    "model (sealed by code with another measurement, for another "
                    "instance, or not the model the instance's record names); "
                    "the model owner must upload it again",
                    record.id,
                )
            except Error as exc:
                log.warning("instance %s: the model cannot be loaded: %s", record.id, exc.message)

    def _sealed_source(self, instance_id: str) -> ModelSource | None:
        """Where a restarted worker gets the model: the sealed copy, if there is storage.

        The copy must be the model the instance's record names when the worker
        restarts; a sealed file swapped since does not load.
        """
        models = self.models
        if models is None:
            return None
        limit = self.settings.max_model_bytes
        store = self.store

        def sealed_model() -> bytearray:
            digest = store.instance(instance_id).model_digest
            if digest is None:
                raise NotFound(f"instance {instance_id} has no model")
            return models.load(instance_id, limit, digest)

        return sealed_model

    def _load_runner(
        self, instance_id: str, fmt: str, model: bytes | bytearray
    ) -> tuple[str, ModelRunner]:
        """Start the model's sandboxed workers; they run the hostile-model checks first.

        The checks (``validate_model``) run inside each confined worker before
        it loads the model, and a refusal comes back as ModelRejected, still at
        upload time. They are not repeated here: parsing a hostile model is the
        sandbox's job, and a second parse in the service cost VGG-19 about 3 s and
        1.7 GB (docs/performance.md, "Loading").

        *model* is sent to the workers as it is and not kept: a restarted
        worker gets the model from sealed storage. Without sealed storage (a
        TEE without a sealing key) the supervisor keeps one immutable copy,
        in memory only, to restart workers.
        """
        model_format = ModelFormat(fmt)
        record = self.store.instance(instance_id)
        limits = instance_limits(self.settings.runtime, record.options.get(LIMITS_OPTION))
        key = f"{instance_id}/{secrets.token_hex(4)}"
        source = self._sealed_source(instance_id)
        kept = model if source is not None or isinstance(model, bytes) else bytes(model)
        return key, self.supervisor.load(key, model_format, kept, limits, source)

    def _unload(self, instance_id: str) -> None:
        with self._runners_lock:
            self._runners.pop(instance_id, None)
            key = self._runner_keys.pop(instance_id, None)
        if key is not None:
            self.supervisor.unload(key)

    # instances ------------------------------------------------------------------

    def create_instance(
        self,
        owner: str,
        name: str,
        fmt: str,
        users: list[str],
        policy: str | None = None,
        audit_spec: Any = None,
        limits: dict[str, Any] | None = None,
        upstreams: list[dict[str, str]] | None = None,
    ) -> InstanceRecord:
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidRequest("an instance needs a name of 1 to 200 characters")
        try:
            model_format = ModelFormat(fmt)
        except ValueError:
            formats = [f.value for f in ModelFormat]
            raise InvalidRequest(f"unknown model format {fmt!r}; use one of {formats}") from None
        named = sorted({normalise_email(u) for u in users})
        options: dict[str, Any] = {}
        if policy is not None:
            PolicyBundle.compile(policy)  # refuse a policy that does not compile, now
            options["policy"] = policy
        if limits:
            instance_limits(self.settings.runtime, limits)  # refuse bad limits now
            options[LIMITS_OPTION] = dict(limits)
        if upstreams is not None:
            options[UPSTREAMS_OPTION] = parse_upstreams(upstreams)
        if audit_spec is not None:
            # Fixed for the instance's life: its digest is attested before any data exists.
            options[SPEC_OPTION] = AuditRoom.parse_spec(audit_spec).to_json()
        instance_id = secrets.token_hex(12)
        return self.store.create_instance(
            instance_id, name, owner, model_format.value, named, options
        )

    def set_policy(self, email: str, instance_id: str, policy: str | None) -> InstanceRecord:
        """Replace the instance's policy (None: the default). Data owners must re-attest."""
        record = self.owned_instance(email, instance_id)
        options = dict(record.options)
        if policy is None:
            options.pop("policy", None)
        else:
            PolicyBundle.compile(policy)
            options["policy"] = policy
        self.store.set_options(record.id, options)
        updated = self.store.instance(record.id)
        log.info(
            "instance %s: policy replaced (now %s)", record.id, self.gate.bundle(updated).digest
        )
        return updated

    def policy_source(self, email: str, instance_id: str) -> str:
        """The Rego module in force: readable by every party of the instance."""
        return Gate.source_of(self.visible_instance(email, instance_id))

    def usage_log(
        self, email: str, instance_id: str, *, after: int = -1, limit: int = LOG_PAGE_LIMIT
    ) -> dict[str, Any]:
        """A page of the instance's decision log: the owner sees every entry of its
        instance, a data owner only its own."""
        record = self.visible_instance(email, instance_id)
        party = None if email == record.owner else email
        if not 1 <= limit <= LOG_PAGE_LIMIT or after < -1:
            raise InvalidRequest(
                f"a log page holds 1 to {LOG_PAGE_LIMIT} entries after seq -1 or more"
            )
        return self.gate.log.export(instance_id=record.id, party=party, after=after, limit=limit)

    def check_can_predict(
        self, email: str, instance_id: str, upstream: UpstreamCaller | None
    ) -> None:
        """The refusals of :meth:`predict` that need no request body: run before
        reading one, so a body is never held for a call that cannot succeed."""
        self._predictable(email, instance_id, upstream)

    def _predictable(
        self, email: str, instance_id: str, upstream: UpstreamCaller | None
    ) -> tuple[InstanceRecord, ModelRunner]:
        record = self.visible_instance(email, instance_id)
        check_upstream(
            record.options.get(UPSTREAMS_OPTION),
            upstream,
            service_simulated=self.tee.simulated,
        )
        with self._runners_lock:
            runner = self._runners.get(record.id)
        if runner is None:
            raise ModelNotReady("this instance has no model yet")
        return record, runner

    def visible_instance(self, email: str, instance_id: str) -> InstanceRecord:
        """The instance if *email* owns it or is named on it.

        Instance ids are random 96-bit values handed out by their owners, so a
        refusal may say that the instance exists.
        """
        record = self.store.instance(instance_id)
        if email != record.owner and email not in record.users:
            raise AccessDenied(f"{email} is not named on instance {instance_id}")
        return record

    def owned_instance(self, email: str, instance_id: str) -> InstanceRecord:
        record = self.visible_instance(email, instance_id)
        if record.owner != email:
            raise AccessDenied("only the instance's owner may do this")
        return record

    def list_instances(self, email: str) -> list[InstanceRecord]:
        return self.store.instances_visible_to(email)

    def delete_instance(self, email: str, instance_id: str) -> None:
        self.owned_instance(email, instance_id)
        with self._install_lock:
            self._unload(instance_id)
            self.store.delete_instance(instance_id)
            if self.models is not None:
                self.models.delete(instance_id)
        self.gate.forget(instance_id)
        self.audits.forget(instance_id)

    def grant(self, email: str, instance_id: str, user: str) -> InstanceRecord:
        self.owned_instance(email, instance_id)
        self.store.grant(instance_id, normalise_email(user))
        return self.store.instance(instance_id)

    def revoke(self, email: str, instance_id: str, user: str) -> InstanceRecord:
        record = self.owned_instance(email, instance_id)
        user = normalise_email(user)
        if user == record.owner:
            raise InvalidRequest("the owner cannot be revoked from its own instance")
        self.store.revoke(instance_id, user)
        return self.store.instance(instance_id)

    def instance_json(self, record: InstanceRecord) -> dict[str, Any]:
        with self._runners_lock:
            ready = record.id in self._runners
        return {
            "id": record.id,
            "name": record.name,
            "owner": record.owner,
            "format": record.format,
            "users": list(record.users),
            "created": record.created,
            "policy_digest": self.gate.bundle(record).digest,
            "model": {
                "ready": ready,
                "digest": record.model_digest,
                "size": record.model_size,
                "signature": record.model_signature,
            },
        }

    # attestation ------------------------------------------------------------------

    def config_document(self, record: InstanceRecord) -> dict[str, Any]:
        """Everything REPORT_DATA commits to besides the HPKE key and the nonce."""
        spec = AuditRoom.spec(record)
        return {
            "version": CONFIG_VERSION,
            "service": {"tee": self.tee.kind, "simulated": self.tee.simulated},
            "keys": {
                "hpke": base64.b64encode(self.tee.hpke.public.raw).decode(),
                "signing": self.tee.signing_public_key_pem(),
                TLS_SPKI_KEY: tls_key_digest(self.tee.tls_spki_der()).hex(),
            },
            "instance": {
                "id": record.id,
                "name": record.name,
                "owner": record.owner,
                "format": record.format,
                "users": list(record.users),
                "model_digest": record.model_digest,
                "policy_digest": self.gate.bundle(record).digest,
                "audit_spec_digest": None if spec is None else spec.digest,
                "limits": record.options.get(LIMITS_OPTION) or {},
                "upstreams": record.options.get(UPSTREAMS_OPTION),
            },
        }

    def current_config_digest(self, record: InstanceRecord) -> str:
        """The digest of *record*'s attested configuration, computed once per record version.

        The store hands out one record object per version of an instance, so the
        object's identity says whether the configuration may have changed.
        """
        with self._runners_lock:
            cached = self._config_digests.get(record.id)
        if cached is not None and cached[0] is record:
            return cached[1]
        digest = config_digest(self.config_document(record)).hex()
        with self._runners_lock:
            self._config_digests[record.id] = (record, digest)
        return digest

    def attestation(self, email: str, instance_id: str, nonce_hex: str) -> dict[str, Any]:
        record = self.visible_instance(email, instance_id)
        try:
            nonce = bytes.fromhex(nonce_hex)
        except ValueError:
            raise InvalidRequest("the nonce must be hex") from None
        if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
            raise InvalidRequest(f"the nonce must be {NONCE_MIN} to {NONCE_MAX} bytes")
        config = self.config_document(record)
        evidence = self.tee.evidence(nonce, config)
        return {
            "evidence": evidence.to_json(),
            "config": config,
            "hpke_public_key": base64.b64encode(self.tee.hpke.public.raw).decode(),
            "nonce": nonce_hex,
        }

    # party keys -------------------------------------------------------------------

    def register_key(
        self,
        email: str,
        instance_id: str,
        public_key_b64: str,
        proof_b64: str,
        *,
        key_id_hex: str | None = None,
        config: str | None = None,
    ) -> str:
        """Register *email*'s public key, once *proof_b64* shows it holds the private key
        (:mod:`cleanroom.crypto.key_proof`)."""
        record = self.visible_instance(email, instance_id)
        self._check_fresh(record, key_id_hex, config)
        key = PublicKey(_base64_field(public_key_b64, "public_key"))
        proof = open_key_proof(
            _base64_field(proof_b64, "proof"),
            recipient=self.tee.hpke,
            claimed=key,
            instance_id=record.id,
            config_digest=bytes.fromhex(self.current_config_digest(record)),
            email=email,
        )
        self.replay.check(proof.enc, proof.created)
        self.store.add_party_key(instance_id, email, key.key_id, key.raw)
        return key.key_id.hex()

    def _sender_resolver(self, record: InstanceRecord, email: str) -> Any:
        def resolve(key_id: bytes) -> PublicKey:
            found = self.store.party_key(record.id, key_id)
            if found is None or found[0] != email:
                raise AccessDenied(
                    "the key that sealed this request is not registered for you on this instance",
                    remedy="call set_secret() on the instance before sending data",
                )
            return PublicKey(found[1])

        return resolve

    def _check_fresh(
        self, record: InstanceRecord, key_id_hex: str | None, config: str | None
    ) -> None:
        if key_id_hex is not None and key_id_hex != self.tee.hpke.public.key_id.hex():
            raise StaleAttestation("the clean room's key changed since you validated it")
        if config is not None and config != self.current_config_digest(record):
            raise StaleAttestation("the instance's attested configuration changed")

    # model upload -------------------------------------------------------------------

    async def upload_model(
        self,
        email: str,
        instance_id: str,
        chunks: AsyncIterator[bytes],
        *,
        key_id_hex: str | None,
        config: str | None,
    ) -> InstanceRecord:
        """Open the sealed model as it arrives, forwarding each chunk to the starting
        workers and to sealed storage (``server/model_upload.py``); the ingress
        policy decides once the whole upload is authenticated, before any worker
        parses the model. A refused, truncated or tampered upload stops the
        workers and leaves the previous model and its sealed file in place.
        """
        record = self.owned_instance(email, instance_id)
        self._check_fresh(record, key_id_hex, config)
        with self._upload_slot(record.id, email):
            return await self._upload_model(record, email, chunks)

    @contextlib.contextmanager
    def _upload_slot(self, instance_id: str, owner: str) -> Iterator[None]:
        """One model upload per instance at a time, a bounded number per owner, and in all."""
        with self._runners_lock:
            if instance_id in self._uploading:
                raise Conflict("a model upload to this instance is already in progress")
            if len(self._uploading) >= self.settings.max_concurrent_uploads:
                raise ServiceUnavailable(
                    "the clean room is receiving as many models as it takes at once",
                    remedy="retry the upload later",
                )
            own = sum(1 for uploader in self._uploading.values() if uploader == owner)
            if own >= self.settings.max_uploads_per_owner:
                raise ServiceUnavailable(
                    f"{owner} already has {own} model uploads in progress",
                    remedy="retry once one of them has finished",
                )
            self._uploading[instance_id] = owner
        try:
            yield
        finally:
            with self._runners_lock:
                self._uploading.pop(instance_id, None)

    async def _upload_model(
        self, record: InstanceRecord, email: str, chunks: AsyncIterator[bytes]
    ) -> InstanceRecord:
        limits = instance_limits(self.settings.runtime, record.options.get(LIMITS_OPTION))
        key = f"{record.id}/{secrets.token_hex(4)}"
        model_format = ModelFormat(record.format)
        source = self._sealed_source(record.id)
        sink = ModelSink(
            record.id,
            lambda size: self.supervisor.begin_load(key, model_format, size, limits, source),
            self.models,
        )
        opener = self._stream_opener(record, email, "model", self.settings.max_model_bytes, sink)
        try:
            ciphertext_digest = await relay_stream(
                opener,
                chunks,
                self.settings.max_model_bytes,
                pace=self._upload_pace(),
            )
            opener.end()
            ticket = self.gate.ingress(
                record, email, UPLOAD, ciphertext_digest, payload_nbytes=sink.size
            )
        except BaseException:
            opener.discard()
            # Shielded: a cancelled request (server shutting down) still stops the
            # workers and drops the staged file.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(sink.abort)
            raise
        return await run_in_threadpool(self._install_model, ticket, key, sink)

    def _install_model(self, ticket: GateTicket, key: str, sink: ModelSink) -> InstanceRecord:
        record = ticket.record
        # The workers load the model while its sealed copy is synced; a refused
        # model is never committed.
        runner, staged = sink.install()
        digest = sink.digest
        with self._install_lock:
            try:
                self.store.instance(record.id)  # NotFound: deleted while uploading
                self.gate.allowed(ticket, None, model_digest=digest)
                if staged is not None and self.models is not None:
                    self.models.commit(record.id, staged)
            except BaseException:
                sink.abort()
                raise
            self.store.set_model(record.id, digest, sink.size, runner.signature.to_json())
            with self._runners_lock:
                self._runners[record.id] = runner
                old_key = self._runner_keys.get(record.id)
                self._runner_keys[record.id] = key
        if old_key is not None:
            self.supervisor.unload(old_key)
        log.info("instance %s: model installed (%s, %d bytes)", record.id, digest, sink.size)
        return self.store.instance(record.id)

    # prediction ---------------------------------------------------------------------

    def predict(
        self,
        email: str,
        instance_id: str,
        body: bytes,
        *,
        key_id_hex: str | None,
        config: str | None,
        upstream: UpstreamCaller | None = None,
    ) -> tuple[bytes, dict[str, Any]]:
        """Open, check, run, check, seal; returns the sealed response and its receipt.

        *upstream* is the attested clean room that made this call over mutually
        attested TLS, if any; an instance that declares upstreams serves only them.
        """
        record, runner = self._predictable(email, instance_id, upstream)
        self._check_fresh(record, key_id_hex, config)
        if len(body) > self.settings.max_request_bytes:
            raise PayloadTooLarge(
                f"the request is larger than the limit of {self.settings.max_request_bytes} bytes"
            )
        request = envelope.open_request(
            body,
            recipient=self.tee.hpke,
            instance_id=record.id,
            config_digest=bytes.fromhex(self.current_config_digest(record)),
            resolve_sender=self._sender_resolver(record, email),
        )
        self.replay.check(request.enc, request.created)
        if request.action != "predict":
            raise InvalidRequest(f"a predict request cannot carry action {request.action!r}")
        inputs = decode_tensors(request.body)
        # The digest the log records, taken once the request proved to be a party's,
        # in this thread: a second thread gains nothing end to end (it needs the GIL
        # to start and to finish) and, overlapping the model's run, lengthens the
        # slowest requests (docs/performance.md, change 8).
        ticket = self.gate.ingress(
            record,
            email,
            PREDICT,
            content_digest(body),
            inputs=inputs,
            context=request.context,
            audit=self.audits.summary(record),
        )
        try:
            runner = self.compose_runner(record, runner)  # pipeline stages (cleanroom.atls)
            outputs = self.gate.egress(ticket, runner.run(inputs))
            sealed = envelope.seal_response(request, {"status": "ok"}, encode_tensors(outputs))
            entry = self.gate.allowed(ticket, sealed)
        finally:
            self.gate.release(ticket)  # a failed run gives its place in the budget back
        return sealed, self.gate.receipt(entry).to_json()

    # privacy audits --------------------------------------------------------------------

    async def upload_audit_data(
        self,
        email: str,
        instance_id: str,
        name: str,
        chunks: AsyncIterator[bytes],
        *,
        key_id_hex: str | None,
        config: str | None,
    ) -> str:
        """Receive one sealed record set (.npz) for the instance's audit; kept in memory."""
        record = self.owned_instance(email, instance_id)
        self._check_fresh(record, key_id_hex, config)
        self.audits.check_upload_name(record, name)
        plaintext, _ = await self._receive_stream(
            record, email, f"audit-{name}", chunks, self.settings.max_request_bytes
        )
        try:
            return await run_in_threadpool(self.audits.put_dataset, record, name, bytes(plaintext))
        finally:
            _wipe(plaintext)

    def _stream_opener(
        self,
        record: InstanceRecord,
        email: str,
        purpose: str,
        max_size: int,
        sink: PlaintextSink | None = None,
    ) -> StreamOpener:
        return StreamOpener.in_transit(
            recipient=self.tee.hpke,
            info=stream_info(record.id, purpose, bytes.fromhex(self.current_config_digest(record))),
            resolve_sender=self._sender_resolver(record, email),
            max_size=max_size,
            sink=sink,
            check_params=self._check_stream_replay,
        )

    def _upload_pace(self) -> UploadPace:
        return UploadPace(
            idle_timeout_s=self.settings.upload_idle_timeout_s,
            grace_s=self.settings.upload_grace_s,
            min_bytes_per_s=self.settings.upload_min_bytes_per_s,
        )

    def _check_stream_replay(self, params: StreamParams) -> None:
        """Refuse a replayed stream once its header opens: the creation time is then
        that of the upload's start, so a long upload is never refused for its length."""
        self.replay.check(b"stream:" + params.request_id.encode(), params.created)

    async def _receive_stream(
        self,
        record: InstanceRecord,
        email: str,
        purpose: str,
        chunks: AsyncIterator[bytes],
        max_size: int,
    ) -> tuple[bytearray, str]:
        """Open a sealed stream from *email* for *purpose*; the plaintext and the
        ciphertext's digest. Refuses unknown senders, tampering, oversize and replays
        (a replay as soon as the stream's header opens)."""
        opener = self._stream_opener(record, email, purpose, max_size)
        try:
            ciphertext_digest = await relay_stream(
                opener, chunks, max_size, pace=self._upload_pace()
            )
            plaintext = opener.finish()
        except BaseException:
            opener.discard()
            raise
        return plaintext, ciphertext_digest

    def run_audit(self, email: str, instance_id: str) -> bytes:
        """Run the instance's fixed audit spec on its model; the signed certificate."""
        record = self.owned_instance(email, instance_id)
        with self._runners_lock:
            runner = self._runners.get(record.id)
        document = self.audits.run(record, runner, self.config_document)
        spec = AuditRoom.spec(record)
        assert spec is not None
        self.gate.log.append(
            record.id,
            "audit",
            email,
            True,
            None,
            self.gate.bundle(record).digest,
            record.model_digest,
            content_digest(spec.canonical_bytes()),
            content_digest(document),
        )
        return document

    def audit_certificate(self, email: str, instance_id: str) -> bytes:
        record = self.visible_instance(email, instance_id)
        document = AuditRoom.certificate(record)
        if document is None:
            raise NotFound("this instance has no audit certificate yet")
        return document


def _base64_field(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise InvalidRequest(f"{name} must be base64") from None
