"""The example service (examples/service/app.py) written with DSPy 3.4.1's ``acall``.

For ``bench_async.py`` only: same endpoints that the benchmark uses (``POST /predict``,
``GET /health``), same body checks, a ``dspy.Predict`` awaited with ``acall`` and
``dspy.LM`` with its defaults. Run by uvicorn as ``benchmarks._dspy_service:create_app``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import dspy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.service.app import MAX_BODY, BadInput, read_json


def create_app() -> Starlette:
    for name in ("dspy", "LiteLLM", "litellm", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.ERROR)
    lm = dspy.LM(
        os.environ.get("DSPEX_MODEL", "openai/rule-based"),
        api_base=os.environ["DSPEX_API_BASE"],
        api_key=os.environ.get("OPENAI_API_KEY"),
    )
    dspy.configure(lm=lm)
    qa = dspy.Predict("question -> answer")

    async def predict(request: Request) -> Response:
        try:
            inputs = await read_json(request, MAX_BODY)
        except BadInput as bad:
            return JSONResponse({"error": "BadInput", "message": str(bad)}, status_code=bad.status)
        try:
            prediction = await qa.acall(**inputs)
        except Exception as exc:
            return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, 502)
        data: dict[str, Any] = dict(prediction.items())
        return JSONResponse(data)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    return Starlette(
        routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)]
    )
