"""The cash-flow lending scenario against the real clean room.

A lender's credit model scores a bank's customer under a consent artefact
signed by a consent manager whose key the attested policy pins. The happy path
must work and verify offline; every way around the consent, the allow-list,
the query cap and the output restriction must be refused with its reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tests.conftest import PASSWORD

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.cli.loan import (
    BANK_ANALYST,
    BANK_UNDERWRITER,
    CONSENT_MANAGER_ID,
    FEATURES,
    LENDER,
    Application,
    Borrower,
    ConsentManager,
    TrainedModel,
    cash_flow_features,
    consent_terms,
    fi_data_range,
    generate_borrowers,
    policy_template,
    render_policy,
    train_lender_model,
)
from cleanroom.cli.loan.scenario import run_scenario
from cleanroom.cli.loan.statements import BOUNCE_NARRATION
from cleanroom.client.instance import Instance
from cleanroom.errors import (
    AccessDenied,
    ConfigurationError,
    LogIntegrityError,
    PolicyDenied,
)
from cleanroom.policy import (
    InstanceInfo,
    PolicyBundle,
    egress_input,
    ingress_input,
    policy_digest,
    verify_receipt,
)
from cleanroom.server.runner import ServerThread

Party = Callable[[str], Client]

INTERN = "intern@bank.example"
"""Named on the instance by the lender, but not one of the policy's bank users."""
STRANGER = "someone@elsewhere.example"


@dataclass(frozen=True)
class Lending:
    manager: ConsentManager
    policy: str
    trained: TrainedModel
    lender: Instance
    bank: Instance
    applicants: list[Borrower]


def _open(party: Party, email: str, inst_id: str, attestation: AttestationPolicy) -> Instance:
    inst = party(email).get_instance(inst_id)
    inst.validate_attestation(attestation)
    inst.set_secret(Secret())
    return inst


def _create(party: Party, attestation: AttestationPolicy, policy: str, model: bytes) -> Instance:
    inst = party(LENDER).create_instance(
        "CashFlowCredit",
        ModelFormat.ONNX,
        [BANK_ANALYST, BANK_UNDERWRITER, INTERN],
        policy=policy,
    )
    inst.validate_attestation(attestation)
    inst.set_secret(Secret())
    inst.upload_model(model)
    return inst


@pytest.fixture(scope="module")
def lending(party: Party, policy: AttestationPolicy) -> Lending:
    manager = ConsentManager.generate(CONSENT_MANAGER_ID)
    rego = render_policy(manager.public_key_pem)
    trained = train_lender_model(borrowers=160, seed=11)
    lender = _create(party, policy, rego, trained.onnx)
    bank = _open(party, BANK_ANALYST, lender.id, policy)
    return Lending(manager, rego, trained, lender, bank, generate_borrowers(4, seed=99))


def _now() -> int:
    return int(time.time())


# ------------------------------------------------------------------ happy path


def test_bank_user_with_consent_gets_a_coarse_score_and_a_verifiable_receipt(
    lending: Lending,
) -> None:
    bank = lending.bank
    # The bank checks that the attested policy is the agreed one, with the
    # consent manager's key pinned, before it sends anything.
    assert bank.policy_digest == policy_digest(lending.policy)
    assert bank.policy() == lending.policy
    assert lending.manager.public_key_pem.strip() in bank.policy()

    application = Application.make(lending.applicants[0], lending.manager, now=_now())
    outputs = bank.predict(application.features, context=application.context)

    assert sorted(outputs) == ["decision", "score"]
    assert outputs["score"].shape == (1, 1)
    assert outputs["decision"].shape == (1, 1)
    exact = float(lending.trained.model.score(application.features["features"])[0])
    score = float(outputs["score"][0, 0])
    # Shaped: rounded to one decimal inside the clean room, never the raw score.
    assert score == pytest.approx(round(exact, 1), abs=1e-6)
    assert int(outputs["decision"][0, 0]) == int(exact >= lending.trained.model.threshold)

    receipt = bank.last_receipt
    config = bank.attested_config
    assert receipt is not None
    assert config is not None
    key = str(config["keys"]["signing"])
    entry = verify_receipt(receipt, key)
    assert (entry.decision, entry.party, entry.action) == ("allow", BANK_ANALYST, "predict")
    assert entry.policy_digest == policy_digest(lending.policy)

    forged = json.loads(json.dumps(receipt))
    forged["entry"]["party"] = LENDER
    with pytest.raises(LogIntegrityError):
        verify_receipt(forged, key)


def test_the_lender_sees_verdicts_but_never_the_consent_or_the_data(lending: Lending) -> None:
    application = Application.make(lending.applicants[1], lending.manager, now=_now())
    with pytest.raises(PolicyDenied):
        lending.bank.predict(application.features)  # no consent: refused and logged
    log = lending.lender.usage_log()
    text = json.dumps(log)
    ours = [e for e in log["entries"] if e["instance_id"] == lending.lender.id]
    assert {e["party"] for e in ours} >= {LENDER, BANK_ANALYST}
    assert any(e["decision"] == "deny" for e in ours)
    assert application.consent not in text
    assert application.borrower.customer_id not in text


# ------------------------------------------------------------------ refusals at ingress


def _segment(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def _terms(lending: Lending, now: int, **changes: Any) -> Application:
    return Application.make(lending.applicants[2], lending.manager, now=now, **changes)


def _with_consent(app: Application, consent: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return app.features, {**app.context, "consent": consent}


def _forged(lending: Lending, now: int) -> tuple[dict[str, Any], dict[str, Any]]:
    impostor = ConsentManager.generate(CONSENT_MANAGER_ID)
    app = Application.make(lending.applicants[2], impostor, now=now)
    return app.features, app.context


def _other_issuer(lending: Lending, now: int) -> tuple[dict[str, Any], dict[str, Any]]:
    # The pinned key, but another issuer name: both must match.
    other = ConsentManager.from_pem("other-cm.example", lending.manager.private_key_pem())
    app = Application.make(lending.applicants[2], other, now=now)
    return app.features, app.context


def _tampered(lending: Lending, now: int) -> tuple[dict[str, Any], dict[str, Any]]:
    # A genuine signature over other claims: widen the purpose after signing.
    app = _terms(lending, now)
    header, _payload, signature = app.consent.split(".")
    claims = _claims(app.consent)
    claims["Purpose"]["code"] = "101"
    claims["exp"] = now + 10**7
    return _with_consent(app, f"{header}.{_segment(claims)}.{signature}")


def _alg_none(lending: Lending, now: int) -> tuple[dict[str, Any], dict[str, Any]]:
    app = _terms(lending, now)
    token = f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(_claims(app.consent))}."
    return _with_consent(app, token)


def _hs256_with_public_key(lending: Lending, now: int) -> tuple[dict[str, Any], dict[str, Any]]:
    # Algorithm confusion: an HMAC "signature" keyed with the public key PEM.
    app = _terms(lending, now)
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT'})}.{_segment(_claims(app.consent))}"
    mac = hmac.new(
        lending.manager.public_key_pem.encode(), signing_input.encode(), hashlib.sha256
    ).digest()
    signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    return _with_consent(app, f"{signing_input}.{signature}")


def _range(lending: Lending, now: int, **edit: str) -> tuple[dict[str, Any], dict[str, Any]]:
    app = _terms(lending, now)
    context = app.context
    context["FIDataRange"] = {**context["FIDataRange"], **edit}
    return app.features, context


def _narrow_consent(lending: Lending, now: int) -> tuple[dict[str, Any], dict[str, Any]]:
    # The consent covers the last month only; the features use six months.
    borrower = lending.applicants[2]
    fi_to = fi_data_range(borrower.fi)[1]
    app = Application.make(borrower, lending.manager, now=now, fi_from="2025-09-01T00:00:00Z")
    assert consent_terms(borrower, now=now).fi_to == fi_to
    return app.features, app.context


def _plain(app: Application) -> tuple[dict[str, Any], dict[str, Any]]:
    return app.features, app.context


Attempt = Callable[[Lending, int], tuple[dict[str, Any], dict[str, Any]]]

INGRESS_REFUSALS: list[tuple[str, str, Attempt, str]] = [
    # (name, caller, what is sent, expected reason)
    (
        "no consent",
        BANK_ANALYST,
        lambda lg, now: (_terms(lg, now).features, {}),
        "no consent artefact",
    ),
    (
        "consent not a string",
        BANK_ANALYST,
        lambda lg, now: _with_consent(_terms(lg, now), _claims(_terms(lg, now).consent)),
        "no consent artefact",
    ),
    (
        "consent not a JWS",
        BANK_ANALYST,
        lambda lg, now: _with_consent(_terms(lg, now), "I agree"),
        "not a compact JWS",
    ),
    ("forged: signed by another key", BANK_ANALYST, _forged, "not signed by the pinned"),
    ("claims changed after signing", BANK_ANALYST, _tampered, "not signed by the pinned"),
    ("alg none", BANK_ANALYST, _alg_none, "not a compact JWS"),
    ("HS256 keyed with the public key", BANK_ANALYST, _hs256_with_public_key, "not signed"),
    ("issued under another name", BANK_ANALYST, _other_issuer, "trusted consent manager"),
    (
        "expired",
        BANK_ANALYST,
        lambda lg, now: _plain(_terms(lg, now, not_before=now - 7200, expires=now - 1)),
        "the consent has expired",
    ),
    (
        "not yet in force",
        BANK_ANALYST,
        lambda lg, now: _plain(_terms(lg, now, not_before=now + 3600, expires=now + 7200)),
        "not in force yet",
    ),
    (
        "wrong purpose",
        BANK_ANALYST,
        lambda lg, now: _plain(
            _terms(lg, now, purpose={"code": "101", "text": "Wealth management service"})
        ),
        "purpose is not code 105",
    ),
    (
        "consent given to another lender",
        BANK_ANALYST,
        lambda lg, now: _plain(_terms(lg, now, data_consumer_id="OTHER-FIU")),
        "another data consumer",
    ),
    (
        "account at another bank",
        BANK_ANALYST,
        lambda lg, now: _plain(_terms(lg, now, fip_id="OTHERBANK-FIP")),
        "deposit account at the caller's bank",
    ),
    (
        "data before the consented range",
        BANK_ANALYST,
        lambda lg, now: _range(lg, now, **{"from": "2024-01-01T00:00:00Z"}),
        "outside the consented FIDataRange",
    ),
    (
        "data after the consented range",
        BANK_ANALYST,
        lambda lg, now: _range(lg, now, to="2026-01-01T00:00:00+05:30"),
        "outside the consented FIDataRange",
    ),
    (
        "data range not an RFC 3339 instant",
        BANK_ANALYST,
        lambda lg, now: _range(lg, now, to="30/09/2025"),
        "outside the consented FIDataRange",
    ),
    (
        "data range undeclared",
        BANK_ANALYST,
        lambda lg, now: (
            _terms(lg, now).features,
            {"consent": _terms(lg, now).consent},
        ),
        "outside the consented FIDataRange",
    ),
    ("consent narrower than the data", BANK_ANALYST, _narrow_consent, "outside the consented"),
    (
        "a batch instead of one applicant",
        BANK_ANALYST,
        lambda lg, now: (
            {"features": np.repeat(_terms(lg, now).features["features"], 2, axis=0)},
            _terms(lg, now).context,
        ),
        "one float32 row",
    ),
    (
        "float64 features",
        BANK_ANALYST,
        lambda lg, now: (
            {"features": _terms(lg, now).features["features"].astype(np.float64)},
            _terms(lg, now).context,
        ),
        "one float32 row",
    ),
    (
        "the lender scores the bank's data itself",
        LENDER,
        lambda lg, now: _plain(_terms(lg, now)),
        "only the bank's named users",
    ),
    (
        "a user named on the instance but not in the policy",
        INTERN,
        lambda lg, now: _plain(_terms(lg, now)),
        "only the bank's named users",
    ),
]


@pytest.fixture(scope="module")
def callers(lending: Lending, party: Party, policy: AttestationPolicy) -> dict[str, Instance]:
    return {
        BANK_ANALYST: lending.bank,
        LENDER: lending.lender,
        INTERN: _open(party, INTERN, lending.lender.id, policy),
    }


@pytest.mark.parametrize(
    ("caller", "attempt", "reason"),
    [pytest.param(c, a, r, id=name) for name, c, a, r in INGRESS_REFUSALS],
)
def test_ingress_refusals(
    lending: Lending, callers: dict[str, Instance], caller: str, attempt: Attempt, reason: str
) -> None:
    inputs, context = attempt(lending, _now())
    inst = callers[caller]
    with pytest.raises(PolicyDenied, match=reason):
        inst.predict(inputs, context=context)
    # Every refusal is in the decision log, with its reason.
    last = inst.usage_log()["entries"][-1]
    assert (last["party"], last["action"], last["decision"]) == (caller, "predict", "deny")
    assert re.search(reason, last["reason"])


def test_a_stranger_cannot_reach_the_instance(lending: Lending, party: Party) -> None:
    with pytest.raises(AccessDenied):
        party(STRANGER).get_instance(lending.lender.id)


def test_the_query_cap_holds_per_user(
    lending: Lending, party: Party, policy: AttestationPolicy
) -> None:
    underwriter = _open(party, BANK_UNDERWRITER, lending.lender.id, policy)
    for _ in range(3):  # max_queries in the policy
        app = Application.make(lending.applicants[3], lending.manager, now=_now())
        assert sorted(underwriter.predict(app.features, context=app.context)) == [
            "decision",
            "score",
        ]
    fresh = Application.make(lending.applicants[3], lending.manager, now=_now())
    with pytest.raises(PolicyDenied, match="query budget is exhausted"):
        underwriter.predict(fresh.features, context=fresh.context)


# ------------------------------------------------------------------ refusals at egress


def _graph_model(nodes: list[onnx.NodeProto], outputs: list[onnx.ValueInfoProto]) -> bytes:
    graph = helper.make_graph(
        nodes=nodes,
        name="variant",
        inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 8])],
        outputs=outputs,
        initializer=[
            numpy_helper.from_array(np.ones((8, 1), dtype=np.float32) / 1000.0, "w"),
            numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


_SCORE = [
    helper.make_node("MatMul", ["features", "w"], ["z"]),
    helper.make_node("Sigmoid", ["z"], ["score"]),
    helper.make_node("GreaterOrEqual", ["score", "half"], ["ok"]),
    helper.make_node("Cast", ["ok"], ["decision"], to=TensorProto.INT64),
]
_OUT = [
    helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1]),
    helper.make_tensor_value_info("decision", TensorProto.INT64, ["N", 1]),
]

EGRESS_REFUSALS: list[tuple[str, bytes, str]] = [
    # (name, the model the lender uploads, expected reason)
    (
        "an extra output echoing the features",
        _graph_model(
            [*_SCORE, helper.make_node("Identity", ["features"], ["echo"])],
            [*_OUT, helper.make_tensor_value_info("echo", TensorProto.FLOAT, ["N", 8])],
        ),
        "only the decision and the score may leave",
    ),
    (
        "the raw logit as the score",
        _graph_model(
            [
                helper.make_node("ReduceSum", ["features"], ["score"], keepdims=1),
                helper.make_node("Greater", ["score", "half"], ["ok"]),
                helper.make_node("Cast", ["ok"], ["decision"], to=TensorProto.INT64),
            ],
            _OUT,
        ),
        "must be single values in range",
    ),
]


@pytest.mark.parametrize(
    ("model", "reason"), [pytest.param(m, r, id=name) for name, m, r in EGRESS_REFUSALS]
)
def test_egress_refusals(
    lending: Lending, party: Party, policy: AttestationPolicy, model: bytes, reason: str
) -> None:
    inst = _create(party, policy, lending.policy, model)
    bank = _open(party, BANK_ANALYST, inst.id, policy)
    app = Application.make(lending.applicants[0], lending.manager, now=_now())
    with pytest.raises(PolicyDenied, match=reason):
        bank.predict(app.features, context=app.context)
    entries = inst.usage_log()["entries"]
    assert (entries[-1]["party"], entries[-1]["decision"]) == (BANK_ANALYST, "deny")


# ------------------------------------------------------------------ the policy itself, offline

INFO = InstanceInfo(id="loan", owner=LENDER, users=[BANK_ANALYST, BANK_UNDERWRITER])


def _ingress(bundle: PolicyBundle, app: Application, now_ns: int) -> bool:
    doc = ingress_input(
        action="predict",
        user=BANK_ANALYST,
        instance=INFO,
        queries=0,
        inputs=app.features,
        context=app.context,
        model_digest="sha256:" + "0" * 64,
        now_ns=now_ns,
    )
    return bundle.evaluate_ingress(doc).allowed


def test_consent_validity_window_is_inclusive_of_nbf_and_exclusive_of_exp(
    lending: Lending,
) -> None:
    bundle = PolicyBundle.compile(lending.policy)
    now = _now()
    app = Application.make(lending.applicants[0], lending.manager, now=now)
    terms = consent_terms(lending.applicants[0], now=now)
    second = 1_000_000_000
    assert not _ingress(bundle, app, terms.not_before * second - 1)
    assert _ingress(bundle, app, terms.not_before * second)
    assert _ingress(bundle, app, terms.expires * second - 1)
    assert not _ingress(bundle, app, terms.expires * second)


def test_the_unrendered_template_admits_nothing(lending: Lending) -> None:
    bundle = PolicyBundle.compile(policy_template())
    app = Application.make(lending.applicants[0], lending.manager, now=_now())
    assert not _ingress(bundle, app, time.time_ns())


def test_the_score_is_shaped_and_bounded_by_the_policy(lending: Lending) -> None:
    bundle = PolicyBundle.compile(lending.policy)
    app = Application.make(lending.applicants[0], lending.manager, now=_now())

    def egress(score: float) -> bool:
        outputs = bundle.shaping.apply(
            {
                "decision": np.array([[1]], dtype=np.int64),
                "score": np.array([[score]], dtype=np.float32),
            }
        )
        doc = egress_input(
            action="predict",
            user=BANK_ANALYST,
            instance=INFO,
            queries=0,
            inputs=app.features,
            outputs=outputs,
            context=app.context,
            model_digest="sha256:" + "0" * 64,
        )
        return bundle.evaluate_egress(doc).allowed

    assert bundle.shaping.apply({"score": np.array([[0.7349]], dtype=np.float32)})[
        "score"
    ] == pytest.approx(0.7)
    assert egress(0.0)
    assert egress(1.0)
    assert not egress(1.2)
    assert not egress(-0.2)
    assert not egress(float("nan"))


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("not a key", id="text"),
        pytest.param("-----BEGIN PUBLIC KEY-----\nab`c\n-----END PUBLIC KEY-----\n", id="backtick"),
        pytest.param(
            "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n", id="private-key"
        ),
    ],
)
def test_render_policy_refuses_anything_but_a_public_key_pem(key: str) -> None:
    with pytest.raises(ConfigurationError):
        render_policy(key)


def test_features_and_exported_model_agree_with_the_reference(lending: Lending) -> None:
    import onnxruntime as ort

    rows = np.stack(
        [
            Application.make(b, lending.manager, now=0).features["features"][0]
            for b in lending.applicants
        ]
    )
    assert rows.shape == (len(lending.applicants), len(FEATURES))
    assert np.isfinite(rows).all()
    session = ort.InferenceSession(lending.trained.onnx, providers=["CPUExecutionProvider"])
    score, decision = session.run(["score", "decision"], {"features": rows})
    reference = lending.trained.model.score(rows)
    np.testing.assert_allclose(score[:, 0], reference, atol=1e-5)
    np.testing.assert_array_equal(decision[:, 0], reference >= lending.trained.model.threshold)
    assert lending.trained.holdout_auc > 0.6


def test_consent_claims_follow_the_terms(lending: Lending) -> None:
    now = _now()
    terms = replace(consent_terms(lending.applicants[0], now=now), consent_id="consent-42")
    claims = _claims(lending.manager.issue(terms, issued_at=now))
    assert claims["iss"] == CONSENT_MANAGER_ID
    assert claims["consentId"] == "consent-42"
    assert (claims["nbf"], claims["exp"]) == (terms.not_before, terms.expires)
    assert claims["FIDataRange"] == {"from": terms.fi_from, "to": terms.fi_to}
    with pytest.raises(ConfigurationError):
        lending.manager.issue(replace(terms, expires=terms.not_before), issued_at=now)


def test_the_demo_scenario_runs_end_to_end(
    server: ServerThread, policy: AttestationPolicy, lending: Lending
) -> None:
    """What ``cleanroom demo loan`` runs, on this server (the parties already exist here)."""
    said: list[tuple[str, str]] = []
    outcome = run_scenario(
        server.url,
        policy,
        passwords=lambda _email: PASSWORD,
        say=lambda party, text: said.append((party, text)),
        history=160,
    )
    assert outcome.decision in (0, 1)
    assert 0.0 <= outcome.score <= 1.0
    assert round(outcome.score, 1) == pytest.approx(outcome.score, abs=1e-6)
    assert outcome.refusals == {
        "the lender scores the bank's data itself": "only the bank's named users may ask "
        "for a score",
        "the bank asks without a consent": "no consent artefact in the request context",
        "the bank reuses an expired consent": "the consent has expired",
    }
    assert any(party == "bank" and "receipt" in text for party, text in said)


def _txn(kind: str, amount: float, balance: float, when: str, narration: str) -> dict[str, Any]:
    return {
        "type": kind,
        "mode": "FT",
        "amount": f"{amount:.2f}",
        "currentBalance": f"{balance:.2f}",
        "transactionTimestamp": when,
        "valueDate": when[:10],
        "narration": narration,
    }


def _statement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Account": {"Transactions": {"Transaction": rows}}}


def test_cash_flow_features_of_a_hand_made_statement() -> None:
    rows = [
        # Out of order on purpose: features follow transactionTimestamp.
        _txn("DEBIT", 20000, 40000, "2025-04-10T10:00:00+05:30", "IMPS RENT"),
        _txn("CREDIT", 50000, 60000, "2025-04-01T09:00:00+05:30", "NEFT SALARY"),
        _txn("DEBIT", 590, 39410, "2025-04-20T10:00:00+05:30", BOUNCE_NARRATION),
        _txn("CREDIT", 30000, 69410, "2025-05-01T09:00:00+05:30", "NEFT SALARY"),
        _txn("DEBIT", 45000, 24410, "2025-05-15T10:00:00+05:30", "UPI ONLINE RETAIL"),
    ]
    got = dict(zip(FEATURES, cash_flow_features(_statement(rows)).tolist(), strict=True))
    expected = {
        "monthly_inflow_k": 40.0,
        "monthly_outflow_k": 32.795,
        "net_flow_ratio": (80000 - 65590) / 80000,
        "average_balance_k": 31.91,
        "minimum_balance_k": 24.41,
        "inflow_volatility": 0.25,
        "bounced_debits": 1.0,
        "deficit_months": 0.5,
    }
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({}, id="not an FI document"),
        pytest.param(_statement([]), id="no transactions"),
        pytest.param(
            _statement([_txn("REVERSAL", 1, 1, "2025-04-01T09:00:00+05:30", "X")]),
            id="unknown transaction type",
        ),
    ],
)
def test_cash_flow_features_refuse_what_is_not_a_statement(document: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"statement|FI document|transaction"):
        cash_flow_features(document)


def test_generated_statements_are_reproducible_and_consistent() -> None:
    first, again = generate_borrowers(3, seed=5), generate_borrowers(3, seed=5)
    assert [b.fi for b in first] == [b.fi for b in again]
    for borrower in first:
        rows = borrower.fi["Account"]["Transactions"]["Transaction"]
        assert {r["type"] for r in rows} <= {"CREDIT", "DEBIT"}
        # Every running balance follows from the previous one and the amount.
        balance = float(rows[0]["currentBalance"]) - (
            float(rows[0]["amount"]) * (1 if rows[0]["type"] == "CREDIT" else -1)
        )
        for r in rows:
            balance += float(r["amount"]) * (1 if r["type"] == "CREDIT" else -1)
            assert float(r["currentBalance"]) == pytest.approx(balance, abs=0.011)
        assert borrower.fi["Account"]["Summary"]["currentBalance"] == rows[-1]["currentBalance"]
