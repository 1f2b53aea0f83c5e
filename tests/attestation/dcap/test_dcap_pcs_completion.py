"""A verifier with a PcsFetcher judges a quote with Intel's current collateral, not the host's.

The host being verified sends collateral with its quote. An older set, signed
by Intel and still inside its validity, may predate a revocation: here the
PCK CRL the host sends does not list its PCK, the current one does. With a
``PcsFetcher`` the verifier fetches the current set and the quote is refused;
without one it is judged with what the host sent.
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import quote as url_quote

import pytest
from dcap_fakes import NOW, World, build, crl, key

from cleanroom.attestation import Evidence
from cleanroom.attestation.dcap import TdxVerifier
from cleanroom.attestation.fetch import EvidenceFetchers, HttpResponse, PcsFetcher
from cleanroom.attestation.fetch import _pck_identity as pck_identity
from cleanroom.errors import EvidenceSignatureError, ServiceUnavailable

WORLD = World(pck_revoked=(World.pck_serial,))  # Intel's current view: the PCK is revoked
CURRENT = build(WORLD)
# What the host sends: the same collateral with a PCK CRL from before the revocation.
OLDER_PCK_CRL = crl(
    WORLD.pck_ca_cn, key("pck-ca"), (), NOW - timedelta(days=20), NOW + timedelta(days=10)
)
HOST_COLLATERAL = {**CURRENT.collateral, "pck_crl": OLDER_PCK_CRL.hex()}


class FakePcs:
    """Intel PCS answering *collateral* (the fake world's) in the PCS API's shapes."""

    def __init__(self, collateral: dict[str, str], *, up: bool = True) -> None:
        self.requests: list[str] = []
        urls = PcsFetcher().urls(*pck_identity(CURRENT.quote))
        c = collateral
        self.pages = {
            urls["tcb"]: HttpResponse(
                200,
                _signed("tcbInfo", c["tcb_info"], c["tcb_info_signature"]),
                {"TCB-Info-Issuer-Chain": url_quote(c["tcb_info_issuer_chain"])},
            ),
            urls["qe"]: HttpResponse(
                200,
                _signed("enclaveIdentity", c["qe_identity"], c["qe_identity_signature"]),
                {"SGX-Enclave-Identity-Issuer-Chain": url_quote(c["qe_identity_issuer_chain"])},
            ),
            urls["pckcrl"]: HttpResponse(
                200,
                bytes.fromhex(c["pck_crl"]),
                {"SGX-PCK-CRL-Issuer-Chain": url_quote(c["pck_crl_issuer_chain"])},
            ),
            urls["rootcrl"]: HttpResponse(200, bytes.fromhex(c["root_ca_crl"]), {}),
        }
        self.up = up

    def __call__(self, url: str) -> HttpResponse:
        self.requests.append(url)
        page = self.pages.get(url) if self.up else None
        return page or HttpResponse(503, b"", {})


def _signed(member: str, text: str, signature: str) -> bytes:
    return f'{{"{member}":{text},"signature":{json.dumps(signature)}}}'.encode()


def _verify(collateral: object) -> object:
    return TdxVerifier().verify(
        CURRENT.quote, (), collateral, at=NOW, additional_roots=[CURRENT.root_der]
    )


def test_with_the_host_collateral_the_revoked_pck_passes() -> None:
    assert _verify(HOST_COLLATERAL) is not None


def test_the_verifier_fetches_the_current_collateral_and_refuses() -> None:
    pcs = FakePcs(CURRENT.collateral)
    fetchers = EvidenceFetchers(pcs=PcsFetcher(pcs))
    completed = fetchers.complete(Evidence("tdx", CURRENT.quote, collateral=HOST_COLLATERAL))
    assert completed.collateral is not None
    assert len(pcs.requests) == 4
    with pytest.raises(EvidenceSignatureError) as info:
        _verify(completed.collateral)
    assert any("listed in the CRL" in f for f in info.value.failures)


def test_fetched_collateral_of_the_same_view_verifies() -> None:
    """Completion replaces the host's collateral by a set that verifies in its own right."""
    current = build(World())
    pcs = FakePcs(current.collateral)  # the same FMSPC, so the same URLs
    completed = EvidenceFetchers(pcs=PcsFetcher(pcs)).complete(
        Evidence("tdx", current.quote, collateral={"stale": "ignored"})
    )
    claims = TdxVerifier().verify(
        current.quote, (), completed.collateral, at=NOW, additional_roots=[current.root_der]
    )
    assert claims is not None


def test_an_unreachable_pcs_fails_closed() -> None:
    fetchers = EvidenceFetchers(pcs=PcsFetcher(FakePcs(CURRENT.collateral, up=False)))
    with pytest.raises(ServiceUnavailable):
        fetchers.complete(Evidence("tdx", CURRENT.quote, collateral=HOST_COLLATERAL))


def test_without_a_pcs_fetcher_the_host_collateral_is_kept() -> None:
    evidence = Evidence("tdx", CURRENT.quote, collateral=HOST_COLLATERAL)
    assert EvidenceFetchers().complete(evidence) == evidence
