"""The results document as targets, a markdown table and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["markdown", "plot", "targets", "write_all"]

MB = 1e6
VARIANTS = ("bare", "plain", "cleanroom")
LABELS = {"bare": "bare ONNX Runtime", "plain": "plain HTTP server", "cleanroom": "cleanroom"}


def _model(doc: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((m for m in doc["models"] if m["key"] == key), None)


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    rows: list[dict[str, Any]] = []

    def add(
        name: str,
        value: float,
        limit: float,
        at_most: bool = True,
        interval: list[float] | None = None,
    ) -> None:
        met = value <= limit if at_most else value >= limit
        rows.append(
            {
                "target": name,
                "value": value,
                "limit": limit,
                "at_most": at_most,
                "met": met,
                "interval": interval,
            }
        )

    for m in doc["models"]:
        add(
            f"{m['name']}: inference in the sandbox / bare in-process",
            m["sandbox"]["inference_ratio_median"],
            1.02,
            interval=m["sandbox"].get("inference_ratio_interval"),
        )
    add(
        "fixed per-request cost: open + policies + hand-off + seal (ms)",
        doc["fixed_cost"]["core_median_ms"],
        0.6,
    )
    for key, limit in (("mobilenet_v2", 1.15), ("resnet50", 1.03), ("vgg19", 1.03)):
        m = _model(doc, key)
        if m is not None:
            add(
                f"{m['name']}: cleanroom / plain server",
                m["ratios"]["cleanroom_over_plain"],
                limit,
                interval=m.get("ratio_intervals", {}).get("cleanroom_over_plain"),
            )
    for key, limit in (("resnet50", 1.05), ("vgg19", 1.02)):
        m = _model(doc, key)
        if m is not None:
            add(
                f"{m['name']}: cleanroom / bare",
                m["ratios"]["cleanroom_over_bare"],
                limit,
                interval=m.get("ratio_intervals", {}).get("cleanroom_over_bare"),
            )
    vgg = _model(doc, "vgg19")
    if vgg is not None:
        load = vgg["load"]
        bare_delta = load["bare"]["peak_rss_bytes"] - load["bare"]["baseline_rss_bytes"]
        room_delta = load["cleanroom"]["peak_rss_bytes"] - load["cleanroom"]["baseline_rss_bytes"]
        add(
            f"{vgg['name']}: upload+load peak memory / bare load peak", room_delta / bare_delta, 1.0
        )
        add(
            f"{vgg['name']}: upload+load time / bare load time",
            load["cleanroom"]["seconds"] / load["bare"]["seconds"],
            1.0,
        )
    for m in doc["models"]:
        widest = max(m["throughput_rps"], key=int)
        rates = m["throughput_rps"][widest]
        add(
            f"{m['name']}: cleanroom / bare throughput, {widest} clients",
            rates["cleanroom"] / rates["bare"],
            0.9,
            at_most=False,
        )
        if "cleanroom_per_core" in rates:
            add(
                f"{m['name']}: cleanroom, a worker per core / bare throughput, {widest} clients",
                rates["cleanroom_per_core"] / rates["bare"],
                0.9,
                at_most=False,
            )
    return rows


def _ms(summary: dict[str, float]) -> str:
    return f"{summary['median_ms']:.2f} ({summary['p95_ms']:.2f})"


def markdown(doc: dict[str, Any], plot_name: str | None = "latency.png") -> str:
    mach = doc["machine"]
    lines = [
        f"Mode **{doc['mode']}**, {doc['started']} to {doc['finished']}. Machine: {mach['cpu']}, "
        f"{mach['logical_cpus']} logical CPUs, {mach['memory_bytes'] / 2**30:.0f} GiB, "
        f"Linux {mach['kernel']}, Python {mach['python']}, onnxruntime {mach['onnxruntime']}, "
        f"cryptography {mach['cryptography']}; load average at start "
        f"{', '.join(f'{v:.2f}' for v in mach['load_average_at_start'])}.",
        "",
    ]
    if plot_name:
        lines += [f"![End-to-end latency per model]({plot_name})", ""]
    lines += [
        "### Latency, batch 1, one client (median and p95, ms)",
        "",
        "| model | parameters | bare | plain server | cleanroom | cleanroom / bare "
        "| cleanroom / plain | in the sandbox / bare: inference (with hand-off) | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in doc["models"]:
        lat, r = m["latency"], m["ratios"]
        lines.append(
            f"| {m['name']} | {m['parameters'] / 1e6:.2f} M | {_ms(lat['bare'])} | "
            f"{_ms(lat['plain'])} | {_ms(lat['cleanroom'])} | {r['cleanroom_over_bare']:.3f} | "
            f"{r['cleanroom_over_plain']:.3f} | {m['sandbox']['inference_ratio_median']:.3f} "
            f"({m['sandbox']['ratio_median']:.3f}) | "
            f"{int(lat['cleanroom']['n'])} |"
        )
    lines += [
        "",
        "Spread (min, max, interquartile range) in `results.json`.",
        "",
        "### Throughput (requests per second)",
        "",
        "Cleanroom as deployed for the latency above (one worker, the runtime's default "
        "threads), and the same model in an instance with a single-threaded worker per "
        "physical core (`workers` = cores, `intra_op_threads` = 1: the same thread budget, "
        "spent on concurrent requests).",
        "",
        "| model | clients | bare | plain server | cleanroom | cleanroom / bare "
        "| cleanroom, a worker per core | its ratio to bare |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in doc["models"]:
        for clients, rates in m["throughput_rps"].items():
            per_core = rates.get("cleanroom_per_core")
            tail = (
                f"{per_core:.1f} | {per_core / rates['bare']:.2f} |"
                if per_core is not None
                else "n/a | n/a |"
            )
            lines.append(
                f"| {m['name']} | {clients} | {rates['bare']:.1f} | {rates['plain']:.1f} | "
                f"{rates['cleanroom']:.1f} | {rates['cleanroom'] / rates['bare']:.2f} | {tail}"
            )
    lines += [
        "",
        "### Loading a model",
        "",
        "Bare: a fresh process creates an `InferenceSession` from the plaintext file. "
        "Cleanroom: the SDK seals the file and streams it; the server opens, checks, loads and "
        "stores it sealed. Peak = resident-memory high-water mark of the process (for the "
        "server: the sum over the server and its workers); Δ = peak minus the resident memory "
        "before loading.",
        "",
        "| model | file | bare load s | bare peak (Δ) MB | cleanroom upload + load s "
        "| cleanroom peak (Δ) MB |",
        "|---|---|---|---|---|---|",
    ]
    for m in doc["models"]:
        b, c = m["load"]["bare"], m["load"]["cleanroom"]
        lines.append(
            f"| {m['name']} | {m['size_bytes'] / MB:.1f} MB | {b['seconds']:.2f} | "
            f"{b['peak_rss_bytes'] / MB:.0f} "
            f"({(b['peak_rss_bytes'] - b['baseline_rss_bytes']) / MB:.0f}) | "
            f"{c['seconds']:.2f} | {c['peak_rss_bytes'] / MB:.0f} "
            f"({(c['peak_rss_bytes'] - c['baseline_rss_bytes']) / MB:.0f}) |"
        )
    anatomy = doc.get("anatomy")
    if anatomy:
        name = next(m["name"] for m in doc["models"] if m["key"] == anatomy["model"])
        lines += [
            "",
            f"### Anatomy of one confidential {name} request",
            "",
            "A second clean-room server with stopwatches around the HTTP application, "
            "`CleanRoomService.predict` and the model runner, whose worker reports the model's "
            "own run time; the client times the SDK call "
            f"(median {anatomy['client_total']['median_ms']:.2f} ms end to end). Differences of "
            "medians:",
            "",
            "| span | median ms |",
            "|---|---|",
        ]
        for span, ms in anatomy["median_ms"].items():
            lines.append(f"| {span} | {ms:.2f} |")
    fixed = doc["fixed_cost"]
    lines += [
        "",
        "### Fixed per-request cost in the service",
        "",
        f"`CleanRoomService.predict` on a {fixed['input_bytes']:,}-byte input with a model that "
        f"computes next to nothing: median {fixed['service_predict']['median_ms']:.3f} ms "
        f"(p95 {fixed['service_predict']['p95_ms']:.3f}), of which the model's own run "
        f"{fixed['model_bare']['median_ms']:.3f} ms: **{fixed['fixed_median_ms']:.3f} ms** "
        "fixed cost per request. Of that, opening, both policy checks, the hand-off to the "
        f"worker and sealing (the issue's definition) take **{fixed['core_median_ms']:.3f} ms**; "
        "the rest is the decision log and receipt, the instance lookup and the request digest. "
        "Where it goes (medians of an instrumented pass):",
        "",
        "| step | median ms |",
        "|---|---|",
    ]
    for step, ms in sorted(fixed["breakdown_median_ms"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {step} | {ms:.3f} |")
    in_worker = fixed.get("model_in_worker")
    if in_worker:
        lines += [
            "",
            f"Of the model runner's time, the model ran {in_worker['median_ms']:.3f} ms inside "
            "the worker (median, as the worker reports it); the rest is the hand-off.",
        ]
    att = doc.get("attestation")
    if att:
        lines += [
            "",
            "### Attestation on the client",
            "",
            f"Verifying one evidence document (signature, certificate chain, policy, "
            f"REPORT_DATA binding): median {att['verify']['median_ms']:.2f} ms "
            f"(p95 {att['verify']['p95_ms']:.2f}). The whole `validate_attestation` round trip "
            f"with a fresh nonce: median {att['validate']['median_ms']:.2f} ms "
            f"(p95 {att['validate']['p95_ms']:.2f}).",
        ]
    lines += [
        "",
        "### Targets (issue #8)",
        "",
        "Latency ratios are ratios of medians, with a 95 % bootstrap interval: where it "
        "holds the limit, this run cannot tell the two apart.",
        "",
        "| target | measured (95 % interval) | limit | met |",
        "|---|---|---|---|",
    ]
    for t in targets(doc):
        sign = "≤" if t["at_most"] else "≥"
        interval = t.get("interval")
        shown = f"{t['value']:.3f}"
        if interval:
            shown += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
        lines.append(
            f"| {t['target']} | {shown} | {sign} {t['limit']:g} | "
            f"{'yes' if t['met'] else '**no**'} |"
        )
    if doc["mode"] != "full":
        lines += ["", "Quick mode: tiny models and few samples; these numbers mean nothing."]
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> None:
    """Median end-to-end latency per model, three bars each, p95 as a whisker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = doc["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.6), squeeze=False)
    colours = {"bare": "#9e9e9e", "plain": "#5c8dbc", "cleanroom": "#2e7d32"}
    for ax, m in zip(axes[0], models, strict=True):
        medians = [m["latency"][v]["median_ms"] for v in VARIANTS]
        p95 = [m["latency"][v]["p95_ms"] for v in VARIANTS]
        errors = [[0.0] * 3, [max(0.0, hi - lo) for lo, hi in zip(medians, p95, strict=True)]]
        bars = ax.bar(
            [LABELS[v] for v in VARIANTS],
            medians,
            yerr=errors,
            capsize=4,
            color=[colours[v] for v in VARIANTS],
        )
        for bar, value in zip(bars, medians, strict=True):
            # Inside the bar, clear of the p95 whisker.
            ax.annotate(
                f"{value:.1f} ms",
                (bar.get_x() + bar.get_width() / 2, value / 2),
                ha="center",
                va="center",
                fontsize=8,
                color="white",
                fontweight="bold",
            )
        ax.set_title(f"{m['name']} ({m['parameters'] / 1e6:.1f} M params)", fontsize=10)
        ax.set_ylabel("latency, ms (median; whisker p95)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_ylim(0, max(p95) * 1.2)
    fig.suptitle(f"Batch-1 latency, 224x224x3 float32 ({doc['mode']} mode)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(doc: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """``results.json``, ``results.md`` and ``latency.png`` in *out_dir*."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {**doc, "targets": targets(doc)}
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "results.md",
        "plot": out_dir / "latency.png",
    }
    paths["json"].write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown(doc), encoding="utf-8")
    plot(doc, paths["plot"])
    return paths
