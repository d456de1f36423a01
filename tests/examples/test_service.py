"""The example service (examples/service/app.py) over real HTTP: uvicorn on 127.0.0.1.

In-process tests run uvicorn on a thread of the test process (its own event loop)
against the rule-based LM server; the SIGTERM test runs it as a subprocess. Bounds
are generous: the machine is shared, and what is asserted is outcomes and counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn

import dspex_actors as dx
import supervisors as sv
from examples.service.app import create_app
from tests.dspex_actors.fixture_types import API_KEY, MODEL, ServerFactory
from tests.paths import ROOT

WAIT = 60.0
CLIENT_TIMEOUT = httpx.Timeout(WAIT)
LIMITS = httpx.Limits(max_connections=300, max_keepalive_connections=300)


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test:uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert thread.is_alive(), "uvicorn ended during startup"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT)
        assert not thread.is_alive(), "uvicorn did not stop"


_names = iter(range(1, 10_000))


def _app(server: Any, **options: Any) -> Any:
    lm = dx.LM(MODEL, api_base=server.api_base, api_key=API_KEY)
    return create_app(lm, name=f"service-{next(_names)}", **options)


async def _post_many(url: str, questions: list[str]) -> list[tuple[int, Any, float]]:
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=LIMITS) as client:

        async def one(question: str) -> tuple[int, Any, float]:
            started = time.monotonic()
            response = await client.post(f"{url}/predict", json={"question": question})
            return response.status_code, response.json(), time.monotonic() - started

        return list(await asyncio.gather(*(one(q) for q in questions)))


def test_two_hundred_concurrent_predicts_are_all_answered_correctly(
    make_lm_server: ServerFactory,
) -> None:
    lm_server = make_lm_server(latency=0.05)
    app = _app(lm_server, start_options={"cache": False})
    questions = [f"What is {i} + 7?" for i in range(200)]
    with serve(app) as url:
        results = asyncio.run(_post_many(url, questions))
        health = httpx.get(f"{url}/health", timeout=CLIENT_TIMEOUT)
        tree_text = httpx.get(f"{url}/tree", timeout=CLIENT_TIMEOUT)
        tree = httpx.get(f"{url}/tree", headers={"Accept": "application/json"}, timeout=WAIT)
        stats = httpx.get(f"{url}/stats", timeout=CLIENT_TIMEOUT).json()
    assert [(status, body["answer"]) for status, body, _ in results] == [
        (200, f"The answer is {i + 7}.") for i in range(200)
    ]
    assert lm_server.request_count == 200
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    assert "programs" in tree_text.text and "LMClient" in tree_text.text
    assert tree.json()["kind"] == "supervisor"
    assert {c["id"] for c in tree.json()["children"]} >= {"lm:default", "programs"}
    assert stats["lms"]["default"]["requests"] == 200


def test_killing_the_lm_client_mid_load_ends_every_request_correctly_or_typed(
    make_lm_server: ServerFactory,
) -> None:
    lm_server = make_lm_server(latency=0.2)
    deadline = 10.0
    retry = dx.RetryPolicy(deadline=deadline)
    app = _app(lm_server, start_options={"cache": False, "retry": retry})
    questions = [f"What is {i} + 3?" for i in range(200)]

    async def load(url: str) -> list[tuple[int, Any, float]]:
        task = asyncio.ensure_future(_post_many(url, questions))
        end = time.monotonic() + WAIT
        while lm_server.request_count < 50:
            assert time.monotonic() < end and not task.done(), "the load never got going"
            await asyncio.sleep(0.005)
        system = app.state.system
        assert sv.kill(system.lm.name, reason="test kill")
        return await task

    with serve(app) as url:
        results = asyncio.run(load(url))
        health = httpx.get(f"{url}/health", timeout=CLIENT_TIMEOUT).json()
        after = httpx.post(f"{url}/predict", json={"question": "What is 1 + 1?"}, timeout=WAIT)
    ok = 0
    for i, (status, body, took) in enumerate(results):
        assert took < deadline + 5.0, (i, status, body, took)
        if status == 200:
            assert body["answer"] == f"The answer is {i + 3}."
            ok += 1
        else:
            assert status in (502, 503, 504), (i, status, body)
            assert body["error"] in {
                "LMConnectionError",
                "DeadlineExceeded",
                "LMServerError",
                "LMUnavailable",  # the client was in its restart backoff past the deadline
            }
    assert ok >= 100  # most requests were not touched by the kill
    assert health["lms"]["default"]["restarts"] >= 1 and health["lms"]["default"]["alive"]
    assert after.status_code == 200 and after.json()["answer"] == "The answer is 2."


def test_bad_input_gets_a_4xx_with_a_clear_message_and_no_lm_call(
    make_lm_server: ServerFactory,
) -> None:
    lm_server = make_lm_server()
    with serve(_app(lm_server, max_body=1024)) as url:
        post = lambda **kw: httpx.post(f"{url}/predict", timeout=CLIENT_TIMEOUT, **kw)  # noqa: E731
        not_json = post(content=b"{not json", headers={"content-type": "application/json"})
        not_object = post(json=["question"])
        unknown = post(json={"question": "q", "temperature": 2})
        missing = post(json={})
        empty = post(json={"question": ""})
        huge = post(json={"question": "x" * 5000})
        chunked = post(content=iter([b'{"question": "', b"x" * 3000, b'"}']))
    assert (not_json.status_code, not_json.json()["error"]) == (400, "BadInput")
    assert "not JSON" in not_json.json()["message"]
    assert not_object.status_code == 422 and "JSON object" in not_object.json()["message"]
    assert unknown.status_code == 422 and "['temperature']" in unknown.json()["message"]
    assert missing.status_code == 422 and "missing" in missing.json()["message"]
    assert empty.status_code == 422
    assert huge.status_code == 413 and "1024 bytes" in huge.json()["message"]
    assert chunked.status_code == 413
    assert lm_server.request_count == 0


def test_lm_failures_map_to_typed_5xx_and_rate_limits_to_429(
    make_lm_server: ServerFactory,
) -> None:
    lm_server = make_lm_server()
    app = _app(
        lm_server,
        start_options={"cache": False, "retry": dx.RetryPolicy(max_attempts=1)},
    )
    with serve(app) as url:
        post = lambda: httpx.post(  # noqa: E731
            f"{url}/predict", json={"question": "What is 2 + 2?"}, timeout=CLIENT_TIMEOUT
        )
        lm_server.inject("500")
        server_error = post()
        lm_server.inject(dx.testing.Fault("429", retry_after=0.0))
        limited = post()
        fine = post()
    assert (server_error.status_code, server_error.json()["error"]) == (502, "LMServerError")
    assert (limited.status_code, limited.json()["error"]) == (429, "LMRateLimited")
    assert fine.status_code == 200


# -- graceful shutdown of a uvicorn subprocess --------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_sigterm_lets_requests_in_flight_finish_then_exits_cleanly(
    make_lm_server: ServerFactory,
) -> None:
    lm_server = make_lm_server(latency=1.5)
    port = _free_port()
    env = {
        **os.environ,
        "DSPEX_API_BASE": lm_server.api_base,
        "OPENAI_API_KEY": API_KEY,
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "examples.service.app:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the service did not come up"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            time.sleep(0.05)

        async def scenario() -> tuple[list[tuple[int, Any, float]], str]:
            task = asyncio.ensure_future(_post_many(url, [f"What is {i} + 5?" for i in range(8)]))
            end = time.monotonic() + WAIT
            while lm_server.request_count < 8:
                assert time.monotonic() < end, "the requests never reached the LM"
                await asyncio.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            try:
                async with httpx.AsyncClient(timeout=5.0) as late:
                    response = await late.post(f"{url}/predict", json={"question": "late?"})
                refused = f"status {response.status_code}"
            except httpx.TransportError as exc:
                refused = f"refused: {type(exc).__name__}"
            return await task, refused

        results, refused = asyncio.run(scenario())
        output, _ = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert [(s, b["answer"]) for s, b, _ in results] == [
        (200, f"The answer is {i + 5}.") for i in range(8)
    ]
    assert refused.startswith("refused") or refused == "status 503", refused
    assert lm_server.request_count == 8  # the late request never reached the LM
    assert "Application shutdown complete" in output, output
    assert proc.returncode in (0, -signal.SIGTERM), (proc.returncode, output)
