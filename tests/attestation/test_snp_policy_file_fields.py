"""The SEV-SNP policy-file fields for LAUNCH_TCB, COMMITTED_TCB, firmware,
guest ABI, POLICY and PLATFORM_INFO bits: read, round-tripped, and refused
when null, mistyped or contradictory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleanroom.attestation import AttestationPolicy
from cleanroom.errors import ConfigurationError

M1 = "aa" * 48

TOML = f"""
[sev-snp]
measurements = ["{M1}"]
min_tcb = {{ SNP = 22 }}
min_launch_tcb = {{ SNP = 22, MICROCODE = 213 }}
min_committed_tcb = {{ BOOT_LOADER = 4 }}
min_firmware = "1.55.21"
min_abi = "1.51"
policy_required = ["CIPHERTEXT_HIDING", "PAGE_SWAP_DISABLE"]
policy_forbidden = ["SMT", "CXL_ALLOW"]
platform_info_required = ["TSME_EN", "ALIAS_CHECK_COMPLETE"]
platform_info_forbidden = ["SMT_EN"]
"""


def test_toml_fields_are_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(TOML)
    policy = AttestationPolicy.from_file(path)
    assert dict(policy.snp_min_launch_tcb) == {"SNP": 22, "MICROCODE": 213}
    assert dict(policy.snp_min_committed_tcb) == {"BOOT_LOADER": 4}
    assert policy.snp_min_firmware == (1, 55, 21)
    assert policy.snp_min_abi == (1, 51)
    assert policy.snp_policy_required == ("CIPHERTEXT_HIDING", "PAGE_SWAP_DISABLE")
    assert policy.snp_policy_forbidden == ("SMT", "CXL_ALLOW")
    assert policy.snp_platform_info_required == ("TSME_EN", "ALIAS_CHECK_COMPLETE")
    assert policy.snp_platform_info_forbidden == ("SMT_EN",)


def test_fields_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(TOML)
    policy = AttestationPolicy.from_file(path)
    doc = policy.to_dict()
    again = AttestationPolicy.from_dict(json.loads(json.dumps(doc)))
    assert again.to_dict() == doc
    assert doc["sev-snp"]["min_firmware"] == "1.55.21"
    assert doc["sev-snp"]["min_abi"] == "1.51"
    assert doc["sev-snp"]["min_launch_tcb"] == {"SNP": 22, "MICROCODE": 213}
    assert doc["sev-snp"]["policy_forbidden"] == ["SMT", "CXL_ALLOW"]
    assert doc["sev-snp"]["platform_info_required"] == ["TSME_EN", "ALIAS_CHECK_COMPLETE"]


def test_unset_means_not_checked() -> None:
    policy = AttestationPolicy.from_dict({"sev-snp": {"measurements": [M1]}})
    assert dict(policy.snp_min_launch_tcb) == {}
    assert dict(policy.snp_min_committed_tcb) == {}
    assert policy.snp_min_firmware is None
    assert policy.snp_min_abi is None
    assert policy.snp_policy_required == policy.snp_policy_forbidden == ()
    assert policy.snp_platform_info_required == policy.snp_platform_info_forbidden == ()
    snp = policy.to_dict()["sev-snp"]
    assert "min_firmware" not in snp
    assert "min_abi" not in snp
    assert AttestationPolicy.from_dict(policy.to_dict()).to_dict() == policy.to_dict()


def test_a_two_part_firmware_version_round_trips() -> None:
    policy = AttestationPolicy(snp_min_firmware="1.55")
    assert policy.snp_min_firmware == (1, 55)
    assert policy.to_dict()["sev-snp"]["min_firmware"] == "1.55"


def _snp(**fields: object) -> dict[str, object]:
    return {"sev-snp": {"measurements": [M1], **fields}}


BAD_DICTS: list[tuple[str, dict[str, object], str]] = [
    ("min_launch_tcb null", _snp(min_launch_tcb=None), "min_launch_tcb"),
    ("min_committed_tcb null", _snp(min_committed_tcb=None), "min_committed_tcb"),
    ("min_firmware null", _snp(min_firmware=None), "min_firmware"),
    ("min_abi null", _snp(min_abi=None), "min_abi"),
    ("policy_required null", _snp(policy_required=None), "policy_required"),
    ("policy_forbidden null", _snp(policy_forbidden=None), "policy_forbidden"),
    ("platform_info_required null", _snp(platform_info_required=None), "platform_info_required"),
    (
        "platform_info_forbidden null",
        _snp(platform_info_forbidden=None),
        "platform_info_forbidden",
    ),
    ("min_launch_tcb a list", _snp(min_launch_tcb=[1]), "min_launch_tcb"),
    ("min_launch_tcb unknown component", _snp(min_launch_tcb={"UCODE": 1}), "min_launch_tcb"),
    ("min_committed_tcb over 255", _snp(min_committed_tcb={"SNP": 256}), "min_committed_tcb"),
    ("min_committed_tcb a bool", _snp(min_committed_tcb={"SNP": True}), "min_committed_tcb"),
    ("min_firmware a number", _snp(min_firmware=1.55), "min_firmware"),
    ("min_firmware one part", _snp(min_firmware="1"), "min_firmware"),
    ("min_firmware four parts", _snp(min_firmware="1.55.21.0"), "min_firmware"),
    ("min_firmware part over 255", _snp(min_firmware="1.256"), "min_firmware"),
    ("min_firmware not digits", _snp(min_firmware="1.x"), "min_firmware"),
    ("min_firmware negative", _snp(min_firmware="1.-5"), "min_firmware"),
    ("min_firmware empty part", _snp(min_firmware="1."), "min_firmware"),
    ("min_firmware non-ASCII digit", _snp(min_firmware="1.\u0665"), "min_firmware"),
    ("min_abi three parts", _snp(min_abi="1.51.0"), "min_abi"),
    ("min_abi a list", _snp(min_abi=[1, 51]), "min_abi"),
    ("policy_required a string", _snp(policy_required="SMT"), "policy_required"),
    ("policy_required of numbers", _snp(policy_required=[16]), "policy_required"),
    ("policy_required unknown bit", _snp(policy_required=["SMT_EN"]), "policy_required"),
    ("policy_forbidden DEBUG", _snp(policy_forbidden=["DEBUG"]), "allow_debug"),
    (
        "policy_forbidden MIGRATE_MA",
        _snp(policy_forbidden=["MIGRATE_MA"]),
        "allow_migration_agent",
    ),
    ("policy bit in both lists", _snp(policy_required=["SMT"], policy_forbidden=["SMT"]), "SMT"),
    ("platform_info_required unknown bit", _snp(platform_info_required=["SMT"]), "platform_info"),
    ("platform_info_forbidden a mapping", _snp(platform_info_forbidden={"SMT_EN": 1}), "platform"),
    (
        "platform_info bit in both lists",
        _snp(platform_info_required=["TSME_EN"], platform_info_forbidden=["TSME_EN"]),
        "TSME_EN",
    ),
]


@pytest.mark.parametrize(("name", "doc", "field"), BAD_DICTS, ids=[b[0] for b in BAD_DICTS])
def test_null_mistyped_or_contradictory_fields_are_refused(
    name: str, doc: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        AttestationPolicy.from_dict(doc)
    assert field in info.value.diagnostics(), name


def test_the_python_api_refuses_a_bit_in_both_lists() -> None:
    with pytest.raises(ConfigurationError, match="both name SMT"):
        AttestationPolicy(snp_policy_required=["SMT"], snp_policy_forbidden=["SMT"])


def test_the_documented_example_sets_the_new_fields(tmp_path: Path) -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "attestation-policy.md"
    example = doc.read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "policy.toml"
    path.write_text(example)
    policy = AttestationPolicy.from_file(path)
    assert policy.snp_min_launch_tcb
    assert policy.snp_min_committed_tcb
    assert policy.snp_min_firmware is not None
    assert policy.snp_policy_forbidden
    assert policy.snp_platform_info_required
