"""The clean-room server with stopwatches: where a confidential request's time goes.

``python -m benchmarks.inference.anatomy_server DATA_DIR PORT`` runs the
service exactly as ``cleanroom serve`` does (simulated TEE, uvicorn) but
times, per prediction, three nested spans:

* ``asgi``: from the request reaching the application to the last byte of
  the response handed back to uvicorn (authentication, reading the body,
  the service, the receipt header);
* ``predict``: ``CleanRoomService.predict`` (open, policies, model, seal, log);
* ``runner``: the model runner's ``run`` (hand-off to the sandboxed worker
  and inference there);
* ``in_worker``: the model's own run inside the worker, as the worker
  reports it (the rest of ``runner`` is the hand-off).

When its stdin closes it prints the median of each span as one JSON line
and stops. The client's own time around each call, measured by the driver,
completes the picture (SDK sealing and opening, HTTP on loopback).
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn
from benchmarks.inference.timed_runner import TimedRunner

from cleanroom.runtime.base import ModelRunner
from cleanroom.server.allocator import keep_request_buffers
from cleanroom.server.app import create_app
from cleanroom.server.runner import bind
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings
from cleanroom.server.store import InstanceRecord

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SPANS: dict[str, list[float]] = {"asgi": [], "predict": [], "runner": [], "in_worker": []}


def instrument(service: CleanRoomService) -> None:
    predict = service.predict
    compose = service.compose_runner

    def timed_predict(*args: Any, **kwargs: Any) -> tuple[bytes, dict[str, Any]]:
        start = time.perf_counter()
        try:
            return predict(*args, **kwargs)
        finally:
            SPANS["predict"].append((time.perf_counter() - start) * 1000)

    def timed_compose(record: InstanceRecord, runner: ModelRunner) -> ModelRunner:
        return TimedRunner(compose(record, runner), SPANS["runner"], SPANS["in_worker"])

    service.predict = timed_predict  # type: ignore[method-assign]
    service.compose_runner = timed_compose


def timed_app(app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> Any:
    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).endswith("/predict"):
            await app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                SPANS["asgi"].append((time.perf_counter() - start) * 1000)
            await send(message)

        await app(scope, receive, timed_send)

    return asgi


def main(argv: list[str]) -> int:
    keep_request_buffers()  # as `cleanroom serve` does
    service = CleanRoomService(ServerSettings(data_dir=Path(argv[0])))
    instrument(service)
    sock = bind("127.0.0.1", int(argv[1]))
    config = uvicorn.Config(
        timed_app(create_app(service)), log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)

    def report_on_eof() -> None:
        sys.stdin.read()
        medians = {k: statistics.median(v) if v else None for k, v in SPANS.items()}
        sys.stdout.write(json.dumps({**medians, "n": len(SPANS["asgi"])}) + "\n")
        sys.stdout.flush()
        server.should_exit = True

    threading.Thread(target=report_on_eof, daemon=True).start()
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
