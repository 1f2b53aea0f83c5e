"""Two clean rooms in a pipeline, each verifying the other, run on this machine.

A bank sends twelve months of raw cash flows to a *feature* clean room. Its
model derives three features, and only those go on, over mutually attested
TLS, to a *scoring* clean room that admits no other caller. The score comes
back to the bank together with what the feature clean room verified of the
scoring clean room, which the bank checks with its own policy.

Run it from the repository root: ``PYTHONPATH=src:. python -m examples.pipeline.run_pipeline``.
Both clean rooms run on the SIMULATED TEE: no confidentiality, development only.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from examples.pipeline.models import feature_model, sample_cashflows, scoring_model

from cleanroom import AttestationPolicy, Client, Secret
from cleanroom.atls import AtlsSettings, PeerRoute, Upstream
from cleanroom.atls.pipeline import CHAIN_OUTPUT, Downstream, Pipeline, verify_chain
from cleanroom.attestation import VerifiedEvidence
from cleanroom.attestation.measurement import package_measurement
from cleanroom.attestation.simulated import SimulatedSnpTee
from cleanroom.policy import PolicyBundle
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings

HERE = Path(__file__).parent
FEATURES_POLICY = (HERE / "features.rego").read_text(encoding="utf-8")
PASSWORD = "correct horse battery staple"
LENDER = "alice@lender.example"  # owns the scoring model
ANALYTICS = "fiona@analytics.example"  # owns the feature model
BANK = "bob@bank.example"  # owns the raw cash flows
STAGE = "feature-stage@analytics.example"  # the feature clean room's account on the scoring one


@dataclass(frozen=True)
class Outcome:
    scores: npt.NDArray[np.float32]
    first_hop: VerifiedEvidence
    downstream: VerifiedEvidence
    chain: str


def policy_for(data_dir: Path) -> AttestationPolicy:
    """What a party accepts of a clean room: this code's measurement, its simulated root."""
    return AttestationPolicy(
        measurements=[package_measurement().hex()],
        allow_simulated=True,
        simulated_root=data_dir / "simulated-root.pem",
    )


def _party(url: str, policy: AttestationPolicy, email: str) -> Client:
    client = Client(url, attestation=policy)
    client.sign_up(email, PASSWORD)
    client.sign_in(email, PASSWORD)
    return client


def run(
    work_dir: Path,
    *,
    stage_policy_digest: str | None = None,
    instance_upstream_digest: str | None = None,
) -> Outcome:
    """Run the whole pipeline in *work_dir*.

    *stage_policy_digest* overrides the operator's route allow-list;
    *instance_upstream_digest* overrides the upstream the scoring instance declares.
    """
    features_dir, scoring_dir = work_dir / "features", work_dir / "scoring"
    for path in (features_dir, scoring_dir):
        path.mkdir(parents=True, exist_ok=True)
        SimulatedSnpTee.open(path)  # each clean room's simulated root, known to the others
    features_policy, scoring_policy = policy_for(features_dir), policy_for(scoring_dir)

    # The scoring clean room's predictions admit one upstream: this code, running
    # the feature stage's policy, attested under the feature clean room's root.
    allowed = Upstream(
        package_measurement().hex(),
        stage_policy_digest or PolicyBundle.compile(FEATURES_POLICY).digest,
    )
    scoring_tls = AtlsSettings(
        routes=(PeerRoute("/v1/instances/*/predict", features_policy, (allowed,)),)
    )
    with (
        ServerThread(ServerSettings(data_dir=scoring_dir), tls=scoring_tls) as scoring,
        ServerThread(ServerSettings(data_dir=features_dir), tls=AtlsSettings()) as features,
    ):
        # The lender sets up scoring and names the feature stage as its only data owner.
        with _party(scoring.url, scoring_policy, LENDER) as lender:
            # ...and declares, in its attested configuration, the one upstream it serves.
            declared = {
                "measurement": allowed.measurement,
                "policy_digest": instance_upstream_digest or allowed.policy_digest,
            }
            scorer = lender.create_instance("scoring", "onnx", [STAGE], upstreams=[declared])
            scorer.validate_attestation(scoring_policy)
            scorer.set_secret(Secret())
            scorer.upload_model(scoring_model())
        with Client(scoring.url, attestation=scoring_policy) as stage_account:
            stage_account.sign_up(STAGE, PASSWORD)

        # The analytics firm sets up feature extraction, for the bank, under its policy.
        with _party(features.url, features_policy, ANALYTICS) as analytics:
            extractor = analytics.create_instance(
                "features", "onnx", [BANK], policy=FEATURES_POLICY
            )
            extractor.validate_attestation(features_policy)
            extractor.set_secret(Secret())
            extractor.upload_model(feature_model())

        # The feature clean room's operator wires the stage to the scoring instance.
        pipeline = Pipeline(features.service)
        features.service.compose_runner = pipeline.compose
        pipeline.add_stage(
            extractor.id, Downstream(scoring.url, scorer.id, scoring_policy, STAGE, PASSWORD)
        )
        try:
            # The bank verifies the first hop, sends raw cash flows, and checks the chain.
            with _party(features.url, features_policy, BANK) as bank:
                instance = bank.get_instance(extractor.id)
                first_hop = instance.validate_attestation(features_policy)
                instance.set_secret(Secret())
                outputs = instance.predict({"cashflows": sample_cashflows()})
        finally:
            pipeline.close()
    chain = str(outputs[CHAIN_OUTPUT].reshape(-1)[0])
    downstream = verify_chain(chain, scoring_policy)
    return Outcome(np.asarray(outputs["score"]), first_hop, downstream, chain)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        outcome = run(args.work_dir or Path(scratch))
    print("scores:", outcome.scores.reshape(-1).round(4).tolist())
    print("first hop measurement:", outcome.first_hop.measurement.hex())
    print("downstream measurement:", outcome.downstream.measurement.hex())
    print("both SIMULATED: no confidentiality, development only")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
