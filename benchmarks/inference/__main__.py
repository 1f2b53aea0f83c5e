"""``python -m benchmarks.inference [--quick] [--out DIR] [--publish]``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import shutil
import sys
import time
from pathlib import Path

from benchmarks.inference.processes import REPO
from benchmarks.inference.report import markdown, write_all
from benchmarks.inference.run import FULL, QUICK, Plan, run

DOC = REPO / "docs" / "performance.md"
DOC_PLOT = REPO / "docs" / "images" / "performance-latency.png"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def publish(doc: dict[str, object], plot: Path) -> None:
    """Replace the results section of docs/performance.md and its plot."""
    DOC_PLOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plot, DOC_PLOT)
    text = DOC.read_text(encoding="utf-8")
    section = f"{BEGIN}\n{markdown(doc, 'images/performance-latency.png')}{END}"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} section")
    DOC.write_text(pattern.sub(lambda _m: section, text), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny models, few samples (CI)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument(
        "--models", nargs="+", choices=["mobilenet_v2", "resnet50", "vgg19"], default=None
    )
    parser.add_argument(
        "--publish", action="store_true", help="write the table and plot into docs/performance.md"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.models:
        plan = dataclasses.replace(plan, models=tuple(args.models))
    # The servers run the SIMULATED TEE; the SDK would warn about it on every validation.
    quiet = logging.getLogger("cleanroom")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return _run(plan, args)
    finally:
        quiet.setLevel(level)  # as it was, for whoever called main() in this process


def _run(plan: Plan, args: argparse.Namespace) -> int:
    start = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - start:7.1f} s] {text}", file=sys.stderr, flush=True)

    say("the clean room runs the SIMULATED TEE (no hardware): same code path, no confidentiality")
    doc = run(plan, args.out, say=say)
    paths = write_all(doc, args.out)
    if args.publish:
        publish(doc, paths["plot"])
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
