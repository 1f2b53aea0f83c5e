"""Paths, times and loaders of the stored Intel DCAP vectors (see PROVENANCE.md in each set)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "attestation"
QVL_TDX = ASSETS / "tdx" / "dcap-qvl-tdx-v4-v5"
GO_TDX = ASSETS / "tdx" / "go-tdx-guest-spr-e4-v4-and-v5"
AZURE_TDX = ASSETS / "tdx" / "coco-trustee-az-tdx-vtpm"
QVL_SGX = ASSETS / "sgx" / "dcap-qvl-sgx-v3"

# Inside each set's collateral window: one second before the earliest nextUpdate.
QVL_TDX_V4_AT = datetime(2025, 7, 19, 10, 0, 34, tzinfo=UTC)
QVL_TDX_V5_AT = datetime(2026, 3, 20, 10, 41, 14, tzinfo=UTC)
QVL_SGX_AT = datetime(2025, 7, 19, 10, 1, 17, tzinfo=UTC)
GO_TDX_AT = datetime(2023, 7, 1, 1, 0, 0, tzinfo=UTC)


def qvl_collateral(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def go_tdx_collateral() -> dict[str, Any]:
    """The go-tdx-guest 2023 collateral, in the PCS-response shape."""
    return {
        "tcb_info_response": (GO_TDX / "sample_tcbInfo_response.json").read_text(),
        "qe_identity_response": (GO_TDX / "sample_qeIdentity_response.json").read_text(),
        "pck_crl": (GO_TDX / "pckcrl.der").read_bytes(),
        "root_ca_crl": (GO_TDX / "rootcrl.der").read_bytes(),
        "tcb_info_issuer_chain": (GO_TDX / "tcbInfoIssuerChain.pem").read_text(),
        "qe_identity_issuer_chain": (GO_TDX / "qeIdentityIssuerChain.pem").read_text(),
        "pck_crl_issuer_chain": (GO_TDX / "pckCrlIssuerChain.pem").read_text(),
    }


def read(path: Path) -> bytes:
    return path.read_bytes()
