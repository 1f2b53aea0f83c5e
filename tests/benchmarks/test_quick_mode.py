"""The benchmark's quick mode runs end to end and writes well-formed results.

Nothing here is about speed: timings belong to the benchmark, not to tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from benchmarks.inference.__main__ import main
from benchmarks.inference.report import targets

VARIANTS = {"bare", "plain", "cleanroom"}
SUMMARY_KEYS = {"n", "median_ms", "p95_ms", "min_ms", "max_ms", "iqr_ms"}


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _check_summary(summary: dict[str, Any]) -> None:
    assert set(summary) == SUMMARY_KEYS
    assert all(_positive(summary[k]) for k in SUMMARY_KEYS - {"iqr_ms"})
    assert summary["min_ms"] <= summary["median_ms"] <= summary["p95_ms"] <= summary["max_ms"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    assert main(["--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_every_model_has_every_measurement(results: tuple[Path, dict[str, Any]]) -> None:
    _, doc = results
    assert doc["mode"] == "quick"
    assert [m["key"] for m in doc["models"]] == ["mobilenet_v2", "resnet50", "vgg19"]
    for m in doc["models"]:
        assert _positive(m["parameters"])
        assert _positive(m["size_bytes"])
        assert set(m["latency"]) == VARIANTS
        for summary in m["latency"].values():
            _check_summary(summary)
        assert all(_positive(v) for v in m["ratios"].values())
        _check_summary(m["sandbox"]["bare"])
        _check_summary(m["sandbox"]["sandboxed"])
        _check_summary(m["sandbox"]["in_worker"])
        # The model's run in the worker is part of the call into the sandbox.
        assert 0 < m["sandbox"]["in_worker"]["median_ms"] < m["sandbox"]["sandboxed"]["median_ms"]
        assert m["sandbox"]["inference_ratio_median"] > 0
        assert set(m["throughput_rps"]) == {"1", "2", "4"}
        for rates in m["throughput_rps"].values():
            assert set(rates) == {*VARIANTS, "cleanroom_per_core"}
            assert all(_positive(v) for v in rates.values())
        for side in ("bare", "cleanroom"):
            load = m["load"][side]
            assert _positive(load["seconds"])
            assert load["peak_rss_bytes"] >= load["baseline_rss_bytes"] > 0


@pytest.mark.slow
def test_fixed_cost_attestation_and_targets(results: tuple[Path, dict[str, Any]]) -> None:
    _, doc = results
    fixed = doc["fixed_cost"]
    assert fixed["input_bytes"] == 3 * 224 * 224 * 4
    _check_summary(fixed["service_predict"])
    _check_summary(fixed["model_bare"])
    assert 0 < fixed["core_median_ms"] <= fixed["service_predict"]["median_ms"]
    # Every step of the request path was seen by the instrumented pass.
    for step in ("HPKE open", "ingress policy", "shaping + egress policy", "seal response"):
        assert fixed["breakdown_median_ms"][step] > 0, step
    anatomy = doc["anatomy"]
    assert anatomy["model"] == "mobilenet_v2"
    _check_summary(anatomy["client_total"])
    assert len(anatomy["median_ms"]) == 5
    assert all(math.isfinite(v) for v in anatomy["median_ms"].values())
    assert anatomy["median_ms"]["inference in the worker"] > 0
    _check_summary(fixed["model_in_worker"])
    _check_summary(doc["attestation"]["verify"])
    _check_summary(doc["attestation"]["validate"])
    assert doc["targets"] == targets(doc)
    assert len(doc["targets"]) == 17
    assert all(isinstance(t["met"], bool) for t in doc["targets"])


@pytest.mark.slow
def test_markdown_and_plot_are_written(results: tuple[Path, dict[str, Any]]) -> None:
    out, doc = results
    text = (out / "results.md").read_text()
    for m in doc["models"]:
        assert f"| {m['name']} |" in text
    assert "### Targets (issue #8)" in text
    assert (out / "latency.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
