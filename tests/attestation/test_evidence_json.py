"""Evidence on the wire: a stable JSON form, and refusals of malformed documents."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from cleanroom.attestation import Evidence
from cleanroom.errors import EvidenceFormatError

EVIDENCE = Evidence(
    platform="tdx",
    report=b"\x04\x00quote",
    certificates=(b"\x30\x03\x02\x01\x00",),
    collateral={"tcb_info": {"id": "TDX"}},
    simulated=False,
)


def test_to_json_is_stable_and_round_trips() -> None:
    doc = EVIDENCE.to_json()
    assert doc == {
        "platform": "tdx",
        "report": base64.b64encode(b"\x04\x00quote").decode(),
        "certificates": [base64.b64encode(b"\x30\x03\x02\x01\x00").decode()],
        "collateral": {"tcb_info": {"id": "TDX"}},
        "simulated": False,
    }
    assert Evidence.from_json(doc) == EVIDENCE


def _with(**changes: Any) -> dict[str, Any]:
    doc = EVIDENCE.to_json()
    doc.update(changes)
    return doc


MALFORMED: list[tuple[str, Any]] = [
    ("not an object", ["report"]),
    ("unknown platform", _with(platform="nitro")),
    ("platform missing", {k: v for k, v in EVIDENCE.to_json().items() if k != "platform"}),
    ("report missing", {k: v for k, v in EVIDENCE.to_json().items() if k != "report"}),
    ("report not base64", _with(report="***")),
    ("report not a string", _with(report=123)),
    ("report too large", _with(report="A" * 200_000)),
    ("certificates not a list", _with(certificates="MAA=")),
    ("too many certificates", _with(certificates=["MAA="] * 17)),
    ("certificate not base64", _with(certificates=["%%"])),
    ("collateral not an object", _with(collateral=[1])),
    ("simulated not a bool", _with(simulated="yes")),
    ("unknown field", _with(extra=1)),
]


@pytest.mark.parametrize(("name", "doc"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_evidence_is_refused(name: str, doc: Any) -> None:
    with pytest.raises(EvidenceFormatError):
        Evidence.from_json(doc)
