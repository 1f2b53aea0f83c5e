"""Two clean rooms in a pipeline, end to end, and the data owner's check of the chain."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from atls_fakes import make_identity, policy_for
from examples.pipeline.models import feature_model, sample_cashflows, scoring_model
from examples.pipeline.run_pipeline import Outcome, run

from cleanroom.atls.pipeline import verify_chain
from cleanroom.attestation.measurement import package_measurement
from cleanroom.crypto.binding import TLS_SPKI_KEY
from cleanroom.errors import AccessDenied, AttestationError, EvidenceFormatError, PolicyViolation


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipeline")


@pytest.fixture(scope="module")
def outcome(work_dir: Path) -> Outcome:
    return run(work_dir)


def _local(model: bytes, name: str, value: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    result: np.ndarray = session.run(None, {name: value})[0]
    return result


def test_two_hop_pipeline_scores_equal_the_composed_models(outcome: Outcome) -> None:
    features = _local(feature_model(), "cashflows", sample_cashflows())
    expected = _local(scoring_model(), "features", features)
    np.testing.assert_array_equal(outcome.scores, expected)


def test_the_data_owner_verifies_both_hops(outcome: Outcome, work_dir: Path) -> None:
    assert outcome.first_hop.measurement == package_measurement()
    assert outcome.downstream.measurement == package_measurement()
    report = json.loads(outcome.chain)
    # The stage verified mutual TLS to the scoring clean room and reports it.
    assert report["tls"]["document"]["config"]["atls"]["role"] == "server"
    assert report["instance_config"]["instance"]["name"] == "scoring"


def _mutate_chain(chain: str, change: Callable[[dict[str, Any]], None]) -> str:
    report = json.loads(chain)
    change(report)
    return json.dumps(report)


def _other_certificate(report: dict[str, Any], tee_dir: Path) -> None:
    der = make_identity(tee_dir).certificate_der
    report["tls"]["certificate"] = base64.b64encode(der).decode()


CHAIN_CASES: list[
    tuple[str, Callable[[dict[str, Any], Path], None], type[AttestationError], str]
] = [
    (
        "configuration rewritten to another TLS key",
        lambda r, d: r["tls"]["document"]["config"]["keys"].update({TLS_SPKI_KEY: "00" * 32}),
        PolicyViolation,
        "REPORT_DATA",
    ),
    ("another certificate", _other_certificate, PolicyViolation, TLS_SPKI_KEY),
    (
        "instance configuration behind another key",
        lambda r, d: r["instance_config"]["keys"].update({TLS_SPKI_KEY: "00" * 32}),
        PolicyViolation,
        "instance keys",
    ),
    (
        "nonce rewritten",
        lambda r, d: r["tls"]["document"].update(nonce="00" * 32),
        PolicyViolation,
        "REPORT_DATA",
    ),
    ("no tls section", lambda r, d: r.pop("tls"), EvidenceFormatError, "malformed"),
]


@pytest.mark.parametrize(
    ("name", "change", "error", "failure"), CHAIN_CASES, ids=[c[0] for c in CHAIN_CASES]
)
def test_a_tampered_chain_report_is_refused(
    name: str,
    change: Callable[[dict[str, Any], Path], None],
    error: type[AttestationError],
    failure: str,
    outcome: Outcome,
    work_dir: Path,
) -> None:
    tampered = _mutate_chain(outcome.chain, lambda r: change(r, work_dir / "features"))
    with pytest.raises(error) as refused:
        verify_chain(tampered, policy_for(work_dir / "scoring"))
    assert failure in " ".join([refused.value.message, *refused.value.failures]), name


def test_the_chain_fails_under_a_policy_for_another_root(outcome: Outcome, work_dir: Path) -> None:
    with pytest.raises(AttestationError):
        verify_chain(outcome.chain, policy_for(work_dir / "features"))


def test_an_upstream_the_instance_does_not_declare_gets_no_score(tmp_path: Path) -> None:
    """The operator's route admits the stage, but the scoring instance declares another."""
    with pytest.raises(AccessDenied, match="not declared by this instance"):
        run(tmp_path, instance_upstream_digest="sha256:" + "11" * 32)


def test_a_stage_off_the_allow_list_gets_no_score(tmp_path: Path) -> None:
    """The scoring clean room refuses the stage; the bank's prediction fails, closed."""
    with pytest.raises(PolicyViolation, match=r"refused this clean room.s attestation") as refused:
        run(tmp_path, stage_policy_digest="sha256:" + "00" * 32)
    assert "allow-list" in " ".join(refused.value.failures)
