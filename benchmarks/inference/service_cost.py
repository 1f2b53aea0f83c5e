"""The fixed per-request cost of confidentiality, measured inside the service.

``CleanRoomService.predict`` is called in this process (no HTTP) with a
sealed 600 KB input and a model that computes next to nothing
(:func:`~benchmarks.inference.workload.pooling_head_model`). Its median
minus that model's own bare run time is what the clean room adds per
request: open the HPKE envelope, decode, ingress policy, hand-off to the
model's runner (the sandboxed worker when the service runs one), shaping and
egress policy, seal, decision-log entry and receipt.

A second pass wraps each step with a stopwatch to show where that time goes.
The wrappers are removed afterwards; the first pass runs without them.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnxruntime as ort
from benchmarks.inference.measure import summary
from benchmarks.inference.timed_runner import TimedRunner
from benchmarks.inference.workload import example_input, feed, pooling_head_model

import cleanroom.server.service as service_module
from cleanroom.crypto import envelope
from cleanroom.crypto.key_proof import key_registration
from cleanroom.crypto.keys import KeyPair
from cleanroom.crypto.stream import seal_stream, stream_info
from cleanroom.runtime.base import ModelRunner
from cleanroom.server.allocator import keep_request_buffers
from cleanroom.server.service import CleanRoomService
from cleanroom.server.settings import ServerSettings
from cleanroom.server.store import InstanceRecord
from cleanroom.wire.tensors import decode_tensors, encode_tensors

__all__ = ["measure_fixed_cost"]

CORE_STEPS = (
    "HPKE open",
    "decode input tensors",
    "ingress policy",
    "model runner (hand-off + inference)",
    "shaping + egress policy",
    "encode output tensors",
    "seal response",
)
OWNER = "owner@bench.example"
DATA = "data@bench.example"
F = TypeVar("F", bound=Callable[..., Any])


class _Stopwatch:
    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {}
        self.in_worker: list[float] = []  # the model's run inside the worker, per request

    def wrap(self, name: str, fn: F) -> F:
        samples = self.ms.setdefault(name, [])

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                samples.append((time.perf_counter() - start) * 1000)

        return timed  # type: ignore[return-value]


@contextmanager
def _instrumented(service: CleanRoomService, watch: _Stopwatch) -> Iterator[None]:
    """Time each step of ``predict``; every patch is undone on exit."""
    module_patches: list[tuple[Any, str, Any]] = [
        (envelope, "open_request", None),
        (envelope, "seal_response", None),
        (service_module, "decode_tensors", None),
        (service_module, "encode_tensors", None),
    ]
    labels = {
        "open_request": "HPKE open",
        "seal_response": "seal response",
        "decode_tensors": "decode input tensors",
        "encode_tensors": "encode output tensors",
    }
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in module_patches]
    compose = service.compose_runner
    runner_ms = watch.ms.setdefault("model runner (hand-off + inference)", [])
    in_worker_ms = watch.in_worker
    try:
        for obj, attr, original in saved:
            setattr(obj, attr, watch.wrap(labels[attr], original))
        for attr, label in (
            ("ingress", "ingress policy"),
            ("egress", "shaping + egress policy"),
            ("allowed", "decision log append"),
            ("receipt", "receipt"),
        ):
            setattr(service.gate, attr, watch.wrap(label, getattr(service.gate, attr)))
        service.replay.check = watch.wrap("replay check", service.replay.check)  # type: ignore[method-assign]
        service._check_fresh = watch.wrap("freshness (config digest)", service._check_fresh)  # type: ignore[method-assign]
        service.visible_instance = watch.wrap("instance lookup", service.visible_instance)  # type: ignore[method-assign]

        def timed_compose(record: InstanceRecord, runner: ModelRunner) -> ModelRunner:
            return TimedRunner(compose(record, runner), runner_ms, in_worker_ms)

        service.compose_runner = timed_compose
        yield
    finally:
        for obj, attr, original in saved:
            setattr(obj, attr, original)
        for attr in ("ingress", "egress", "allowed", "receipt"):
            service.gate.__dict__.pop(attr, None)
        for attr in ("check",):
            service.replay.__dict__.pop(attr, None)
        for attr in ("_check_fresh", "visible_instance"):
            service.__dict__.pop(attr, None)
        service.compose_runner = compose


def _register(
    service: CleanRoomService, email: str, record: InstanceRecord, sender: KeyPair
) -> None:
    body = key_registration(
        recipient=service.tee.hpke.public,
        sender=sender,
        instance_id=record.id,
        config_digest=bytes.fromhex(service.current_config_digest(record)),
        email=email,
    )
    service.register_key(email, record.id, body["public_key"], body["proof"])


def _install(service: CleanRoomService, model: bytes) -> InstanceRecord:
    record = service.create_instance(OWNER, "fixed-cost", "onnx", [DATA])
    owner = KeyPair()
    _register(service, OWNER, record, owner)

    async def chunks() -> AsyncIterator[bytes]:
        for piece in seal_stream(
            [model],
            total_size=len(model),
            recipient=service.tee.hpke.public,
            sender=owner,
            info=stream_info(
                record.id, "model", bytes.fromhex(service.current_config_digest(record))
            ),
        ):
            yield piece

    return asyncio.run(
        service.upload_model(OWNER, record.id, chunks(), key_id_hex=None, config=None)
    )


def _bare_ms(model: bytes, n: int) -> list[float]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    inputs = feed(example_input())
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        session.run(None, inputs)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def measure_fixed_cost(n: int, warmup: int) -> dict[str, Any]:
    """Median server-side cost of one prediction, less the model's own run time."""
    model = pooling_head_model()
    x = example_input()
    with tempfile.TemporaryDirectory(prefix="cleanroom-bench-") as tmp:
        keep_request_buffers()  # as `cleanroom serve` does
        service = CleanRoomService(ServerSettings(data_dir=Path(tmp)))
        try:
            record = _install(service, model)
            sender = KeyPair()
            _register(service, DATA, record, sender)
            body = encode_tensors(feed(x))
            key_id_hex = service.tee.hpke.public.key_id.hex()
            config = service.current_config_digest(record)

            def one() -> float:
                sealed = envelope.seal_request(
                    recipient=service.tee.hpke.public,
                    sender=sender,
                    instance_id=record.id,
                    config_digest=bytes.fromhex(config),
                    action="predict",
                    body=body,
                )
                start = time.perf_counter()
                response, _receipt = service.predict(
                    DATA, record.id, sealed.envelope, key_id_hex=key_id_hex, config=config
                )
                elapsed = (time.perf_counter() - start) * 1000
                _meta, payload = envelope.open_response(sealed, response)
                logits = decode_tensors(bytes(payload))["logits"]
                if logits.shape != (1, 1000) or not np.isfinite(logits).all():
                    raise RuntimeError("the service returned unexpected logits")
                return elapsed

            for _ in range(warmup):
                one()
            bare = _bare_ms(model, warmup + n)[warmup:]
            total = [one() for _ in range(n)]
            watch = _Stopwatch()
            with _instrumented(service, watch):
                instrumented_total = [one() for _ in range(n)]
        finally:
            service.close()
    steps = {name: float(np.median(ms)) for name, ms in watch.ms.items() if ms}
    steps["other (routing, locks, runner lookup)"] = max(
        0.0, float(np.median(instrumented_total)) - sum(steps.values())
    )
    predict = summary(total)
    model_run = summary(bare)
    # The definition of the fixed cost: open, both policy checks, the
    # hand-off to the worker and the seal (the model's own run subtracted).
    core = sum(steps[name] for name in CORE_STEPS) - model_run["median_ms"]
    return {
        "core_steps": list(CORE_STEPS),
        "core_median_ms": core,
        "input_bytes": int(x.nbytes),
        "request_bytes": len(body),
        "service_predict": predict,
        "model_bare": model_run,
        "fixed_median_ms": predict["median_ms"] - model_run["median_ms"],
        "breakdown_median_ms": steps,
        "model_in_worker": summary(watch.in_worker),
    }
