"""Predictions run on threads of their own, so waiting predictions cannot starve other routes.

A prediction may block its thread while the instance's workers are busy.
On the shared thread pool, enough of them would leave sign-in, attestation
and every other party's requests waiting; on their own limiter they only
wait for each other.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from cleanroom import Client, ModelFormat
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings

PASSWORD = "correct horse battery staple"
SLOTS = 2


def test_blocked_predictions_leave_other_routes_and_threads_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ServerSettings(data_dir=tmp_path, max_concurrent_predictions=SLOTS)
    with ServerThread(settings) as server:
        owner = Client(server.url)
        owner.sign_up("owner@lender.example", PASSWORD)
        owner.sign_in("owner@lender.example", PASSWORD)
        instance = owner.create_instance("Busy", ModelFormat.ONNX, [])
        release = threading.Event()
        lock = threading.Lock()
        running = [0, 0]  # now, most at once

        def blocked_predict(*args: Any, **kwargs: Any) -> tuple[bytes, dict[str, Any]]:
            with lock:
                running[0] += 1
                running[1] = max(running[1], running[0])
            try:
                release.wait(30)
                return b"sealed", {}
            finally:
                with lock:
                    running[0] -= 1

        monkeypatch.setattr(server.service, "predict", blocked_predict)
        # The instance has no model: let its requests reach the (blocked) prediction.
        monkeypatch.setattr(server.service, "check_can_predict", lambda *args: None)
        headers = owner._auth_headers()
        url = f"{server.url}/v1/instances/{instance.id}/predict"

        def predict() -> int:
            return httpx.post(url, content=b"x", headers=headers, timeout=60).status_code

        with ThreadPoolExecutor(SLOTS + 3) as pool:
            calls = [pool.submit(predict) for _ in range(SLOTS + 3)]
            deadline = time.monotonic() + 20
            while running[0] < SLOTS and time.monotonic() < deadline:
                time.sleep(0.02)
            assert running[0] == SLOTS
            # The routes on the shared pool still answer at once.
            assert owner.health()["status"] == "ok"
            assert [i.id for i in owner.list_instances()] == [instance.id]
            release.set()
            assert [c.result(timeout=30) for c in calls] == [200] * (SLOTS + 3)
        assert running[1] == SLOTS
        owner.close()
