"""The bare baseline: ONNX Runtime ``InferenceSession.run`` in its own process.

Started by the driver with ``python -m benchmarks.inference.bare MODEL``. At
start it loads the model from its path, as a user of the bare runtime would,
and reports the load time and the process's peak resident memory (a fresh
process, so the peak is the load's). Then it answers JSON-line commands on
stdin:

* ``{"op": "latency", "n": N}``: N runs one after the other, per-run ms;
* ``{"op": "throughput", "clients": C, "seconds": S}``: C threads calling
  ``run`` on the one session for S seconds, the number of completed runs;
* ``{"op": "stop"}``.

Keeping the bare runs in their own process means the driver (which plays the
clients of the two servers) holds no ONNX Runtime threads that would spin
while the servers compute.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import onnxruntime as ort
from benchmarks.inference.measure import peak_rss_bytes, rss_bytes
from benchmarks.inference.workload import example_input


def _latency(session: ort.InferenceSession, feed: dict[str, Any], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _throughput(
    session: ort.InferenceSession, feed: dict[str, Any], clients: int, seconds: float
) -> dict[str, float]:
    done = [0] * clients
    start = time.perf_counter()
    deadline = start + seconds

    def loop(index: int) -> None:
        while time.perf_counter() < deadline:
            session.run(None, feed)
            done[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"requests": float(sum(done)), "seconds": time.perf_counter() - start}


def main(argv: list[str]) -> int:
    path = argv[0]
    baseline = rss_bytes()
    start = time.perf_counter()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - start
    name = session.get_inputs()[0].name
    feed: dict[str, Any] = {name: example_input()}
    out = sys.stdout
    out.write(
        json.dumps(
            {
                "load_s": load_s,
                "baseline_rss_bytes": baseline,
                "peak_rss_bytes": peak_rss_bytes(),
                "rss_after_load_bytes": rss_bytes(),
            }
        )
        + "\n"
    )
    out.flush()
    for line in sys.stdin:
        command = json.loads(line)
        op = command.get("op")
        reply: dict[str, Any]
        if op == "latency":
            reply = {"ms": _latency(session, feed, int(command["n"]))}
        elif op == "throughput":
            reply = _throughput(session, feed, int(command["clients"]), float(command["seconds"]))
        else:
            break
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
