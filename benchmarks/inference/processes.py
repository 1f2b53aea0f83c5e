"""The processes under test: the bare runtime, the plain server and the clean room.

Each runs in its own process so that no two share a GIL with the driver,
which plays the clients. Their stderr goes to ``<out>/logs``.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx
from benchmarks.inference.listen import free_port
from benchmarks.inference.measure import children_pids

__all__ = ["AnatomyServer", "BareProcess", "CleanroomServer", "PlainServer", "snapshot_code"]

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0


def _env(code_root: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(code_root or REPO / "src"), str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class _Child:
    def __init__(self, args: list[str], log_path: Path, code_root: Path | None = None) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO,
            env=_env(code_root),
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def read_json(self, timeout_s: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise RuntimeError(f"process {self.proc.args!r} did not answer in time") from None
        if line is None:
            raise RuntimeError(f"process {self.proc.args!r} exited ({self.proc.wait()})")
        doc: dict[str, Any] = json.loads(line)
        return doc

    def ask(self, command: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.read_json(timeout_s)

    def stop(self) -> None:
        descendants = children_pids(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in descendants:  # workers this process started, if it left any behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._pump_thread.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def _wait_http(url: str, proc: subprocess.Popen[str], timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up in {timeout_s:g} s")


class BareProcess(_Child):
    """``benchmarks.inference.bare``: loads the model from its path at start."""

    def __init__(self, model_path: Path, logs: Path) -> None:
        super().__init__(["-m", "benchmarks.inference.bare", str(model_path)], logs / "bare.log")
        self.load = self.read_json(START_TIMEOUT_S)

    def latency(self, n: int) -> list[float]:
        return [float(v) for v in self.ask({"op": "latency", "n": n}, 3600)["ms"]]

    def throughput(self, clients: int, seconds: float) -> dict[str, float]:
        reply = self.ask({"op": "throughput", "clients": clients, "seconds": seconds}, 3600)
        return {"requests": float(reply["requests"]), "seconds": float(reply["seconds"])}

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(json.dumps({"op": "stop"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.stop()


class PlainServer(_Child):
    """Starts on construction; :meth:`wait_ready` before use."""

    def __init__(self, model_paths: list[Path], logs: Path) -> None:
        super().__init__(
            ["-m", "benchmarks.inference.plain_server", *map(str, model_paths)],
            logs / "plain.log",
        )
        self.url = ""

    def wait_ready(self) -> None:
        port = int(self.read_json(START_TIMEOUT_S)["port"])
        self.url = f"http://127.0.0.1:{port}"
        _wait_http(self.url + "/health", self.proc)


def snapshot_code(dest: Path) -> Path:
    """Copy the ``cleanroom`` package to *dest*; returns the directory to put on sys.path.

    The server runs from this copy, so its simulated measurement is the
    copy's and stays put while the working tree changes under the benchmark.
    """
    import cleanroom

    source = Path(cleanroom.__file__).resolve().parent
    shutil.copytree(source, dest / "cleanroom", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


class CleanroomServer(_Child):
    """``cleanroom serve`` with the simulated TEE and a fresh data directory.

    Starts on construction; :meth:`wait_ready` before use.

    *code_root* holds the ``cleanroom`` package the server runs (a snapshot,
    see :func:`snapshot_code`).
    """

    log_name = "cleanroom.log"

    def __init__(self, data_dir: Path, logs: Path, code_root: Path) -> None:
        port = free_port()
        super().__init__(self.arguments(data_dir, port), logs / self.log_name, code_root)
        self.code_root = code_root
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{port}"

    @staticmethod
    def arguments(data_dir: Path, port: int) -> list[str]:
        return [
            "-m",
            "cleanroom.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--tee",
            "simulated",
            "--registration",
            "open",
        ]

    def wait_ready(self) -> None:
        _wait_http(self.url + "/v1/health", self.proc)


class AnatomyServer(CleanroomServer):
    """The same service with stopwatches (``benchmarks.inference.anatomy_server``)."""

    log_name = "anatomy.log"

    @staticmethod
    def arguments(data_dir: Path, port: int) -> list[str]:
        return ["-m", "benchmarks.inference.anatomy_server", str(data_dir), str(port)]

    def spans(self) -> dict[str, Any]:
        """Close stdin; the server answers with the median of each span, then stops."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.read_json(60)
