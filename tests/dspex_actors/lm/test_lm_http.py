"""LM config, request plans and one-attempt HTTP execution (``dspex_actors.lm._config``)."""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pydantic
import pytest
import requests
import responses

from dspex_actors.lm import LM
from dspex_actors.lm._http import (
    Completion,
    build_plan,
    execute_plan,
    make_session,
    parse_retry_after,
)
from dspex_actors.primitives._errors import (
    AdapterParseError,
    CircuitOpen,
    DeadlineExceeded,
    LMBadRequest,
    LMConnectionError,
    LMError,
    LMRateLimited,
    LMServerError,
    LMTimeout,
)

KEY = "sk-test-SECRET-0123456789"
BASE = "http://llm.test/v1"
URL = BASE + "/chat/completions"
MESSAGES = [{"role": "user", "content": "What is 2+2?"}]


def ok_body(text: str = "4", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "cmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12},
    }
    body.update(extra)
    return body


@pytest.fixture
def lm() -> LM:
    return LM("openai/gpt-4o-mini", api_base=BASE, api_key=KEY)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    s = make_session(4)
    yield s
    s.close()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as rsps:
        yield rsps


# -- LM config ---------------------------------------------------------------------


def test_lm_accepts_model_positionally_and_converts_key_to_secret(lm: LM) -> None:
    assert lm.model == "openai/gpt-4o-mini"
    assert isinstance(lm.api_key, pydantic.SecretStr)
    assert lm.api_key.get_secret_value() == KEY
    assert LM(model="openai/gpt-4o-mini", api_base=BASE, api_key=KEY) == lm


def test_lm_rejects_model_given_twice() -> None:
    with pytest.raises(TypeError):
        LM("a", model="b")


def test_lm_defaults_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", "http://env.test/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    lm = LM("openai/x")
    assert lm.api_base == "http://env.test/v1"
    assert lm.api_key is not None
    assert lm.api_key.get_secret_value() == "sk-from-env"
    monkeypatch.delenv("OPENAI_API_BASE")
    monkeypatch.delenv("OPENAI_API_KEY")
    lm = LM("openai/x")
    assert lm.api_base == "https://api.openai.com/v1"
    assert lm.api_key is None
    assert (lm.temperature, lm.max_tokens, lm.timeout) == (0.0, 512, 30.0)
    assert (lm.rpm, lm.breaker_threshold, lm.breaker_cooldown, lm.pool_size) == (None, 5, 10.0, 64)


def test_lm_is_frozen_and_hashable(lm: LM) -> None:
    field = "temperature"
    with pytest.raises(pydantic.ValidationError):
        setattr(lm, field, 1.0)
    other = LM("openai/gpt-4o-mini", api_base=BASE, api_key=KEY)
    assert hash(lm) == hash(other)
    assert len({lm, other}) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -0.1},
        {"max_tokens": 0},
        {"timeout": 0},
        {"rpm": 0},
        {"breaker_threshold": 0},
        {"pool_size": 0},
        {"extra": {"api_key": "x"}},
        {"extra": {"Authorization": "x"}},
        {"extra": {"messages": []}},
        {"extra": {"obj": object()}},
        {"unknown_field": 1},
    ],
)
def test_lm_rejects_invalid_config(kwargs: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        LM("openai/x", **kwargs)


@pytest.mark.parametrize(
    ("model", "wire"),
    [
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("openai/meta-llama/Llama-3-8B", "meta-llama/Llama-3-8B"),
        ("gpt-4o-mini", "gpt-4o-mini"),
    ],
)
def test_wire_model_strips_the_provider_prefix(model: str, wire: str) -> None:
    lm = LM(model, api_base=BASE)
    assert lm.wire_model == wire
    assert build_plan(lm, MESSAGES).json["model"] == wire


def test_request_params_exclude_key_and_base_and_apply_overrides() -> None:
    lm = LM("openai/m", api_base=BASE, api_key=KEY, extra={"top_p": 0.9, "seed": 1})
    params = lm.request_params()
    assert params == {
        "model": "openai/m",
        "temperature": 0.0,
        "max_tokens": 512,
        "top_p": 0.9,
        "seed": 1,
    }
    assert lm.request_params(temperature=0.7, seed=None) == {
        "model": "openai/m",
        "temperature": 0.7,
        "max_tokens": 512,
        "top_p": 0.9,
    }
    params["top_p"] = 0.1
    assert lm.request_params()["top_p"] == 0.9
    with pytest.raises(ValueError, match="api_base"):
        lm.request_params(api_base="http://evil")


# -- key never leaks ------------------------------------------------------------------


def test_api_key_never_appears_in_repr_str_dumps_logs_or_plans(
    lm: LM, caplog: pytest.LogCaptureFixture
) -> None:
    plan = build_plan(lm, MESSAGES)
    logger = logging.getLogger("test.keyleak")
    with caplog.at_level(logging.INFO, logger="test.keyleak"):
        logger.info("lm config %s", lm.model_dump())
        logger.info("lm %r", lm)
        logger.info("plan %s", plan)
        logger.info("plan fields %s", dataclasses.asdict(plan))
    texts = [
        repr(lm),
        str(lm),
        lm.model_dump_json(),
        json.dumps(lm.model_dump(mode="json")),
        str(lm.model_dump()),
        repr(plan),
        str(plan),
        repr(plan.headers),
        str(plan.headers),
        caplog.text,
    ]
    for text in texts:
        assert KEY not in text
    # the key is still sent
    assert plan.headers["Authorization"] == f"Bearer {KEY}"


def test_server_error_message_echoing_the_key_is_scrubbed(
    lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    mocked.post(
        URL,
        status=401,
        json={"error": {"message": f"Incorrect API key provided: {KEY}", "type": "auth"}},
    )
    with pytest.raises(LMBadRequest) as info:
        execute_plan(session, build_plan(lm, MESSAGES))
    assert KEY not in str(info.value)
    assert "Incorrect API key provided" in str(info.value)


# -- plan building -------------------------------------------------------------------


def test_build_plan_targets_chat_completions_with_auth_and_params() -> None:
    lm = LM("openai/gpt-4o-mini", api_base=BASE + "/", api_key=KEY, timeout=7.0, extra={"seed": 3})
    plan = build_plan(lm, MESSAGES, temperature=0.5)
    assert plan.url == URL
    assert plan.timeout == 7.0
    assert plan.model == "gpt-4o-mini"
    assert plan.headers["Authorization"] == f"Bearer {KEY}"
    assert plan.headers["Content-Type"] == "application/json"
    assert plan.json == {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "temperature": 0.5,
        "max_tokens": 512,
        "seed": 3,
    }


def test_build_plan_without_key_sends_no_authorization() -> None:
    plan = build_plan(LM("openai/m", api_base=BASE, api_key=None), MESSAGES)
    assert "Authorization" not in plan.headers


def test_build_plan_copies_messages_and_rejects_bad_input(lm: LM) -> None:
    messages = [{"role": "user", "content": "a"}]
    plan = build_plan(lm, messages)
    messages[0]["content"] = "changed"
    assert plan.json["messages"][0]["content"] == "a"
    with pytest.raises(ValueError, match="empty"):
        build_plan(lm, [])
    with pytest.raises(ValueError, match="api_key"):
        build_plan(lm, MESSAGES, api_key="x")
    with pytest.raises(TypeError):
        build_plan(lm, [{"role": "user", "content": object()}])


def test_build_plan_body_is_what_a_json_round_trip_makes_of_the_request(lm: LM) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "a", "meta": {"n": 1, "x": 0.5, "ok": True, "none": None}},
        {"role": "user", "content": ("tu", "ple"), "list": [1, [2, {"k": "v"}]]},
    ]
    plan = build_plan(lm, messages)
    params = lm.request_params()
    del params["model"]
    expected = json.loads(json.dumps({"model": lm.wire_model, "messages": messages, **params}))
    assert plan.json == expected
    assert plan.json["messages"][1]["content"] == ["tu", "ple"]  # a tuple becomes a list
    messages[1]["list"][1][1]["k"] = "changed"  # nested: the plan keeps its own copy
    assert plan.json["messages"][1]["list"][1][1]["k"] == "v"
    with pytest.raises(TypeError):
        build_plan(lm, [{"role": "user", "content": float("nan")}])


def test_plan_is_frozen_and_timeout_can_be_replaced(lm: LM) -> None:
    plan = build_plan(lm, MESSAGES)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.timeout = 1.0  # type: ignore[misc]
    shorter = dataclasses.replace(plan, timeout=1.5)
    assert shorter.timeout == 1.5
    assert shorter.json == plan.json


# -- execute_plan: status handling ----------------------------------------------------


def test_200_returns_completion_with_usage_and_sends_the_plan(
    lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    mocked.post(URL, json=ok_body("[[ ## answer ## ]]\n4"))
    plan = build_plan(lm, MESSAGES)
    completion = execute_plan(session, plan)
    assert completion.text == "[[ ## answer ## ]]\n4"
    assert completion.usage == {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12}
    assert completion.model == "gpt-4o-mini-2024"
    assert completion.finish_reason == "stop"
    assert completion.latency_s >= 0.0
    sent = mocked.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(sent.body or b"") == plan.json


def test_200_with_null_content_and_no_usage_gives_empty_text(
    lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    body = ok_body()
    body["choices"][0]["message"]["content"] = None
    del body["usage"]
    del body["model"]
    mocked.post(URL, json=body)
    completion = execute_plan(session, build_plan(lm, MESSAGES))
    assert completion.text == ""
    assert completion.usage == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert completion.model == "gpt-4o-mini"


def test_completion_round_trips_through_a_json_dict() -> None:
    completion = Completion(
        "hi", {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, "m", 0.5, "stop"
    )
    data = json.loads(json.dumps(completion.to_dict()))
    assert Completion.from_dict(data) == completion


def test_429_with_retry_after_seconds_is_rate_limited(
    lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    mocked.post(
        URL,
        status=429,
        json={"error": {"message": "Rate limit reached"}},
        headers={"Retry-After": "7"},
    )
    with pytest.raises(LMRateLimited) as info:
        execute_plan(session, build_plan(lm, MESSAGES))
    err = info.value
    assert err.status == 429
    assert err.retry_after == 7.0
    assert err.retryable
    assert "Rate limit reached" in str(err)


def test_429_with_retry_after_http_date_is_parsed(
    lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    mocked.post(URL, status=429, body="slow down", headers={"Retry-After": when})
    with pytest.raises(LMRateLimited) as info:
        execute_plan(session, build_plan(lm, MESSAGES))
    assert info.value.retry_after is not None
    assert 25.0 <= info.value.retry_after <= 31.0


def test_429_prefers_retry_after_ms(
    lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    mocked.post(URL, status=429, headers={"retry-after-ms": "250", "Retry-After": "1"})
    with pytest.raises(LMRateLimited) as info:
        execute_plan(session, build_plan(lm, MESSAGES))
    assert info.value.retry_after == pytest.approx(0.25)


def test_429_without_retry_after_has_none(
    lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    mocked.post(URL, status=429)
    with pytest.raises(LMRateLimited) as info:
        execute_plan(session, build_plan(lm, MESSAGES))
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_a_retryable_server_error(
    status: int, lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    mocked.post(URL, status=status, json={"error": {"message": "upstream overloaded"}})
    with pytest.raises(LMServerError) as info:
        execute_plan(session, build_plan(lm, MESSAGES))
    assert info.value.status == status
    assert info.value.retryable
    assert "upstream overloaded" in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"error": {"message": "max_tokens is too large", "type": "invalid"}},
            "max_tokens is too large",
        ),
        (401, {"error": {"message": "Invalid authentication"}}, "Invalid authentication"),
        (404, {"error": "model not found"}, "model not found"),
        (422, {"detail": "bad field"}, "bad field"),
    ],
)
def test_other_4xx_is_a_non_retryable_bad_request_with_server_message(
    status: int,
    body: dict[str, Any],
    expected: str,
    *,
    lm: LM,
    session: requests.Session,
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(URL, status=status, json=body)
    with pytest.raises(LMBadRequest) as info:
        execute_plan(session, build_plan(lm, MESSAGES))
    assert info.value.status == status
    assert not info.value.retryable
    assert expected in str(info.value)


def test_400_with_plain_text_body_keeps_the_text(
    lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    mocked.post(URL, status=400, body="<html>bad gateway config</html>")
    with pytest.raises(LMBadRequest, match="bad gateway config"):
        execute_plan(session, build_plan(lm, MESSAGES))


def test_408_is_a_retryable_timeout(
    lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    mocked.post(URL, status=408)
    with pytest.raises(LMTimeout) as info:
        execute_plan(session, build_plan(lm, MESSAGES))
    assert info.value.status == 408


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectTimeout("connect timed out"),
    ],
)
def test_transport_timeouts_raise_lm_timeout(
    exc: Exception, lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    mocked.post(URL, body=exc)
    with pytest.raises(LMTimeout) as info:
        execute_plan(session, build_plan(lm, MESSAGES))
    assert info.value.status is None
    assert info.value.retryable
    assert info.value.__cause__ is exc


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError("refused"),
        requests.exceptions.ChunkedEncodingError("dropped"),
    ],
)
def test_connection_failures_raise_lm_connection_error(
    exc: Exception, lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    mocked.post(URL, body=exc)
    with pytest.raises(LMConnectionError) as info:
        execute_plan(session, build_plan(lm, MESSAGES))
    assert info.value.retryable


@pytest.mark.parametrize(
    "body",
    [
        "<html>captive portal</html>",
        json.dumps({"object": "chat.completion", "choices": []}),
        json.dumps({"choices": [{"index": 0}]}),
        json.dumps([1, 2]),
    ],
)
def test_malformed_200_body_is_a_retryable_server_error(
    body: str, lm: LM, session: requests.Session, mocked: responses.RequestsMock
) -> None:
    mocked.post(URL, status=200, body=body)
    with pytest.raises(LMServerError) as info:
        execute_plan(session, build_plan(lm, MESSAGES))
    assert info.value.status == 200
    assert info.value.retryable
    assert "malformed" in str(info.value)


def test_unusable_url_is_a_bad_request(session: requests.Session) -> None:
    plan = build_plan(LM("openai/m", api_base="not a url", api_key=KEY), MESSAGES)
    with pytest.raises(LMBadRequest):
        execute_plan(session, plan)


# -- parse_retry_after ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past
        (None, None),
        ("", None),
        ("-3", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()
    assert parse_retry_after(value, now=now) == expected


# -- errors ------------------------------------------------------------------------


def test_errors_have_retryable_flags_statuses_and_readable_text() -> None:
    assert [c.retryable for c in (LMRateLimited, LMServerError, LMTimeout, LMConnectionError)] == [
        True,
        True,
        True,
        True,
    ]
    assert not any(
        c.retryable
        for c in (LMError, LMBadRequest, CircuitOpen, AdapterParseError, DeadlineExceeded)
    )
    err = LMRateLimited("slow down", retry_after=2.0)
    assert err.status == 429
    err.attempts = 3
    assert str(err) == "slow down [status=429, attempts=3, retry_after=2s]"
    assert str(LMTimeout("timed out")) == "timed out"
    with pytest.raises(ValueError, match="attempts"):
        err.attempts = 0
    parse = AdapterParseError("missing answer", text="raw completion", attempts=2)
    assert parse.text == "raw completion"
    assert parse.attempts == 2
    assert "raw completion" in str(parse)
    assert CircuitOpen("open", retry_after=1.0).retry_after == 1.0


def test_errors_survive_pickling_with_their_attributes() -> None:
    for err in (
        LMRateLimited("x", retry_after=1.5, attempts=2),
        AdapterParseError("bad", text="t", attempts=3),
        LMServerError("boom", status=503),
    ):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err)
        assert copy.__dict__ == err.__dict__
        assert str(copy) == str(err)


# -- make_session and real sockets -----------------------------------------------


def test_make_session_sizes_the_pool_and_disables_urllib3_retries() -> None:
    with make_session(17) as s:
        for prefix in ("http://", "https://"):
            adapter = s.get_adapter(prefix + "example.test")
            assert isinstance(adapter, requests.adapters.HTTPAdapter)
            assert adapter._pool_connections == 17  # type: ignore[attr-defined]
            assert adapter._pool_maxsize == 17  # type: ignore[attr-defined]
            assert adapter.max_retries.total == 0
    with pytest.raises(ValueError, match="pool_size"):
        make_session(0)


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    hits: list[str]
    mode: str

    def do_POST(self) -> None:
        self.hits.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.mode == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.mode == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"choices": [')
            self.wfile.flush()
            self.close_connection = True
        else:
            payload = json.dumps(ok_body("real")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"hits": [], "mode": "ok"})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_real_server_round_trip(server: tuple[str, type[_Handler]]) -> None:
    base, handler = server
    with make_session(2) as s:
        completion = execute_plan(
            s, build_plan(LM("openai/m", api_base=base, api_key=KEY), MESSAGES)
        )
    assert completion.text == "real"
    assert handler.hits == ["/v1/chat/completions"]


def test_real_503_is_sent_once_without_hidden_retries(server: tuple[str, type[_Handler]]) -> None:
    base, handler = server
    handler.mode = "503"
    with make_session(2) as s, pytest.raises(LMServerError):
        execute_plan(s, build_plan(LM("openai/m", api_base=base), MESSAGES))
    assert len(handler.hits) == 1


def test_real_body_dropped_mid_way_is_a_connection_error(
    server: tuple[str, type[_Handler]],
) -> None:
    base, handler = server
    handler.mode = "truncated"
    with make_session(2) as s, pytest.raises(LMConnectionError):
        execute_plan(s, build_plan(LM("openai/m", api_base=base, timeout=5.0), MESSAGES))


def test_real_refused_connection_is_a_connection_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on the port now
    lm = LM("openai/m", api_base=f"http://127.0.0.1:{port}/v1", timeout=5.0)
    with make_session(1) as s, pytest.raises(LMConnectionError):
        execute_plan(s, build_plan(lm, MESSAGES))


def test_real_silent_server_read_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts into the backlog, never answers
    try:
        port = listener.getsockname()[1]
        lm = LM("openai/m", api_base=f"http://127.0.0.1:{port}/v1", timeout=0.2)
        started = time.monotonic()
        with make_session(1) as s, pytest.raises(LMTimeout):
            execute_plan(s, build_plan(lm, MESSAGES))
        assert time.monotonic() - started < 3.0
    finally:
        listener.close()
