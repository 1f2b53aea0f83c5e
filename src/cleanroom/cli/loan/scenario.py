"""The lending scenario end to end, told party by party, against a running clean room."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from cleanroom.attestation import AttestationPolicy
from cleanroom.cli.loan.consent import ConsentManager
from cleanroom.cli.loan.features import FEATURES
from cleanroom.cli.loan.parties import (
    BANK_ANALYST,
    BANK_UNDERWRITER,
    CONSENT_MANAGER_ID,
    LENDER,
    Application,
    train_lender_model,
)
from cleanroom.cli.loan.policy import render_policy
from cleanroom.cli.loan.statements import generate_borrowers
from cleanroom.client import Client, Instance, Secret
from cleanroom.errors import Conflict, LogIntegrityError, PolicyDenied, PolicyViolation
from cleanroom.policy import policy_digest, verify_receipt
from cleanroom.wire.formats import ModelFormat

__all__ = ["Outcome", "run_scenario"]

Say = Callable[[str, str], None]


@dataclass(frozen=True)
class Outcome:
    decision: int
    score: float
    receipt_seq: int
    refusals: dict[str, str]
    """What was tried and refused, with the policy's reason."""


def run_scenario(
    url: str,
    attestation: AttestationPolicy,
    *,
    passwords: Callable[[str], str],
    say: Say,
    applicant_seed: int = 7,
    history: int = 600,
) -> Outcome:
    """Run the story: train, publish, attest, consent, score, and the refusals that matter.

    Parties sign up on first use and sign in with ``passwords(email)`` after;
    *history* is the number of past borrowers the lender trains on.
    """
    manager = ConsentManager.generate(CONSENT_MANAGER_ID)
    say("cm", f"consent manager {CONSENT_MANAGER_ID} publishes its ES256 key {manager.key_id}")
    policy = render_policy(manager.public_key_pem)
    say("both", f"the agreed policy pins that key; its digest is {policy_digest(policy)[:23]}…")

    trained = train_lender_model(borrowers=history)
    say(
        "lender",
        f"trained on {trained.training_rows} past borrowers' statements "
        f"(default rate {trained.default_rate:.0%}); hold-out AUC {trained.holdout_auc:.2f}",
    )

    lender = _signed_in(url, LENDER, passwords)
    bank = _signed_in(url, BANK_ANALYST, passwords)
    _signed_in(url, BANK_UNDERWRITER, passwords).close()
    try:
        inst = lender.create_instance(
            "CashFlowCredit", ModelFormat.ONNX, [BANK_ANALYST, BANK_UNDERWRITER], policy=policy
        )
        inst.validate_attestation(attestation)
        inst.set_secret(Secret())
        inst.upload_model(trained.onnx)
        say("lender", f"instance {inst.id}: attested, model sealed and uploaded")

        mine = bank.get_instance(inst.id)
        mine.validate_attestation(attestation)
        if mine.policy_digest != policy_digest(policy) or mine.policy() != policy:
            raise PolicyViolation("the clean room runs another policy than the one agreed")
        mine.set_secret(Secret())
        say("bank", "attestation verified; the attested policy is the agreed one, key pinned")

        applicant = generate_borrowers(1, seed=applicant_seed)[0]
        now = int(time.time())
        application = Application.make(applicant, manager, now=now)
        say("cm", f"{applicant.customer_id} consents: purpose 105, one hour, this statement")
        shown = ", ".join(
            f"{n}={v:.2f}"
            for n, v in zip(FEATURES, application.features["features"][0], strict=True)
        )
        say("bank", f"features computed at the bank: {shown}")
        outputs = mine.predict(application.features, context=application.context)
        decision = int(outputs["decision"][0, 0])
        score = float(outputs["score"][0, 0])
        receipt, config = mine.last_receipt, mine.attested_config
        if receipt is None or config is None:
            raise LogIntegrityError("the clean room returned no receipt")
        entry = verify_receipt(receipt, str(config["keys"]["signing"]))
        say("bank", f"decision={'approve' if decision else 'decline'} score={score:.1f}")
        say("bank", f"receipt #{entry.seq} verified offline: {entry.decision} under the policy")

        refusals = {
            "the lender scores the bank's data itself": _refused(
                lambda: inst.predict(application.features, context=application.context)
            ),
            "the bank asks without a consent": _refused(lambda: mine.predict(application.features)),
            "the bank reuses an expired consent": _refused(
                lambda: _predict(mine, Application.make(applicant, manager, now=now - 7200))
            ),
        }
        for what, reason in refusals.items():
            say("gate", f"refused — {what}: {reason}")

        log = inst.usage_log()
        seen = [(e["party"], e["action"], e["decision"]) for e in log["entries"]]
        say("lender", f"usage log ({len(seen)} entries): who asked and the verdicts, never data")
        return Outcome(decision, score, entry.seq, refusals)
    finally:
        lender.close()
        bank.close()


def _signed_in(url: str, email: str, passwords: Callable[[str], str]) -> Client:
    client = Client(url)
    with contextlib.suppress(Conflict):  # signed up in an earlier run on the same data dir
        client.sign_up(email, passwords(email))
    client.sign_in(email, passwords(email))
    return client


def _predict(instance: Instance, application: Application) -> None:
    instance.predict(application.features, context=application.context)


def _refused(attempt: Callable[[], object]) -> str:
    try:
        attempt()
    except PolicyDenied as exc:
        return exc.message
    raise PolicyViolation("the clean room let through a request its policy must refuse")
