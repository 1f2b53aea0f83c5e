"""A policy that can call a non-deterministic built-in has no decision remembered.

Such a built-in's result is not a function of the document: a JWT or a
certificate chain verified against the clock (``io.jwt.decode_verify``,
``crypto.x509.parse_and_verify_certificates``), the network (``http.send``,
``net.*``), randomness and identifiers (``rand.*``, ``uuid.*``), the runtime
(``opa.*``), the time (``time.now_ns``). A remembered decision would, for one,
keep allowing a token after it expired. The call counts wherever it is in
the plan, even in a body that the document at hand never reaches.
"""

from __future__ import annotations

import pytest
from tests.policy.documents import ingress_doc

from cleanroom.policy import PolicyBundle

CALLS = [
    ("io.jwt", 'io.jwt.decode_verify(input.context.t, {"secret": "s"})[0]'),
    ("http", 'http.send({"method": "get", "url": input.context.t}).status_code == 200'),
    ("crypto.x509", "count(crypto.x509.parse_and_verify_certificates(input.context.t)) > 0"),
    ("net", "count(net.lookup_ip_addr(input.context.t)) > 0"),
    ("uuid", "uuid.rfc4122(input.context.t) != input.context.t"),
    ("rand", "rand.intn(input.context.t, 10) == 0"),
    ("opa", "opa.runtime().env.X == input.context.t"),
    ("time", "time.now_ns() > 0"),
]


@pytest.mark.parametrize(("name", "call"), CALLS, ids=[c[0] for c in CALLS])
def test_decisions_are_not_remembered(name: str, call: str) -> None:
    bundle = PolicyBundle.compile(
        "package cleanroom\n"
        'allow_ingress if input.context.t == "ok"\n'
        f'allow_ingress if {{ input.context.t == "never"; {call} }}\n'
    )
    # The plan was read (only the field is handed over), and it calls the built-in.
    assert bundle.ingress_reads.paths == {("context", "t")}
    assert not bundle.ingress_reads.deterministic
    for _ in range(2):
        decision = bundle.evaluate_ingress(ingress_doc(context={"t": "ok"}))
        assert (decision.allowed, decision.evaluation_error, decision.cached) == (
            True,
            False,
            False,
        )
