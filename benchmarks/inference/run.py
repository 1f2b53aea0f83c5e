"""The whole benchmark: every model, every variant, one run, one machine."""

from __future__ import annotations

import datetime
import gc
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cryptography
import numpy as np
import onnxruntime as ort
import psutil
from benchmarks.inference.architectures import build_model
from benchmarks.inference.clients import (
    CleanroomClient,
    PlainClient,
    attestation_policy,
    deploy,
    sign_up_parties,
    time_attestation,
    undeploy,
)
from benchmarks.inference.interleave import concurrent_throughput, interleaved
from benchmarks.inference.measure import (
    ratio_interval,
    summary,
    tree_peak_rss_bytes,
    tree_reset_peak_rss,
    tree_rss_bytes,
)
from benchmarks.inference.processes import (
    AnatomyServer,
    BareProcess,
    CleanroomServer,
    PlainServer,
    snapshot_code,
)
from benchmarks.inference.sandbox_cost import measure_sandbox
from benchmarks.inference.service_cost import measure_fixed_cost
from benchmarks.inference.workload import example_input

from cleanroom import AttestationPolicy
from cleanroom.runtime.base import RuntimeLimits
from cleanroom.runtime.sandbox.supervisor import Supervisor
from cleanroom.server.limits import MAX_WORKERS

__all__ = ["FULL", "QUICK", "Plan", "run"]


@dataclass(frozen=True)
class Plan:
    """How much to measure. ``scale`` < 1 builds narrow, shallow models of the same families."""

    mode: str
    scale: float
    models: tuple[str, ...] = ("mobilenet_v2", "resnet50", "vgg19")
    latency_n: dict[str, int] = field(default_factory=dict)
    block: dict[str, int] = field(default_factory=dict)
    warmup: dict[str, int] = field(default_factory=dict)
    concurrency: tuple[int, ...] = (1, 2, 4)
    throughput_s: float = 3.0
    fixed_n: int = 500
    attestation_n: int = 30
    settle_s: float = 0.3
    seed: int = 2026


FULL = Plan(
    mode="full",
    scale=1.0,
    latency_n={"mobilenet_v2": 400, "resnet50": 90, "vgg19": 30},
    block={"mobilenet_v2": 20, "resnet50": 6, "vgg19": 3},
    warmup={"mobilenet_v2": 20, "resnet50": 5, "vgg19": 2},
    throughput_s=4.0,
    fixed_n=1000,
    attestation_n=30,
)

QUICK = Plan(
    mode="quick",
    scale=0.1,
    latency_n={"mobilenet_v2": 6, "resnet50": 6, "vgg19": 6},
    block={"mobilenet_v2": 3, "resnet50": 3, "vgg19": 3},
    warmup={"mobilenet_v2": 2, "resnet50": 2, "vgg19": 2},
    throughput_s=0.3,
    fixed_n=20,
    attestation_n=3,
    settle_s=0.0,
)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "cryptography": cryptography.__version__,
        "load_average_at_start": list(os.getloadavg()),
    }


def _timed(call: Callable[[], None]) -> Callable[[int], list[float]]:
    def sample(n: int) -> list[float]:
        out = []
        for _ in range(n):
            start = time.perf_counter()
            call()
            out.append((time.perf_counter() - start) * 1000)
        return out

    return sample


def _rate(result: dict[str, float]) -> float:
    return result["requests"] / result["seconds"]


def per_core_limits() -> dict[str, int]:
    """The instance limits that spend the runtime's thread budget on concurrent requests.

    ONNX Runtime's default is one intra-op thread per physical core, all working on
    one request; here each core gets a worker of its own with one thread, so
    concurrent requests run side by side instead of queueing for one worker (at most
    the service's ceiling of workers per instance).
    """
    cores = psutil.cpu_count(logical=False) or 1
    return {"workers": min(cores, MAX_WORKERS), "intra_op_threads": 1}


@dataclass(frozen=True)
class _Built:
    key: str
    name: str
    parameters: int
    path: Path


def _build(plan: Plan, key: str, work: Path, say: Callable[[str], None]) -> _Built:
    built = build_model(key, plan.scale)
    path = work / f"{key}.onnx"
    path.write_bytes(built.model.SerializeToString())
    model = _Built(key, built.name, built.parameters, path)
    del built
    gc.collect()
    say(f"{key}: {model.parameters / 1e6:.2f} M parameters, {path.stat().st_size / 1e6:.1f} MB")
    return model


def _model(
    plan: Plan,
    model: _Built,
    plain: PlainServer,
    server: CleanroomServer,
    policy: AttestationPolicy,
    logs: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    key = model.key
    result: dict[str, Any] = {
        "key": key,
        "name": model.name,
        "parameters": model.parameters,
        "size_bytes": model.path.stat().st_size,
    }
    x = example_input()
    # A fresh process: the bare load is timed (and its peak memory read) alone.
    bare = BareProcess(model.path, logs)
    plains: list[PlainClient] = []
    rooms: list[CleanroomClient] = []
    rooms_per_core: list[CleanroomClient] = []
    deployment = per_core = None
    try:
        before = tree_rss_bytes(server.pid)
        tree_reset_peak_rss(server.pid)
        deployment = deploy(server, model.path, policy)
        peak = tree_peak_rss_bytes(server.pid)
        result["load"] = {
            "bare": {
                "seconds": bare.load["load_s"],
                "baseline_rss_bytes": bare.load["baseline_rss_bytes"],
                "peak_rss_bytes": bare.load["peak_rss_bytes"],
            },
            "cleanroom": {
                "seconds": deployment.upload_s,
                "baseline_rss_bytes": before,
                "peak_rss_bytes": peak,
            },
        }
        loaded = f"bare {bare.load['load_s']:.2f} s, cleanroom {deployment.upload_s:.2f} s"
        say(f"{key}: loaded ({loaded})")
        width = max(plan.concurrency)
        plains = [PlainClient(plain.url, key, x) for _ in range(width)]
        rooms = [CleanroomClient(deployment, x) for _ in range(width)]

        samples = interleaved(
            {"bare": bare.latency, "plain": _timed(plains[0]), "cleanroom": _timed(rooms[0])},
            n=plan.latency_n[key],
            block=plan.block[key],
            warmup=plan.warmup[key],
            seed=plan.seed,
            settle_s=plan.settle_s,
        )
        result["latency"] = {name: summary(s) for name, s in samples.items()}
        med = {name: v["median_ms"] for name, v in result["latency"].items()}
        result["ratios"] = {
            "cleanroom_over_bare": med["cleanroom"] / med["bare"],
            "cleanroom_over_plain": med["cleanroom"] / med["plain"],
            "plain_over_bare": med["plain"] / med["bare"],
        }
        result["ratio_intervals"] = {
            "cleanroom_over_bare": list(
                ratio_interval(samples["cleanroom"], samples["bare"], seed=plan.seed)
            ),
            "cleanroom_over_plain": list(
                ratio_interval(samples["cleanroom"], samples["plain"], seed=plan.seed)
            ),
        }
        say(f"{key}: latency medians {', '.join(f'{k} {v:.2f} ms' for k, v in med.items())}")

        # The same model in a second instance whose workers split the thread budget
        # (throughput only: its single-request latency is the single-threaded runtime's).
        per_core = deploy(server, model.path, policy, per_core_limits())
        rooms_per_core = [CleanroomClient(per_core, x) for _ in range(width)]
        over_http: dict[str, list[PlainClient] | list[CleanroomClient]] = {
            "plain": plains,
            "cleanroom": rooms,
            "cleanroom_per_core": rooms_per_core,
        }
        throughput: dict[str, dict[str, float]] = {}
        for clients in plan.concurrency:
            # Each pause lets the previous variant's runtime threads stop spinning.
            rates: dict[str, float] = {}
            time.sleep(plan.settle_s)
            rates["bare"] = _rate(bare.throughput(clients, plan.throughput_s))
            for variant, calls in over_http.items():
                time.sleep(plan.settle_s)
                rates[variant] = _rate(
                    concurrent_throughput(list(calls[:clients]), plan.throughput_s)
                )
            throughput[str(clients)] = rates
        result["throughput_rps"] = throughput
        summary_text = "; ".join(
            f"{c} clients: " + ", ".join(f"{k} {v:.1f}/s" for k, v in r.items())
            for c, r in throughput.items()
        )
        say(f"{key}: throughput {summary_text}")
        if key == plan.models[0]:
            att = time_attestation(rooms[0], policy, plan.attestation_n)
            result["attestation"] = {name: summary(s) for name, s in att.items()}
    finally:
        for plain_client in plains:
            plain_client.close()
        for room in rooms + rooms_per_core:
            room.close()
        for deployed in (deployment, per_core):
            if deployed is not None:
                undeploy(deployed)
        bare.close()
    return result


def _anatomy(plan: Plan, model: _Built, work: Path, code: Path, logs: Path) -> dict[str, Any]:
    """One model's confidential request, split into client, HTTP layer, service and runner."""
    server = AnatomyServer(work / "anatomy-data", logs, code)
    try:
        server.wait_ready()
        policy = attestation_policy(server)
        sign_up_parties(server)
        deployment = deploy(server, model.path, policy)
        client = CleanroomClient(deployment, example_input())
        try:
            sample = _timed(client)
            sample(plan.warmup[model.key])
            total = summary(sample(plan.latency_n[model.key]))
        finally:
            client.close()
        spans = server.spans()
    finally:
        server.stop()
    asgi, predict, runner, in_worker = (
        float(spans[k]) for k in ("asgi", "predict", "runner", "in_worker")
    )
    return {
        "model": model.key,
        "client_total": total,
        "median_ms": {
            "client SDK + HTTP on loopback (seal, send, receive, open)": total["median_ms"] - asgi,
            "HTTP layer in the server (authentication, body, receipt header)": asgi - predict,
            "service (open, policies, seal, log, receipt)": predict - runner,
            "hand-off to the sandboxed worker and back": runner - in_worker,
            "inference in the worker": in_worker,
        },
    }


def run(plan: Plan, out_dir: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run *plan*; returns the results document (also what ``report`` writes out)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = out_dir / "logs"
    started = datetime.datetime.now(datetime.UTC)
    doc: dict[str, Any] = {
        "format": "cleanroom-benchmark/1",
        "mode": plan.mode,
        "plan": asdict(plan),
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
    }
    say("fixed per-request cost, in process")
    doc["fixed_cost"] = measure_fixed_cost(plan.fixed_n, warmup=max(5, plan.fixed_n // 20))
    say(f"fixed cost median {doc['fixed_cost']['fixed_median_ms']:.3f} ms")
    models = []
    with tempfile.TemporaryDirectory(prefix="cleanroom-bench-") as tmp:
        work = Path(tmp)
        code = snapshot_code(work / "code")
        built = [_build(plan, key, work, say) for key in plan.models]
        # One plain server and one clean room serve every model in turn (the clean
        # room one instance per model, deleted after it); both start side by side.
        plain = PlainServer([m.path for m in built], logs)
        server = CleanroomServer(work / "data", logs, code)
        try:
            plain.wait_ready()
            server.wait_ready()
            policy = attestation_policy(server)
            sign_up_parties(server)
            for model in built:
                models.append(_model(plan, model, plain, server, policy, logs, say))
        finally:
            server.stop()
            plain.stop()
        doc["anatomy"] = _anatomy(plan, built[0], work, code, logs)
        supervisor = Supervisor(RuntimeLimits())
        try:
            for model, result in zip(built, models, strict=True):
                result["sandbox"] = measure_sandbox(
                    supervisor,
                    model.path.read_bytes(),
                    n=plan.latency_n[model.key],
                    block=plan.block[model.key],
                    warmup=plan.warmup[model.key],
                    seed=plan.seed,
                    settle_s=plan.settle_s,
                )
                sandbox = result["sandbox"]
                say(
                    f"{model.key}: in the sandbox / bare: inference "
                    f"{sandbox['inference_ratio_median']:.3f}, "
                    f"with the hand-off {sandbox['ratio_median']:.3f}"
                )
        finally:
            supervisor.close()
    doc["models"] = models
    for m in models:
        if "attestation" in m:
            doc["attestation"] = m.pop("attestation")
    doc["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return doc
