"""An asyncio web service that embeds a dspex-actors system (Starlette + uvicorn).

Run it (``pip install 'dspex-actors[service]'``)::

    DSPEX_API_BASE=http://127.0.0.1:8000/v1 OPENAI_API_KEY=sk-... \\
        uvicorn --factory app:create_app --app-dir examples/service --port 8080

Endpoints: ``POST /predict`` (``{"question": "..."}`` in, the prediction out),
``GET /health``, ``GET /tree`` (text; JSON with ``Accept: application/json``),
``GET /stats``. The lifespan starts the actor system (``dx.astart``) and stops it
gracefully; every request awaits its program actor (``acall``), so the event loop
never blocks and no thread waits per request. See README.md next to this file.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import dspex_actors as dx
import supervisors as sv

MAX_BODY = 64 * 1024
"""Bytes a /predict body may have; larger ones get 413 before anything is parsed."""

INPUTS = ("question",)
"""The fields a /predict body must have, and the only ones it may have."""


class BadInput(Exception):
    """A request the service refuses before any LM call: ``status`` and a clear message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def status_of(error: BaseException) -> int:
    """The HTTP status a typed error maps to (the issue's table)."""
    if isinstance(error, dx.InputFieldsError | dx.SignatureError):
        return 422
    if isinstance(error, dx.LMRateLimited | dx.LMQuotaExceeded):
        return 429
    if isinstance(
        error,
        dx.SystemClosed | dx.SystemDown | dx.CircuitOpen | dx.LMUnavailable | sv.ActorDeadError,
    ):
        return 503  # shutting down, down, breaker open, LM down, program ended by a shutdown
    if isinstance(error, dx.DeadlineExceeded | dx.LMTimeout):
        return 504
    if isinstance(error, dx.LMError):
        return 502
    return 500


def error_response(status: int, error: BaseException | str) -> JSONResponse:
    kind = type(error).__name__ if isinstance(error, BaseException) else "BadInput"
    return JSONResponse({"error": kind, "message": str(error)}, status_code=status)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object of exactly the known fields; :class:`BadInput` otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BadInput(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():  # bounded even without a content-length
        body += chunk
        if len(body) > limit:
            raise BadInput(413, f"body larger than {limit} bytes")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(400, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(422, f"body must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(INPUTS))
    if unknown:
        raise BadInput(422, f"unknown field(s) {unknown}; expected {list(INPUTS)}")
    missing = [name for name in INPUTS if name not in data]
    if missing:
        raise BadInput(422, f"missing field(s) {missing}")
    wrong = [name for name in INPUTS if not isinstance(data[name], str) or not data[name]]
    if wrong:
        raise BadInput(422, f"field(s) {wrong} must be non-empty strings")
    return data


def tree_json(node: sv.TreeNode) -> dict[str, Any]:
    return {
        "id": str(node.id),
        "name": node.name,
        "actor_class": node.actor_class,
        "kind": node.kind,
        "state": node.state,
        "restarts": node.restarts,
        "info": node.info,
        "children": [tree_json(child) for child in node.children],
    }


def create_app(
    lm: dx.LM | None = None,
    *,
    name: str = "service",
    shutdown_grace: float = 10.0,
    max_body: int = MAX_BODY,
    start_options: dict[str, Any] | None = None,
) -> Starlette:
    """The service. ``lm`` defaults to one read from the environment
    (``DSPEX_API_BASE``, ``DSPEX_MODEL``, ``OPENAI_API_KEY``)."""
    if lm is None:
        lm = dx.LM(
            os.environ.get("DSPEX_MODEL", "openai/rule-based"),
            api_base=os.environ["DSPEX_API_BASE"],
            api_key=os.environ.get("OPENAI_API_KEY"),
        )
    options = {"configure_logs": False, **(start_options or {})}
    qa = dx.Predict("question -> answer")
    state: dict[str, Any] = {"draining": False}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with dx.astart(lm=lm, name=name, **options) as system:
            state["system"] = app.state.system = system
            qa.system = system
            try:
                yield
            finally:
                state["draining"] = True  # uvicorn stopped taking connections; now we stop
                await system.ashutdown(grace=shutdown_grace)

    def system_of() -> dx.ActorSystem:
        system: dx.ActorSystem = state["system"]
        return system

    async def predict(request: Request) -> Response:
        if state["draining"]:
            return error_response(503, dx.SystemClosed("the service is shutting down"))
        try:
            inputs = await read_json(request, max_body)
        except BadInput as bad:
            return error_response(bad.status, str(bad))
        try:
            prediction = await qa.acall(**inputs)
        except Exception as exc:
            return error_response(status_of(exc), exc)
        return JSONResponse(dict(prediction.items()))

    async def health(request: Request) -> Response:
        report = system_of().health()
        return JSONResponse(report, status_code=503 if report["status"] == "down" else 200)

    async def tree(request: Request) -> Response:
        node = system_of().tree()
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(tree_json(node))
        return PlainTextResponse(str(node) + "\n")

    async def stats(request: Request) -> Response:
        return JSONResponse(system_of().stats())

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/health", health),
            Route("/tree", tree),
            Route("/stats", stats),
        ],
        lifespan=lifespan,
    )
