"""Policy-file rows for [tdx] xfam, mrservicetd, mrowner, mrownerconfig and [sgx]
allowed/required_attributes, allowed/required_miscselect, configid and
min_config_svn: defaults, round trip, and null or mistyped values refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cleanroom.attestation import AttestationPolicy
from cleanroom.errors import ConfigurationError

M1 = "11" * 48


def _tdx(**fields: Any) -> dict[str, Any]:
    return {"tdx": {"mrtd": [M1], **fields}}


def _sgx(**fields: Any) -> dict[str, Any]:
    return {"sgx": {"mrenclave": ["44" * 32], **fields}}


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("xfam null", _tdx(xfam=None), "xfam"),
    ("xfam a string", _tdx(xfam="0x618e7"), "xfam"),
    ("xfam not hex", _tdx(xfam=["0xzz"]), "xfam"),
    ("xfam a bool", _tdx(xfam=[True]), "xfam"),
    ("xfam over 64 bits", _tdx(xfam=["1" + "0" * 16]), "xfam"),
    ("mrservicetd null", _tdx(mrservicetd=None), "mrservicetd"),
    ("mrservicetd short", _tdx(mrservicetd=["00" * 32]), "mrservicetd"),
    ("mrowner a string", _tdx(mrowner="00" * 48), "mrowner"),
    ("mrowner of numbers", _tdx(mrowner=[0]), "mrowner"),
    ("mrownerconfig null", _tdx(mrownerconfig=None), "mrownerconfig"),
    ("mrownerconfig not hex", _tdx(mrownerconfig=["zz" * 48]), "mrownerconfig"),
    ("attributes null", _sgx(allowed_attributes=None), "allowed_attributes"),
    ("attributes a list", _sgx(required_attributes=[2]), "required_attributes"),
    ("attributes a bool", _sgx(allowed_attributes=False), "allowed_attributes"),
    ("attributes allow DEBUG", _sgx(allowed_attributes="0x7"), "DEBUG"),
    ("attributes require DEBUG", _sgx(required_attributes="0x2"), "DEBUG"),
    (
        "attributes required but not allowed",
        _sgx(required_attributes="0x84"),
        "required_attributes",
    ),
    ("miscselect over 32 bits", _sgx(allowed_miscselect="0x100000000"), "allowed_miscselect"),
    ("miscselect negative", _sgx(required_miscselect=-1), "required_miscselect"),
    (
        "miscselect required but not allowed",
        _sgx(allowed_miscselect=0, required_miscselect=1),
        "required_miscselect",
    ),
    ("configid null", _sgx(configid=None), "configid"),
    ("configid 48 bytes", _sgx(configid=["00" * 48]), "configid"),
    ("min_config_svn null", _sgx(min_config_svn=None), "min_config_svn"),
    ("min_config_svn a string", _sgx(min_config_svn="1"), "min_config_svn"),
    ("min_config_svn negative", _sgx(min_config_svn=-1), "min_config_svn"),
]


@pytest.mark.parametrize(("name", "doc", "field"), BAD, ids=[b[0] for b in BAD])
def test_null_or_mistyped_fields_are_refused(name: str, doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AttestationPolicy.from_dict(doc)
    assert field in str(info.value)


def test_defaults() -> None:
    policy = AttestationPolicy.from_dict({**_tdx(), **_sgx()})
    assert policy.tdx_xfam == ()
    assert policy.tdx_mrservicetd == policy.tdx_mrowner == policy.tdx_mrownerconfig == ()
    assert policy.sgx_allowed_attributes == 0x405  # INIT, MODE64BIT, AEXNOTIFY
    assert policy.sgx_required_attributes == 0x4  # MODE64BIT
    assert policy.sgx_allowed_miscselect == 0xFFFFFFFF
    assert policy.sgx_required_miscselect == 0
    assert policy.sgx_configid == ()
    assert policy.sgx_min_config_svn is None


def test_round_trip() -> None:
    doc = {
        **_tdx(
            xfam=["0x618e7", 0x602E7],
            mrservicetd=["00" * 48],
            mrowner=["0a" * 48],
            mrownerconfig=["0b" * 48],
        ),
        **_sgx(
            allowed_attributes="0x85",
            required_attributes="0x84",
            allowed_miscselect="0x1",
            required_miscselect=1,
            configid=["0d" * 64],
            min_config_svn=2,
        ),
    }
    policy = AttestationPolicy.from_dict(doc)
    assert policy.tdx_xfam == (0x618E7, 0x602E7)
    assert policy.tdx_mrowner == (b"\x0a" * 48,)
    assert policy.sgx_allowed_attributes == 0x85
    assert policy.sgx_required_miscselect == 1
    assert policy.sgx_min_config_svn == 2
    written = policy.to_dict()
    again = AttestationPolicy.from_dict(json.loads(json.dumps(written)))
    assert again.to_dict() == written
    assert written["tdx"]["xfam"] == ["0x00000000000618e7", "0x00000000000602e7"]
    assert written["tdx"]["mrservicetd"] == ["00" * 48]
    assert written["sgx"]["allowed_attributes"] == "0x0000000000000085"
    assert written["sgx"]["allowed_miscselect"] == "0x00000001"
    assert written["sgx"]["configid"] == ["0d" * 64]
    assert written["sgx"]["min_config_svn"] == 2
