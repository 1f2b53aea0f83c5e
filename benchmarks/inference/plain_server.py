"""The plain alternative: the same model behind a minimal HTTP server, no confidentiality.

What a user would deploy instead of a clean room: FastAPI on uvicorn (uvloop
and httptools, as the clean room uses), the tensor sent as raw float32 bytes
(``application/octet-stream``), the logits returned the same way, ONNX
Runtime called on the server's thread pool. JSON tensor lists would cost
about 50 ms per 600 KB and would flatter the clean room; they are not used.

``python -m benchmarks.inference.plain_server MODEL...`` loads each model
(served as ``/predict/<file stem>``, one ``InferenceSession`` each), binds a
loopback port and prints ``{"port": N}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import uvicorn
from benchmarks.inference.listen import bind_loopback
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

OCTET_STREAM = "application/octet-stream"


def create_app(sessions: dict[str, ort.InferenceSession]) -> FastAPI:
    """``POST /predict/{model}``: raw float32 input bytes in, raw float32 logits out."""
    specs = {}
    for name, session in sessions.items():
        spec = session.get_inputs()[0]
        shape = tuple(int(d) for d in spec.shape)
        specs[name] = (spec.name, shape, int(np.prod(shape)) * 4)
    app = FastAPI()

    @app.get("/health")
    async def health() -> Response:
        return Response(content=b"ok")

    @app.post("/predict/{model}")
    async def predict(model: str, request: Request) -> Response:
        if model not in sessions:
            return Response(status_code=404)
        input_name, shape, nbytes = specs[model]
        body = await request.body()
        if len(body) != nbytes:
            return Response(status_code=400, content=b"expected %d bytes" % nbytes)
        x = np.frombuffer(body, dtype=np.float32).reshape(shape)
        outputs = await run_in_threadpool(sessions[model].run, None, {input_name: x})
        return Response(content=np.ascontiguousarray(outputs[0]).tobytes(), media_type=OCTET_STREAM)

    return app


def main(argv: list[str]) -> int:
    """Each argument is a model file, served under its stem."""
    sessions = {
        Path(path).stem: ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        for path in argv
    }
    sock = bind_loopback()
    # The socket listens already: connections made before uvicorn runs wait in the backlog.
    sys.stdout.write(json.dumps({"port": sock.getsockname()[1]}) + "\n")
    sys.stdout.flush()
    config = uvicorn.Config(create_app(sessions), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
