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


class _Providers(trace.TracerProvider, metrics.MeterProvider, _logs.LoggerProvider):
    """Configured global providers that note every request for an instrument."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        self.asked.append("tracer")
        return trace.NoOpTracer()

    def get_meter(self, *args: Any, **kwargs: Any) -> metrics.Meter:
        self.asked.append("meter")
        return metrics.NoOpMeter("test")

    def get_logger(self, *args: Any, **kwargs: Any) -> _logs.Logger:
        self.asked.append("logger")
        return _logs.NoOpLogger("test")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _Providers:
    providers = _Providers()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: providers)
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: providers)
    monkeypatch.setattr(_logs, "get_logger_provider", lambda: providers)
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    return providers


@pytest.fixture
def client(tmp_path: Path, recorder: _Providers) -> Iterator[httpx.Client]:
    with (
        ServerThread(ServerSettings(data_dir=tmp_path)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        yield client


def test_requests_and_refusals_record_nothing(client: httpx.Client, recorder: _Providers) -> None:
    assert client.get("/v1/health").status_code == 200
    assert client.get("/v1/instances").status_code == 401  # refused: no session
    bad = client.post("/v1/accounts", content=b"not json", headers={"content-type": "x"})
    assert bad.status_code >= 400
    assert client.get("/no/such/route").status_code == 404
    assert recorder.asked == []
