"""Every stored TDX / SGX vector gives the outcome its manifest states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dcap_vectors import (
    AZURE_TDX,
    GO_TDX,
    GO_TDX_AT,
    QVL_SGX,
    QVL_SGX_AT,
    QVL_TDX,
    QVL_TDX_V4_AT,
    QVL_TDX_V5_AT,
    go_tdx_collateral,
    qvl_collateral,
)

from cleanroom.attestation.dcap import (
    SgxVerifier,
    TdxVerifier,
    collateral_from_mapping,
    intel_sgx_root_ca,
    parse_quote,
    verify_quote_signatures,
)
from cleanroom.attestation.dcap.chain import common_name, verify_raw_signature
from cleanroom.attestation.dcap.collateral import signed_member
from cleanroom.attestation.dcap.identity import IdentityTcbLevel, parse_tcb_info
from cleanroom.attestation.dcap.pck import load_pem_chain, parse_pck_extensions
from cleanroom.attestation.dcap.structs import TdReport
from cleanroom.attestation.dcap.tcb import evaluate_tcb
from cleanroom.attestation.dcap.verify import verify_quote
from cleanroom.attestation.platform import Claims
from cleanroom.errors import EvidenceFormatError, EvidenceSignatureError, PolicyViolation


def _tdx_v4() -> Claims:
    return TdxVerifier().verify(
        (QVL_TDX / "tdx_quote_v4.bin").read_bytes(),
        (),
        qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json"),
        at=QVL_TDX_V4_AT,
    )


def test_tdx_v4_is_up_to_date_inside_the_collateral_window() -> None:
    claims = _tdx_v4()
    assert claims.platform == "tdx"
    assert claims.tcb_status == "UpToDate"
    assert claims.advisory_ids == ()
    assert claims.root == "Intel SGX Root CA"
    assert claims.simulated is False
    assert claims.signing_key == "pck"
    assert claims.debug is False
    assert claims.measurements["MRTD"].hex() == (
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407"
        "de03ae6dc5f87f27428b2538873118b7"
    )
    assert claims.measurements["RTMR0"].hex().startswith("44c0197b39157fdd")
    assert claims.measurements["RTMR3"] == bytes(48)
    assert claims.report_data.hex().startswith("9a9d48e7f6799642")
    assert claims.host_data == bytes(48)  # MRCONFIGID
    assert claims.fields["TDATTRIBUTES"] == bytes.fromhex("0000001000000000")
    assert claims.fields["XFAM"] == bytes.fromhex("e702060000000000")
    assert claims.fields["MROWNER"] == bytes(48)
    assert claims.fields["FMSPC"] == "b0c06f000000"
    assert claims.fields["TDX_MODULE_TCB_STATUS"] == "UpToDate"
    assert claims.tcb["PCESVN"] == 11
    assert claims.tcb["SGXTCBCOMP08"] == 5
    assert claims.tcb["TDXTCBCOMP01"] == 6
    assert claims.tcb["QE_ISVSVN"] == 6


def test_tdx_v4_collateral_expires_one_second_after_its_window() -> None:
    with pytest.raises(EvidenceSignatureError, match="PCK CRL") as info:
        TdxVerifier().verify(
            (QVL_TDX / "tdx_quote_v4.bin").read_bytes(),
            (),
            qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json"),
            at=QVL_TDX_V4_AT + timedelta(seconds=2),
        )
    assert any("nextUpdate" in f or "outside" in f for f in info.value.failures)


def test_tdx_v4_collateral_not_yet_issued() -> None:
    with pytest.raises(EvidenceSignatureError, match="not current"):
        TdxVerifier().verify(
            (QVL_TDX / "tdx_quote_v4.bin").read_bytes(),
            (),
            qvl_collateral(QVL_TDX / "tdx_quote_v4_collateral.json"),
            at=datetime(2025, 6, 19, 10, 20, tzinfo=UTC),  # before qeIdentity issueDate
        )


def test_tdx_v5_outdated_matches_no_tcb_level() -> None:
    with pytest.raises(PolicyViolation, match="no TCB level") as info:
        TdxVerifier().verify(
            (QVL_TDX / "tdx_quote_v5_outdated.bin").read_bytes(),
            (),
            qvl_collateral(QVL_TDX / "tdx_quote_v5_outdated_collateral.json"),
            at=QVL_TDX_V5_AT,
        )
    assert "PCK CPUSVN components [3, 3, 2, 2, 4, 1, 0, 3" in info.value.failures[0]


def test_tdx_v5_outdated_is_authentic() -> None:
    quote = parse_quote((QVL_TDX / "tdx_quote_v5_outdated.bin").read_bytes())
    assert quote.header.VERSION == 5
    assert quote.body_type == 3
    pck, anchor = verify_quote_signatures(quote, at=QVL_TDX_V5_AT, pinned_root=intel_sgx_root_ca())
    assert pck.FMSPC.hex() == "90c06f000000"
    assert anchor.simulated is False


def test_sgx_v3_needs_configuration_and_sw_hardening() -> None:
    claims = SgxVerifier().verify(
        (QVL_SGX / "sgx_quote_v3.bin").read_bytes(),
        (),
        qvl_collateral(QVL_SGX / "sgx_quote_v3_collateral.json"),
        at=QVL_SGX_AT,
    )
    assert claims.platform == "sgx"
    assert claims.tcb_status == "ConfigurationAndSWHardeningNeeded"
    assert claims.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")
    assert claims.measurements["MRENCLAVE"].hex() == (
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    )
    assert claims.measurements["MRSIGNER"].hex().startswith("815f42f11cf64430")
    assert claims.fields["ISVPRODID"] == 0
    assert claims.fields["ISVSVN"] == 0
    assert claims.fields["QE_TCB_STATUS"] == "UpToDate"
    assert claims.report_data.startswith(b"Hello, world!")
    assert claims.debug is False
    assert claims.tcb["PCESVN"] == 13


def test_sgx_v3_uses_the_processor_ca() -> None:
    quote = parse_quote((QVL_SGX / "sgx_quote_v3.bin").read_bytes())
    chain = load_pem_chain(quote.pck_chain_pem, "chain")
    assert common_name(chain[1].subject) == "Intel SGX PCK Processor CA"
    assert parse_pck_extensions(chain[0]).SGX_TYPE == 0


def test_go_tdx_guest_spr_e4_collateral_is_valid_in_2023_but_no_level_matches() -> None:
    verifier = TdxVerifier(allow_trailing_bytes=True)
    with pytest.raises(PolicyViolation, match="no TCB level"):
        verifier.verify(
            (GO_TDX / "tdx_prod_quote_SPR_E4.dat").read_bytes(),
            (),
            go_tdx_collateral(),
            at=GO_TDX_AT,
        )


def test_go_tdx_guest_spr_e4_trailer_is_refused_by_default() -> None:
    with pytest.raises(EvidenceFormatError, match="after the end of the quote"):
        TdxVerifier().parse((GO_TDX / "tdx_prod_quote_SPR_E4.dat").read_bytes())


def test_go_tdx_guest_spr_e4_authentic_chain_and_collateral_in_2023() -> None:
    quote = parse_quote(
        (GO_TDX / "tdx_prod_quote_SPR_E4.dat").read_bytes(), allow_trailing_bytes=True
    )
    collateral = collateral_from_mapping(go_tdx_collateral())
    with pytest.raises(PolicyViolation):
        # Everything up to the TCB level verifies; only the level is missing.
        verify_quote(quote, collateral, at=GO_TDX_AT, pinned_root=intel_sgx_root_ca())
    pck, _ = verify_quote_signatures(quote, at=GO_TDX_AT, pinned_root=intel_sgx_root_ca())
    assert pck.FMSPC.hex() == "50806f000000"


@pytest.mark.parametrize(
    ("at", "message"),
    [
        pytest.param(datetime(2053, 7, 1, 1, tzinfo=UTC), "PCK certificate", id="2053-pck"),
        pytest.param(datetime(2023, 7, 20, tzinfo=UTC), "CRL", id="2023-07-20-crl"),
    ],
)
def test_go_tdx_guest_collateral_expires(at: datetime, message: str) -> None:
    with pytest.raises(EvidenceSignatureError, match=message):
        TdxVerifier(allow_trailing_bytes=True).verify(
            (GO_TDX / "tdx_prod_quote_SPR_E4.dat").read_bytes(), (), go_tdx_collateral(), at=at
        )


def test_go_tdx_guest_v5_sample_is_up_to_date_against_its_tcb_info() -> None:
    quote = parse_quote((GO_TDX / "quote_v5_sample.dat").read_bytes())
    at = datetime(2026, 2, 3, 1, tzinfo=UTC)
    pck, _ = verify_quote_signatures(quote, at=at, pinned_root=intel_sgx_root_ca())
    response = (GO_TDX / "sample_tcbinfo_response_v5.json").read_text()
    tcb_bytes, _signature = signed_member(response, "tcbInfo", "tcb_info_response")
    tcb_info = parse_tcb_info(tcb_bytes)
    assert tcb_info.fmspc == pck.FMSPC
    body = quote.body
    assert isinstance(body, TdReport)
    qe = IdentityTcbLevel(isvsvn=0, tcb_date="", tcb_status="UpToDate", advisory_ids=())
    evaluation = evaluate_tcb(
        tcb_info, pck.CPUSVN_COMPONENTS, pck.PCESVN, qe, body.TEE_TCB_SVN, body.TEE_TCB_SVN2
    )
    assert evaluation.status == "UpToDate"


def test_go_tdx_guest_v5_tcb_info_signing_cert_had_expired_when_it_was_issued() -> None:
    response = (GO_TDX / "sample_tcbinfo_response_v5.json").read_text()
    tcb_bytes, signature = signed_member(response, "tcbInfo", "tcb_info_response")
    chain = load_pem_chain((GO_TDX / "tcbInfoIssuerChain.pem").read_bytes(), "chain")
    # Same key as the reissued certificate: the signature itself verifies...
    verify_raw_signature(chain[0].public_key(), signature, tcb_bytes, "tcbInfo signature")
    # ...but the certificate that came with it expired 2025-05-21.
    assert chain[0].not_valid_after_utc < parse_tcb_info(tcb_bytes).issue_date


def test_cos_113_zero_padded_quote_binds_the_nonce() -> None:
    data = (GO_TDX / "cos-113-tdx-quote.dat").read_bytes()
    quote = TdxVerifier().parse(data)
    assert quote.size == 4935
    assert len(data) == 8000
    assert (GO_TDX / "cos-113-nonce.dat").read_bytes() == quote.body.REPORTDATA
    verify_quote_signatures(
        quote, at=datetime(2024, 8, 29, tzinfo=UTC), pinned_root=intel_sgx_root_ca()
    )


def test_azure_tdx_quote_is_authentic() -> None:
    quote = TdxVerifier().parse((AZURE_TDX / "tdx_td-quote.bin").read_bytes())
    pck, anchor = verify_quote_signatures(
        quote, at=datetime(2024, 7, 3, tzinfo=UTC), pinned_root=intel_sgx_root_ca()
    )
    assert anchor.name == "Intel SGX Root CA"
    assert pck.FMSPC.hex() == "00806f050000"
    assert quote.body.REPORTDATA[32:] == bytes(32)


def test_azure_tdx_quote_without_collateral_is_refused() -> None:
    with pytest.raises(EvidenceSignatureError, match="needs collateral"):
        TdxVerifier().verify(
            (AZURE_TDX / "tdx_td-quote.bin").read_bytes(),
            (),
            None,
            at=datetime(2024, 7, 3, tzinfo=UTC),
        )


def test_pinned_root_is_the_root_of_every_stored_set() -> None:
    pinned = intel_sgx_root_ca()
    from cryptography.hazmat.primitives import serialization

    der = pinned.public_bytes(serialization.Encoding.DER)
    assert (QVL_TDX / "TrustedRootCA.der").read_bytes() == der
    assert (QVL_SGX / "TrustedRootCA.der").read_bytes() == der
    assert load_pem_chain((GO_TDX / "trusted_root.pem").read_bytes(), "root")[0] == pinned
