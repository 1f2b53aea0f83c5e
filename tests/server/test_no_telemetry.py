"""No request spans, metrics or exception logs leave through the web framework.

FastAPI records OpenTelemetry spans, metrics and exception logs (messages and
stack traces) whenever the process has a configured global provider, which the
operator's environment can arrange. The clean room turns that off: whatever is
configured, the service never asks a provider for a tracer, a meter or a logger.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import _logs, metrics, trace

from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings


class _Recorder:
    def __init__(self) -> None:
        self.asked: list[str] = []


class _TracerProvider(trace.TracerProvider):
    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        self.recorder.asked.append("tracer")
        return trace.NoOpTracer()


class _MeterProvider(metrics.MeterProvider):
    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    def get_meter(self, *args: Any, **kwargs: Any) -> metrics.Meter:
        self.recorder.asked.append("meter")
        return metrics.NoOpMeter("test")


class _LoggerProvider(_logs.LoggerProvider):
    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    def get_logger(self, *args: Any, **kwargs: Any) -> _logs.Logger:
        self.recorder.asked.append("logger")
        return _logs.NoOpLogger("test")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    """Configured global providers that note every request for an instrument."""
    recorder = _Recorder()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: _TracerProvider(recorder))
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: _MeterProvider(recorder))
    monkeypatch.setattr(_logs, "get_logger_provider", lambda: _LoggerProvider(recorder))
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    return recorder


@pytest.fixture
def client(tmp_path: Path, recorder: _Recorder) -> Iterator[httpx.Client]:
    with (
        ServerThread(ServerSettings(data_dir=tmp_path)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        yield client


def test_requests_and_refusals_record_nothing(client: httpx.Client, recorder: _Recorder) -> None:
    assert client.get("/v1/health").status_code == 200
    assert client.get("/v1/instances").status_code == 401  # refused: no session
    bad = client.post("/v1/accounts", content=b"not json", headers={"content-type": "x"})
    assert bad.status_code >= 400
    assert client.get("/no/such/route").status_code == 404
    assert recorder.asked == []
