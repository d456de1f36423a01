"""The rule-based server under hostile requests (issue 9, item 14): its request log stays
bounded, and JSON too deep to read is a 400 with a clear error, not a 500 and a traceback."""

from __future__ import annotations

import json

import pytest
import requests

import dspex_actors as dx
from dspex_actors.testing._state import LOG_FULL_BODY_BYTES, LOG_HEAD_BYTES

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server() -> dx.RuleBasedLMServer:
    srv = dx.RuleBasedLMServer().start()
    yield srv  # type: ignore[misc]
    srv.stop()


def post(server: dx.RuleBasedLMServer, data: bytes) -> requests.Response:
    return requests.post(
        f"{server.api_base}/chat/completions",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


def test_large_request_bodies_are_logged_as_bounded_summaries(server: dx.RuleBasedLMServer) -> None:
    server.reset_stats()
    content = "[[ ## question ## ]]\nWhat is 1 + 1?" + " " * (3 * MIB)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": content}]})
    for _ in range(4):
        assert post(server, body.encode()).status_code == 200

    log = server.requests
    assert len(log) == 4
    for entry in log:
        assert entry["summary"] is True
        assert entry["body_bytes"] == len(body)
        assert entry["message_count"] == 1
        assert entry["model"] == "m"
        assert len(entry["head"]) == LOG_HEAD_BYTES
        assert len(json.dumps(entry)) < LOG_HEAD_BYTES * 2


def test_small_request_bodies_are_logged_whole(server: dx.RuleBasedLMServer) -> None:
    server.reset_stats()
    body = {"model": "m", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    assert len(json.dumps(body)) < LOG_FULL_BODY_BYTES
    assert post(server, json.dumps(body).encode()).status_code == 200
    assert server.requests == [body]


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b'{"messages": [{"role": "user", "content": ' + b"[" * 100_000 + b"}]}",
        b'{"messages": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    ],
    ids=["deep list", "deep content", "deep object"],
)
def test_json_too_deep_to_read_is_a_400_with_a_clear_error(
    server: dx.RuleBasedLMServer, data: bytes
) -> None:
    server.reset_stats()
    response = post(server, data)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "request body is nested too deeply"
    assert "Traceback" not in response.text
    assert server.stats().get("internal_error", 0) == 0
    assert server.stats()["bad_request"] == 1
