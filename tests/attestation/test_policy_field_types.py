"""Mistyped policy values are refused by name, not coerced and not crashed on.

* Fields that are lists of names hold strings only. A number, boolean or null
  among the names is refused as a mistyped list, not turned into its string
  form: ``accepted_tcb_statuses = ["UpToDate", 1]`` must not quietly accept a
  TCB status named "1", nor ``tolerated_advisory_ids = [615]`` tolerate an
  advisory named "615" instead of telling the author that the ID is a string
  ("INTEL-SA-00615").
* A TCB minimum that is null is not "no minimum": ``{"min_tcb": {"SNP": null}}``
  is a ConfigurationError naming the component (as ``"vmpl": null`` is).
* ``simulated_root`` that is not a string (a number, a list, an object) is a
  ConfigurationError, whether or not the file has a directory to resolve it in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cleanroom.attestation import AttestationPolicy
from cleanroom.errors import ConfigurationError

M1 = "aa" * 48


def _top(**fields: object) -> dict[str, object]:
    return {"sev-snp": {"measurements": [M1]}, **fields}


def _snp(**fields: object) -> dict[str, object]:
    return {"sev-snp": {"measurements": [M1], **fields}}


# name, policy document, the field the refusal must name
NON_STRING_NAMES: list[tuple[str, dict[str, object], str]] = [
    (
        "TCB status a number",
        _top(accepted_tcb_statuses=["UpToDate", 1]),
        "accepted_tcb_statuses",
    ),
    ("TCB status a bool", _top(accepted_tcb_statuses=[True]), "accepted_tcb_statuses"),
    (
        "TCB status null",
        _top(accepted_tcb_statuses=["UpToDate", None]),
        "accepted_tcb_statuses",
    ),
    (
        "advisory id a number",
        _top(tolerated_advisory_ids=[615]),
        "tolerated_advisory_ids",
    ),
    (
        "advisory id a list",
        _top(tolerated_advisory_ids=[["INTEL-SA-00615"]]),
        "tolerated_advisory",
    ),
    ("cspID a number", _snp(vlek_csp_ids=[7]), "vlek_csp_ids"),
    ("signing key a number", _snp(signing_keys=["vcek", 0]), "signing_keys"),
    ("product a number", _snp(products=[3]), "products"),
    ("required POLICY bit a number", _snp(policy_required=[16]), "policy_required"),
    ("forbidden POLICY bit a number", _snp(policy_forbidden=[16]), "policy_forbidden"),
    (
        "required PLATFORM_INFO bit a number",
        _snp(platform_info_required=[0]),
        "platform_info",
    ),
    (
        "forbidden PLATFORM_INFO bit a number",
        _snp(platform_info_forbidden=[0]),
        "platform_info",
    ),
]


@pytest.mark.parametrize(
    ("name", "doc", "field"), NON_STRING_NAMES, ids=[row[0] for row in NON_STRING_NAMES]
)
def test_a_name_list_holding_a_non_string_is_refused(
    name: str, doc: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigurationError, match="must be a list of strings") as info:
        AttestationPolicy.from_dict(doc)
    assert field in str(info.value)


def test_a_mixed_toml_array_of_statuses_is_refused(tmp_path: Path) -> None:
    # TOML 1.0 allows arrays of mixed types, so the file form reaches the same check.
    path = tmp_path / "policy.toml"
    path.write_text(
        f'accepted_tcb_statuses = ["UpToDate", 1]\n\n[sev-snp]\nmeasurements = ["{M1}"]\n'
    )
    with pytest.raises(ConfigurationError, match="accepted_tcb_statuses must be a list of strings"):
        AttestationPolicy.from_file(path)


def test_the_same_lists_of_strings_are_accepted() -> None:
    policy = AttestationPolicy.from_dict(
        _top(
            accepted_tcb_statuses=["UpToDate", "SWHardeningNeeded"],
            tolerated_advisory_ids=["INTEL-SA-00615"],
        )
    )
    assert policy.accepted_tcb_statuses == ("UpToDate", "SWHardeningNeeded")
    assert policy.tolerated_advisory_ids == ("INTEL-SA-00615",)


# name, policy document, the text the refusal must carry
NULL_MINIMUMS: list[tuple[str, dict[str, object], str]] = [
    ("SNP min_tcb component null", _snp(min_tcb={"SNP": None}), "min_tcb.SNP"),
    (
        "SNP min_launch_tcb component null",
        _snp(min_launch_tcb={"TEE": None}),
        "min_launch_tcb.TEE",
    ),
    (
        "SNP min_committed_tcb component null",
        _snp(min_committed_tcb={"MICROCODE": None}),
        "min_committed_tcb.MICROCODE",
    ),
    (
        "TDX min_tcb component null",
        {"tdx": {"mrtd": [M1], "min_tcb": {"PCESVN": None}}},
        "min_tcb.PCESVN",
    ),
    (
        "SGX min_tcb component null",
        {"sgx": {"mrsigner": ["aa" * 32], "min_tcb": {"SGXTCBCOMP01": None}}},
        "min_tcb.SGXTCBCOMP01",
    ),
]


@pytest.mark.parametrize(
    ("name", "doc", "field"), NULL_MINIMUMS, ids=[row[0] for row in NULL_MINIMUMS]
)
def test_a_null_tcb_minimum_is_refused(name: str, doc: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match="must be 0 to") as info:
        AttestationPolicy.from_dict(doc)
    assert field in str(info.value)


NON_STRING_ROOTS: list[object] = [5, True, ["root.pem"], {"path": "root.pem"}]


@pytest.mark.parametrize("root", NON_STRING_ROOTS, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("base_dir", [None, Path("/nonexistent")], ids=["no base", "base dir"])
def test_a_simulated_root_that_is_not_a_string_is_refused(
    root: object, base_dir: Path | None
) -> None:
    doc = {"allow_simulated": True, "simulated_root": root}
    with pytest.raises(ConfigurationError, match="simulated_root must be a string"):
        AttestationPolicy.from_dict(doc, base_dir=base_dir)


def test_a_simulated_root_that_is_not_a_string_is_refused_in_a_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"allow_simulated": true, "simulated_root": 5}')
    with pytest.raises(ConfigurationError, match="simulated_root must be a string"):
        AttestationPolicy.from_file(path)
