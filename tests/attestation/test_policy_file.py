"""The attestation policy file: documented fields only, fail closed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleanroom.attestation import AttestationPolicy
from cleanroom.errors import ConfigurationError

M1 = "aa" * 48
M2 = "BB" * 48

FULL_TOML = f"""
allow_simulated = true
simulated_root = "root.pem"
allow_debug = false
accepted_tcb_statuses = ["UpToDate", "SWHardeningNeeded"]
tolerated_advisory_ids = ["INTEL-SA-00615"]

[sev-snp]
measurements = ["{M1}", "{M2}"]
host_data = ["{"11" * 32}"]
min_tcb = {{ BOOT_LOADER = 3, SNP = 8, MICROCODE = 115 }}
signing_keys = ["vcek"]
vmpl = 0
id_key_digests = []
products = ["Milan", "Genoa"]
min_guest_svn = 1
allow_migration_agent = true

[tdx]
mrtd = ["{"cc" * 48}"]
rtmrs = {{ RTMR0 = ["{"dd" * 48}"] }}
mrconfigid = ["{"ee" * 48}"]
min_tcb = {{ PCESVN = 13, TDXTCBCOMP01 = 3 }}

[sgx]
mrenclave = ["{"01" * 32}"]
mrsigner = ["{"02" * 32}"]
isv_prod_id = 1
min_isv_svn = 2
min_tcb = {{ SGXTCBCOMP01 = 11 }}
"""


def _root(tmp_path: Path, simulated_root_pem: bytes) -> None:
    (tmp_path / "root.pem").write_bytes(simulated_root_pem)


@pytest.fixture
def root_pem(simulated_tee: object) -> bytes:
    from cleanroom.attestation.simulated import SimulatedSnpTee

    assert isinstance(simulated_tee, SimulatedSnpTee)
    return simulated_tee.root_pem


def test_full_toml_policy(tmp_path: Path, root_pem: bytes) -> None:
    _root(tmp_path, root_pem)
    path = tmp_path / "policy.toml"
    path.write_text(FULL_TOML)
    policy = AttestationPolicy.from_file(path)
    assert policy.measurements == (bytes.fromhex(M1), bytes.fromhex(M2))
    assert policy.allow_simulated is True
    assert policy.simulated_root_pem == root_pem
    assert policy.accepted_tcb_statuses == ("UpToDate", "SWHardeningNeeded")
    assert policy.tolerated_advisory_ids == ("INTEL-SA-00615",)
    assert dict(policy.min_tcb) == {"BOOT_LOADER": 3, "SNP": 8, "MICROCODE": 115}
    assert policy.signing_keys == ("vcek",)
    assert policy.vmpl == 0
    assert policy.snp_products == ("Milan", "Genoa")
    assert policy.snp_min_guest_svn == 1
    assert policy.snp_allow_migration_agent is True
    assert policy.mrtd == (b"\xcc" * 48,)
    assert dict(policy.rtmrs) == {"RTMR0": (b"\xdd" * 48,)}
    assert policy.mrconfigid == (b"\xee" * 48,)
    assert policy.mrenclave == (b"\x01" * 32,)
    assert policy.mrsigner == (b"\x02" * 32,)
    assert (policy.sgx_isv_prod_id, policy.sgx_min_isv_svn) == (1, 2)
    assert dict(policy.tdx_min_tcb) == {"PCESVN": 13, "TDXTCBCOMP01": 3}
    assert dict(policy.sgx_min_tcb) == {"SGXTCBCOMP01": 11}


def test_json_policy_equals_toml(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"sev-snp": {"measurements": [M1]}, "allow_debug": True}))
    policy = AttestationPolicy.from_file(path)
    assert policy.measurements == (bytes.fromhex(M1),)
    assert policy.allow_debug is True
    assert policy.allow_simulated is False
    assert policy.vmpl == 0


def test_defaults_are_strict() -> None:
    policy = AttestationPolicy()
    assert policy.measurements == ()
    assert policy.allow_simulated is False
    assert policy.allow_debug is False
    assert policy.accepted_tcb_statuses == ("UpToDate",)
    assert policy.tolerated_advisory_ids == ()
    assert policy.mrtd == ()
    assert policy.mrenclave == ()
    assert policy.mrsigner == ()


BAD_FILES: list[tuple[str, str, str]] = [
    ("empty TOML", "policy.toml", ""),
    ("empty JSON", "policy.json", "{}"),
    ("not JSON", "policy.json", "{"),
    ("JSON array", "policy.json", "[]"),
    ("not TOML", "policy.toml", "a = "),
    ("unknown top-level field", "policy.toml", "allow_everything = true"),
    ("unknown SNP field", "policy.toml", "[sev-snp]\nmeasurment = []"),
    ("unknown TDX field", "policy.toml", "[tdx]\nmr_td = []"),
    ("unknown SGX field", "policy.toml", "[sgx]\nenclave = []"),
    ("unknown section", "policy.toml", "[nitro]\npcr0 = []"),
    ("measurement not hex", "policy.toml", '[sev-snp]\nmeasurements = ["zz"]'),
    ("measurement wrong size", "policy.toml", '[sev-snp]\nmeasurements = ["aa"]'),
    ("measurements a string", "policy.toml", f'[sev-snp]\nmeasurements = "{M1}"'),
    ("unknown TCB component", "policy.toml", "[sev-snp]\nmin_tcb = { UCODE = 1 }"),
    ("negative TCB", "policy.toml", "[sev-snp]\nmin_tcb = { SNP = -1 }"),
    ("unknown signing key", "policy.toml", '[sev-snp]\nsigning_keys = ["ark"]'),
    ("VMPL out of range", "policy.toml", "[sev-snp]\nvmpl = 4"),
    ("unknown product", "policy.toml", '[sev-snp]\nproducts = ["Naples"]'),
    ("unknown RTMR", "policy.toml", "[tdx]\nrtmrs = { RTMR9 = [] }"),
    ("allow_debug not a bool", "policy.toml", 'allow_debug = "no"'),
    (
        "missing simulated root",
        "policy.toml",
        'allow_simulated = true\nsimulated_root = "nope.pem"',
    ),
]


@pytest.mark.parametrize(("name", "filename", "text"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_policy_files_are_refused(tmp_path: Path, name: str, filename: str, text: str) -> None:
    path = tmp_path / filename
    path.write_text(text)
    with pytest.raises(ConfigurationError):
        AttestationPolicy.from_file(path)


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        AttestationPolicy.from_file(tmp_path / "absent.toml")


def test_simulated_root_must_be_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "root.pem").write_text("not a certificate")
    with pytest.raises(ConfigurationError):
        AttestationPolicy(allow_simulated=True, simulated_root=tmp_path / "root.pem")


def test_the_documented_example_is_a_valid_policy(tmp_path: Path) -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "attestation-policy.md"
    text = doc.read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "policy.toml"
    path.write_text(example)
    policy = AttestationPolicy.from_file(path)
    assert len(policy.measurements) == 1
    assert policy.allow_simulated is False
    assert dict(policy.min_tcb)["SNP"] == 22


def test_to_dict_round_trips(tmp_path: Path, root_pem: bytes) -> None:
    _root(tmp_path, root_pem)
    path = tmp_path / "policy.toml"
    path.write_text(FULL_TOML)
    policy = AttestationPolicy.from_file(path)
    again = AttestationPolicy.from_dict(json.loads(json.dumps(policy.to_dict())))
    assert again.to_dict() == policy.to_dict()
    assert again.simulated_root_pem == root_pem
    assert again.rtmrs == policy.rtmrs


def test_vmpl_any_means_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"sev-snp": {"measurements": [M1], "vmpl": "any"}}))
    policy = AttestationPolicy.from_file(path)
    assert policy.vmpl is None
    assert policy.to_dict()["sev-snp"]["vmpl"] == "any"


def test_authenticity_only_has_no_file_form() -> None:
    with pytest.raises(ConfigurationError):
        AttestationPolicy.authenticity_only().to_dict()


def _snp(**fields: object) -> dict[str, object]:
    return {"sev-snp": {"measurements": [M1], **fields}}


# Null is never "the default": "vmpl": null used to switch the VMPL check off.
BAD_DICTS: list[tuple[str, dict[str, object], str]] = [
    ("vmpl null", _snp(vmpl=None), "vmpl"),
    ("measurements null", {"sev-snp": {"measurements": None}}, "measurements"),
    ("host_data null", _snp(host_data=None), "host_data"),
    ("signing_keys null", _snp(signing_keys=None), "signing_keys"),
    ("min_tcb null", _snp(min_tcb=None), "min_tcb"),
    ("min_guest_svn null", _snp(min_guest_svn=None), "min_guest_svn"),
    ("require_crl null", _snp(require_crl=None), "require_crl"),
    ("accepted_tcb_statuses null", {**_snp(), "accepted_tcb_statuses": None}, "accepted"),
    ("allow_debug null", {**_snp(), "allow_debug": None}, "allow_debug"),
    ("simulated_root null", {**_snp(), "simulated_root": None}, "simulated_root"),
    ("section null", {**_snp(), "tdx": None}, "tdx"),
    ("rtmrs null", {"tdx": {"mrtd": [M1], "rtmrs": None}}, "rtmrs"),
    ("mrtd null", {"tdx": {"mrtd": None}}, "mrtd"),
    ("isv_prod_id null", {"sgx": {"mrsigner": ["aa" * 32], "isv_prod_id": None}}, "isv_prod_id"),
    ("vmpl a string", _snp(vmpl="0"), "vmpl"),
    ("vmpl a bool", _snp(vmpl=False), "vmpl"),
    ("measurements a number", {"sev-snp": {"measurements": 1}}, "measurements"),
    ("measurements a mapping", {"sev-snp": {"measurements": {M1: 1}}}, "measurements"),
    ("host_data of numbers", _snp(host_data=[1]), "host_data"),
    ("signing_keys a string", _snp(signing_keys="vcek"), "signing_keys"),
    ("signing_keys of numbers", _snp(signing_keys=[0]), "signing_keys"),
    ("accepted_tcb_statuses a number", {**_snp(), "accepted_tcb_statuses": 1}, "accepted"),
    ("rtmrs a list", {"tdx": {"mrtd": [M1], "rtmrs": ["RTMR0"]}}, "rtmrs"),
    ("rtmrs with a number key", {"tdx": {"mrtd": [M1], "rtmrs": {1: [M1]}}}, "rtmrs"),
    ("rtmrs values null", {"tdx": {"mrtd": [M1], "rtmrs": {"RTMR0": None}}}, "rtmrs.RTMR0"),
    ("min_tcb a list", _snp(min_tcb=[1]), "min_tcb"),
    ("TD attributes null", {"tdx": {"mrtd": [M1], "allowed_td_attributes": None}}, "allowed"),
    ("TD attributes not hex", {"tdx": {"mrtd": [M1], "allowed_td_attributes": "0xzz"}}, "allowed"),
    ("TD attributes a bool", {"tdx": {"mrtd": [M1], "allowed_td_attributes": True}}, "allowed"),
    ("TD attributes a list", {"tdx": {"mrtd": [M1], "required_td_attributes": [28]}}, "required"),
    (
        "TD attributes over 64 bits",
        {"tdx": {"mrtd": [M1], "allowed_td_attributes": "1" + "0" * 16}},
        "allowed",
    ),
    ("TD attributes negative", {"tdx": {"mrtd": [M1], "allowed_td_attributes": -1}}, "allowed"),
    ("TD attributes allow DEBUG", {"tdx": {"mrtd": [M1], "allowed_td_attributes": "0x1"}}, "DEBUG"),
    (
        "TD attributes require DEBUG",
        {"tdx": {"mrtd": [M1], "required_td_attributes": "0x1"}},
        "DEBUG",
    ),
    (
        "TD attributes required but not allowed",
        {"tdx": {"mrtd": [M1], "required_td_attributes": "0x20000000"}},
        "required_td_attributes",
    ),
]


@pytest.mark.parametrize(("name", "doc", "field"), BAD_DICTS, ids=[b[0] for b in BAD_DICTS])
def test_null_or_mistyped_fields_are_refused(name: str, doc: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AttestationPolicy.from_dict(doc)
    assert field in str(info.value)


def test_td_attributes_default_and_round_trip() -> None:
    policy = AttestationPolicy.from_dict({"tdx": {"mrtd": [M1]}})
    # LASS (27), SEPT_VE_DISABLE (28), PKS (30), KL (31); nothing required.
    assert policy.tdx_allowed_td_attributes == 0xD8000000
    assert policy.tdx_required_td_attributes == 0
    doc = {
        "tdx": {
            "mrtd": [M1],
            "allowed_td_attributes": "0x30000000",
            "required_td_attributes": "0x10000000",
        }
    }
    policy = AttestationPolicy.from_dict(doc)
    assert policy.tdx_allowed_td_attributes == (1 << 29) | (1 << 28)
    assert policy.tdx_required_td_attributes == 1 << 28
    again = AttestationPolicy.from_dict(json.loads(json.dumps(policy.to_dict())))
    assert again.to_dict() == policy.to_dict()
    assert again.to_dict()["tdx"]["allowed_td_attributes"] == "0x0000000030000000"
