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
    time_attestation,
)
from benchmarks.inference.interleave import concurrent_throughput, interleaved
from benchmarks.inference.measure import (
    summary,
    tree_peak_rss_bytes,
    tree_reset_peak_rss,
    tree_rss_bytes,
)
from benchmarks.inference.processes import BareProcess, CleanroomServer, PlainServer, snapshot_code
from benchmarks.inference.sandbox_cost import measure_sandbox
from benchmarks.inference.service_cost import measure_fixed_cost
from benchmarks.inference.workload import example_input

from cleanroom.runtime.base import RuntimeLimits
from cleanroom.runtime.sandbox.supervisor import Supervisor

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


def _model(
    plan: Plan,
    key: str,
    work: Path,
    code: Path,
    logs: Path,
    supervisor: Supervisor,
    say: Callable[[str], None],
) -> dict[str, Any]:
    built = build_model(key, plan.scale)
    path = work / f"{key}.onnx"
    data = built.model.SerializeToString()
    path.write_bytes(data)
    result: dict[str, Any] = {
        "key": key,
        "name": built.name,
        "parameters": built.parameters,
        "size_bytes": len(data),
    }
    del built
    gc.collect()
    say(f"{key}: {result['parameters'] / 1e6:.2f} M parameters, {len(data) / 1e6:.1f} MB")
    x = example_input()

    # The bare load is timed alone; the two servers then start side by side.
    bare = BareProcess(path, logs)
    plain = PlainServer(path, logs)
    server = CleanroomServer(work / f"data-{key}", logs, code)
    plains: list[PlainClient] = []
    rooms: list[CleanroomClient] = []
    try:
        plain.wait_ready()
        server.wait_ready()
        policy = attestation_policy(server)
        before = tree_rss_bytes(server.pid)
        tree_reset_peak_rss(server.pid)
        deployment = deploy(server, path, policy)
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
        plains = [PlainClient(plain.url, x) for _ in range(width)]
        rooms = [CleanroomClient(deployment, x) for _ in range(width)]

        samples = interleaved(
            {"bare": bare.latency, "plain": _timed(plains[0]), "cleanroom": _timed(rooms[0])},
            n=plan.latency_n[key],
            block=plan.block[key],
            warmup=plan.warmup[key],
            seed=plan.seed,
        )
        result["latency"] = {name: summary(s) for name, s in samples.items()}
        med = {name: v["median_ms"] for name, v in result["latency"].items()}
        result["ratios"] = {
            "cleanroom_over_bare": med["cleanroom"] / med["bare"],
            "cleanroom_over_plain": med["cleanroom"] / med["plain"],
            "plain_over_bare": med["plain"] / med["bare"],
        }
        say(f"{key}: latency medians {', '.join(f'{k} {v:.2f} ms' for k, v in med.items())}")

        throughput: dict[str, dict[str, float]] = {}
        for clients in plan.concurrency:
            rates = {
                "bare": _rate(bare.throughput(clients, plan.throughput_s)),
                "plain": _rate(concurrent_throughput(list(plains[:clients]), plan.throughput_s)),
                "cleanroom": _rate(concurrent_throughput(list(rooms[:clients]), plan.throughput_s)),
            }
            throughput[str(clients)] = rates
        result["throughput_rps"] = throughput
        say(f"{key}: throughput {throughput}")
        if key == plan.models[0]:
            att = time_attestation(rooms[0], policy, plan.attestation_n)
            result["attestation"] = {name: summary(s) for name, s in att.items()}
    finally:
        for plain_client in plains:
            plain_client.close()
        for room in rooms:
            room.close()
        server.stop()
        plain.stop()
        bare.close()

    result["sandbox"] = measure_sandbox(
        supervisor,
        data,
        n=plan.latency_n[key],
        block=plan.block[key],
        warmup=plan.warmup[key],
        seed=plan.seed,
    )
    say(f"{key}: sandbox/bare {result['sandbox']['ratio_median']:.3f}")
    path.unlink()
    return result


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
        code = snapshot_code(Path(tmp) / "code")
        supervisor = Supervisor(RuntimeLimits())
        try:
            for key in plan.models:
                models.append(_model(plan, key, Path(tmp), code, logs, supervisor, say))
        finally:
            supervisor.close()
    doc["models"] = models
    for m in models:
        if "attestation" in m:
            doc["attestation"] = m.pop("attestation")
    doc["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return doc
