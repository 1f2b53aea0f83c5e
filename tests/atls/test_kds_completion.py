"""Attested TLS completes a peer's SEV-SNP evidence from AMD's KDS, not from the peer's host.

A host whose VCEK AMD revoked would leave the CRL out of the evidence it
serves, or send an older one from before the revocation. With a
``KdsFetcher`` the verifier fetches the current CRL itself: the SDK for the
server it connects to, a clean room for the upstream that calls it (its own
``--amd-kds``), a stage for its downstream, and a data owner checking a
stage's chain report.

The evidence is the simulated chain renamed and pinned as AMD's Milan chain
(``snp_fakes.pin_as_milan``), so it is judged exactly as hardware evidence.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from atls_fakes import PASSWORD, FakeServer, make_identity, policy_for
from cryptography import x509
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from tests.attestation.snp_fakes import (
    NOW,
    FakeKds,
    ark_key,
    crl,
    hardware_evidence,
    pin_as_milan,
    with_crls,
)

from cleanroom import Client
from cleanroom.atls import AtlsSettings, PeerRoute, Upstream, verify_document
from cleanroom.atls.identity import AttestedTlsIdentity
from cleanroom.atls.pipeline import Downstream, _Caller, verify_chain
from cleanroom.attestation import AttestationPolicy, Evidence
from cleanroom.attestation.fetch import EvidenceFetchers, KdsFetcher, PcsFetcher
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.crypto.binding import TLS_SPKI_KEY
from cleanroom.errors import (
    AttestationError,
    EvidenceSignatureError,
    NotFound,
    PolicyViolation,
    ServiceUnavailable,
)
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings

MEASUREMENT = bytes(48)
DIGEST = "sha256:" + "ab" * 32
NO_CRL = "CRL: got none current"
MILAN_CRL_URL = KdsFetcher().crl_url("Milan")
PREDICT_ROUTE = "/v1/instances/*/predict"
PREDICT = "/v1/instances/0123456789abcdef01234567/predict"
POLICY = AttestationPolicy([MEASUREMENT.hex()])  # hardware only; a current CRL required


@dataclass
class Milan:
    """Clean rooms on 'Milan' hardware: the simulated chain, pinned as AMD's.

    One VCEK certificate for every report, so a CRL can name its serial.
    """

    tee: SimulatedSnpTee
    ark_name: x509.Name
    tee_dir: Path
    certificates: tuple[bytes, ...]

    def crl(self, *revoked: int, days_old: int = 1) -> bytes:
        return crl(
            self.ark_name,
            ark_key(self.tee),
            revoked=revoked,
            this_update=NOW - dt.timedelta(days=days_old),
        )

    def identity(self, *host_crls: bytes) -> AttestedTlsIdentity:
        """A clean room whose host serves *host_crls* with its evidence (none: no CRL)."""

        def evidence_for(data: bytes) -> Evidence:
            evidence = hardware_evidence(self.tee, data, measurement=MEASUREMENT)
            evidence = dataclasses.replace(evidence, certificates=self.certificates)
            return with_crls(evidence, *host_crls) if host_crls else evidence

        return make_identity(self.tee_dir, policy_digest=DIGEST, evidence_for=evidence_for)

    @property
    def vcek_serial(self) -> int:
        return x509.load_der_x509_certificate(self.certificates[0]).serial_number

    def kds(self, *revoked: int) -> tuple[EvidenceFetchers, FakeKds]:
        """A fetcher whose KDS serves a current CRL revoking *revoked*."""
        web = FakeKds({MILAN_CRL_URL: self.crl(*revoked)})
        return EvidenceFetchers(kds=KdsFetcher(web)), web


@pytest.fixture
def milan(monkeypatch: pytest.MonkeyPatch, tee_dir: Path) -> Milan:
    tee = SimulatedSnpTee.open(tee_dir)
    certificates = hardware_evidence(tee, bytes(64), measurement=MEASUREMENT).certificates
    return Milan(tee, pin_as_milan(monkeypatch, tee), tee_dir, certificates)


def _server_document(
    identity: AttestedTlsIdentity, nonce: bytes, kds: EvidenceFetchers | None
) -> object:
    document = identity.document(nonce, role="server")
    return verify_document(
        document, POLICY, nonce=nonce, role="server", tls_spki_der=identity.spki_der, fetchers=kds
    )


# --- verify_document ---------------------------------------------------------------------


def test_without_a_fetcher_evidence_without_a_crl_is_refused(milan: Milan) -> None:
    with pytest.raises(PolicyViolation) as info:
        _server_document(milan.identity(), os.urandom(32), kds=None)
    assert any(NO_CRL in f for f in info.value.failures)


def test_the_verifier_fetches_the_crl_the_host_left_out(milan: Milan) -> None:
    kds, web = milan.kds()
    verified = _server_document(milan.identity(), os.urandom(32), kds=kds)
    assert getattr(verified, "revocation_checked", None) is True
    assert web.requests == [MILAN_CRL_URL]


def test_a_fetched_crl_revokes_a_peer_whose_host_sent_an_older_one(milan: Milan) -> None:
    older = milan.crl(days_old=3)
    identity = milan.identity(older)
    # The host's own, older CRL alone lets it through ...
    assert _server_document(identity, os.urandom(32), kds=None) is not None
    # ... the current one from the KDS revokes its VCEK.
    kds, _ = milan.kds(milan.vcek_serial)
    with pytest.raises(EvidenceSignatureError) as info:
        _server_document(identity, os.urandom(32), kds=kds)
    assert any("SEV-VCEK: serial" in f for f in info.value.failures)


def test_nothing_is_fetched_for_a_document_bound_to_another_connection(milan: Milan) -> None:
    kds, web = milan.kds()
    identity = milan.identity()
    document = identity.document(os.urandom(32), role="server")
    with pytest.raises(PolicyViolation, match="not bound to this TLS connection"):
        verify_document(
            document,
            POLICY,
            nonce=os.urandom(32),
            role="server",
            tls_spki_der=identity.spki_der,
            fetchers=kds,
        )
    assert web.requests == []


def test_a_kds_that_cannot_answer_fails_closed(milan: Milan) -> None:
    web = FakeKds({})
    with pytest.raises(ServiceUnavailable, match="HTTP 404"):
        _server_document(
            milan.identity(), os.urandom(32), kds=EvidenceFetchers(kds=KdsFetcher(web))
        )


# --- the callee verifying its caller -----------------------------------------------------


def test_a_clean_room_completes_its_callers_evidence_with_its_own_kds(
    milan: Milan, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    route = PeerRoute(PREDICT_ROUTE, POLICY, (Upstream(MEASUREMENT.hex(), DIGEST),))
    settings = ServerSettings(data_dir=data, amd_kds_url=None)
    with ServerThread(settings, tls=AtlsSettings(routes=(route,))) as server:
        assert server.atls is not None
        assert server.atls.fetchers is not None
        assert server.atls.fetchers.kds is None

        def call() -> Client:
            return Client(server.url, attestation=policy_for(data), identity=milan.identity())

        # Judged as its host sent it, the caller's evidence lacks a CRL.
        with call() as client, pytest.raises(PolicyViolation) as refused:
            client.sign_in("stage@a.example", PASSWORD)
        assert any(NO_CRL in f for f in refused.value.failures)

        kds, web = milan.kds()
        server.atls.fetchers = kds
        with call() as client:
            client.sign_up("stage@a.example", PASSWORD)
            client.sign_in("stage@a.example", PASSWORD)
            # Past the route gate, the service itself answers: there is no such instance.
            with pytest.raises(NotFound):
                client.request("POST", PREDICT, content=b"sealed")
            (seen,) = client.server_attestations
        assert seen.mutual
        assert web.requests == [MILAN_CRL_URL]

        server.atls.fetchers, _ = milan.kds(milan.vcek_serial)
        with call() as client, pytest.raises(PolicyViolation) as revoked:
            client.sign_in("stage@a.example", PASSWORD)
        assert any("SEV-VCEK: serial" in f for f in revoked.value.failures)


# --- the SDK's attested connections ------------------------------------------------------


def _serving(identity: AttestedTlsIdentity) -> FakeServer:
    async def handshake(request: Request) -> Response:
        nonce = bytes.fromhex((await request.json())["nonce"])
        document = identity.document(nonce, role="server").to_json()
        return JSONResponse({"document": document, "challenge": "00" * 32})

    return FakeServer(identity, handshake)


def test_the_sdk_completes_the_server_evidence_on_every_attested_connection(
    milan: Milan,
) -> None:
    kds, web = milan.kds()
    with _serving(milan.identity()) as server:
        with Client(server.url, attestation=POLICY, kds=kds.kds) as client:
            assert client.health()["status"] == "ok"
            (seen,) = client.server_attestations
        assert seen.evidence.revocation_checked is True
        assert web.requests == [MILAN_CRL_URL]
        assert server.seen == [("/v1/atls/handshake", False), ("/v1/health", False)]


@pytest.mark.parametrize(
    ("web", "error"),
    [
        (None, PolicyViolation),  # no fetcher: the host's evidence lacks a CRL
        (FakeKds({}), ServiceUnavailable),  # the KDS does not answer
    ],
    ids=["no fetcher", "KDS unavailable"],
)
def test_the_sdk_sends_nothing_when_the_server_evidence_cannot_be_completed(
    milan: Milan, web: FakeKds | None, error: type[Exception]
) -> None:
    kds = None if web is None else KdsFetcher(web)
    with _serving(milan.identity()) as server:
        with (
            Client(server.url, attestation=POLICY, kds=kds) as client,
            pytest.raises(error),
        ):
            client.sign_in("bob@bank.example", PASSWORD)
        assert server.seen == [("/v1/atls/handshake", False)]


def test_the_sdk_refuses_a_server_whose_vcek_the_current_crl_revokes(milan: Milan) -> None:
    kds, _ = milan.kds(milan.vcek_serial)
    with _serving(milan.identity(milan.crl(days_old=3))) as server:
        with (
            Client(server.url, attestation=POLICY, kds=kds.kds) as client,
            pytest.raises(AttestationError) as info,
        ):
            client.health()
        assert any("SEV-VCEK: serial" in f for f in info.value.failures)
        assert server.seen == [("/v1/atls/handshake", False)]


# --- a data owner checking a stage's chain report ---------------------------------------


def _chain_report(identity: AttestedTlsIdentity) -> str:
    """What a stage reports of its downstream (``_Caller.predict``)."""
    return json.dumps(
        {
            "tls": {
                "certificate": base64.b64encode(identity.certificate_der).decode(),
                "document": identity.document(os.urandom(32), role="server").to_json(),
            },
            "instance_config": {"keys": {TLS_SPKI_KEY: identity.spki_sha256.hex()}},
        }
    )


def test_a_data_owner_completes_the_downstream_evidence_of_a_chain(milan: Milan) -> None:
    report = _chain_report(milan.identity(milan.crl(days_old=3)))
    kds, web = milan.kds()
    assert verify_chain(report, POLICY, fetchers=kds).revocation_checked is True
    assert web.requests == [MILAN_CRL_URL]
    revoking, _ = milan.kds(milan.vcek_serial)
    with pytest.raises(EvidenceSignatureError) as info:
        verify_chain(report, POLICY, fetchers=revoking)
    assert any("SEV-VCEK: serial" in f for f in info.value.failures)
    with pytest.raises(PolicyViolation) as missing:
        verify_chain(_chain_report(milan.identity()), POLICY)
    assert any(NO_CRL in f for f in missing.value.failures)


# --- the clean room's own fetcher --------------------------------------------------------


def test_a_clean_room_uses_its_own_fetchers_for_its_peers_and_downstreams(
    tmp_path: Path,
) -> None:
    settings = ServerSettings(
        data_dir=tmp_path / "data",
        amd_kds_url="https://kds.mirror.example",
        intel_pcs_url="https://pcs.mirror.example",
    )
    with ServerThread(settings, tls=AtlsSettings()) as server:
        fetchers = server.service.tee.fetchers
        assert isinstance(fetchers.kds, KdsFetcher)
        assert fetchers.kds.crl_url("Milan") == "https://kds.mirror.example/vcek/v1/Milan/crl"
        assert isinstance(fetchers.pcs, PcsFetcher)
        assert fetchers.pcs.urls(bytes(6), "platform", "tdx")["qe"].startswith(
            "https://pcs.mirror.example/tdx/"
        )
        assert server.atls is not None
        assert server.atls.fetchers is fetchers
        identity = server.atls.identity
    downstream = Downstream("https://127.0.0.1:1", "instance", POLICY, "e@x.example", PASSWORD)
    caller = _Caller(downstream, identity, fetchers=fetchers)
    transport = caller._client._attested
    assert transport is not None
    assert transport._attestor.fetchers == fetchers
    caller.close()
    without = ServerSettings(data_dir=tmp_path / "other", amd_kds_url=None, intel_pcs_url=None)
    with ServerThread(without, tls=AtlsSettings()) as server:
        assert server.service.tee.fetchers == EvidenceFetchers()
