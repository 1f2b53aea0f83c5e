"""Per-request cost of policy evaluation and of the decision log.

Measures, for the default policy and for a policy with a query budget, an
input schema and output range checks:

* ingress and egress evaluation (``set_input`` + ``query_bundle_entrypoint``
  on a compiled bundle), allowed and denied (a denial also evaluates
  ``deny_reason``);
* building the input documents;
* appending to the decision log and producing a receipt.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/policy_eval.py [-n 2000]``.
Prints medians and percentiles in milliseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
from collections.abc import Callable

import numpy as np
from cryptography.hazmat.primitives.asymmetric import ec

from cleanroom.policy import (
    DEFAULT_POLICY,
    DecisionLog,
    InstanceInfo,
    PolicyBundle,
    content_digest,
    egress_input,
    ingress_input,
)

BUDGET_POLICY = """
package cleanroom

default allow_ingress := false

allow_ingress if {
	input.user in input.instance.users
	input.usage.queries < 1000
	input.request.inputs.x.dtype == "float32"
	input.request.inputs.x.shape == [1, 3, 224, 224]
}

default allow_egress := false

allow_egress if {
	every name in input.response.names { name in {"label", "score"} }
	every v in input.response.outputs.score.values { is_number(v); v >= 0; v <= 1 }
}

deny_reason contains "not a named user" if not input.user in input.instance.users

shaping := {"score": {"round": 2, "clip": [0, 1]}}
"""


def measure(label: str, fn: Callable[[], object], n: int) -> None:
    for _ in range(min(50, n)):
        fn()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000.0)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(
        f"{label:<52} median {statistics.median(samples):7.3f} ms"
        f"  min {samples[0]:7.3f}  p99 {p99:7.3f}  n={n}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="iterations per measurement")
    n = parser.parse_args().n

    instance = InstanceInfo(
        id="inst-1",
        owner="owner@example.com",
        users=[f"user{i}@example.com" for i in range(50)],
    )
    x = np.zeros((1, 3, 224, 224), np.float32)
    outputs = {"label": np.array([281], np.int64), "score": np.array([0.93], np.float32)}
    started = time.perf_counter()
    default = PolicyBundle.compile(DEFAULT_POLICY)
    print(f"compile default policy: {(time.perf_counter() - started) * 1000:.1f} ms (once)")
    budget = PolicyBundle.compile(BUDGET_POLICY)

    def ingress(user: str) -> dict[str, object]:
        return ingress_input(
            action="predict", user=user, instance=instance, queries=12, inputs={"x": x}
        )

    allowed_in, denied_in = ingress("user7@example.com"), ingress("eve@example.com")
    egress = egress_input(
        action="predict",
        user="user7@example.com",
        instance=instance,
        queries=12,
        inputs={"x": x},
        outputs=outputs,
    )

    measure("build ingress document", lambda: ingress("user7@example.com"), n)
    measure(
        "build egress document",
        lambda: egress_input(
            action="predict",
            user="u",
            instance=instance,
            queries=1,
            inputs={"x": x},
            outputs=outputs,
        ),
        n,
    )
    measure("default policy: ingress, allowed", lambda: default.evaluate_ingress(allowed_in), n)
    measure(
        "default policy: ingress, denied (+ deny_reason)",
        lambda: default.evaluate_ingress(denied_in),
        n,
    )
    measure("default policy: egress, allowed", lambda: default.evaluate_egress(egress), n)
    measure("budget policy: ingress, allowed", lambda: budget.evaluate_ingress(allowed_in), n)
    measure("budget policy: egress, allowed", lambda: budget.evaluate_egress(egress), n)
    measure("output shaping (round + clip of one output)", lambda: budget.shaping.apply(outputs), n)
    reported = default.evaluate_ingress(allowed_in).elapsed_ms
    print(f"Decision.elapsed_ms of one default ingress evaluation: {reported:.3f} ms")

    log = DecisionLog(
        sqlite3.connect(":memory:", check_same_thread=False),
        ec.generate_private_key(ec.SECP384R1()),
    )
    digest = content_digest(b"ciphertext")

    def append() -> int:
        return log.append(
            "inst-1", "predict", "user7@example.com", True, None, digest, digest, digest, digest
        ).seq

    measure("decision log: append (in-memory SQLite)", append, n)
    measure("decision log: append + receipt (P-384 signature)", lambda: log.receipt(append()), n)


if __name__ == "__main__":
    main()
