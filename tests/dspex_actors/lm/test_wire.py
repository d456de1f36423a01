"""The wire's edge cases, against real loopback servers.

The rule-based server for what it can produce (a cut answer, the token parameter it
received); a scripted ``http.server`` (``_loopback.ScriptedServer``) for the exact
bodies seen from LiteLLM's proxy and the ``openai`` SDK's types: refusals, content
filters, ``error`` objects in a 200, list-of-parts content, choices out of order.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from structlog.testing import capture_logs

import dspex_actors as dx
from dspex_actors.lm import build_plan, execute_plan, make_session
from dspex_actors.lm._config import uses_max_completion_tokens
from dspex_actors.primitives._errors import MAX_EXCERPT_CHARS
from tests.dspex_actors.lm._loopback import Reply, ScriptedServer, completion

MESSAGES = [{"role": "user", "content": "What is 2+2?"}]
ANSWER = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with make_session(2) as s:
        yield s


def _lm(server: ScriptedServer | dx.RuleBasedLMServer, **kwargs: Any) -> dx.LM:
    return dx.LM("openai/wire-test", api_base=server.api_base, api_key="sk-wire", **kwargs)


def _system(server: ScriptedServer | dx.RuleBasedLMServer, **kwargs: Any) -> dx.ActorSystem:
    options: dict[str, Any] = {
        "retry": dx.RetryPolicy(base_delay=0.01, max_delay=0.02, deadline=10.0),
        "name": "wire",
        "configure_logs": False,
    }
    options.update(kwargs)
    lm = options.pop("lm", None) or _lm(server)
    return dx.start(lm=lm, **options)


def _call(server: ScriptedServer, body: Any, status: int = 200) -> dx.Completion:
    with make_session(1) as s:
        server.set_default(Reply(status=status, body=body))
        return execute_plan(s, build_plan(_lm(server), MESSAGES))


# -- truncation -----------------------------------------------------------------------


def test_a_cut_answer_raises_lm_truncated_and_is_neither_retried_nor_cached() -> None:
    with dx.RuleBasedLMServer() as server, _system(server, lm=_lm(server, max_tokens=7)):
        qa = dx.Predict("question -> answer")
        with capture_logs() as logs, pytest.raises(dx.LMTruncated) as info:
            qa(question="What is the capital of France?")
        assert server.request_count == 1  # not retried, no JSON fallback either
        assert info.value.partial_text.startswith("[[ ## answer ## ]]")
        assert info.value.partial_length == len(info.value.partial_text)
        assert "max_tokens=7" in str(info.value)
        assert info.value.partial_text.endswith("The answer")  # cut before "is Paris."
        assert any(e["event"] == "lm.truncated" and e["log_level"] == "warning" for e in logs)
        with pytest.raises(dx.LMTruncated):
            qa(question="What is the capital of France?")
        assert server.request_count == 2  # the cut answer was not cached


def test_a_truncated_answer_is_retried_when_the_policy_says_so() -> None:
    retry = dx.RetryPolicy(max_attempts=3, base_delay=0.01, retry_also=(dx.LMTruncated,))
    with (
        dx.RuleBasedLMServer() as server,
        _system(server, lm=_lm(server, max_tokens=3), retry=retry),
        pytest.raises(dx.LMTruncated) as info,
    ):
        dx.Predict("question -> answer")(question="What is the capital of France?")
    assert server.request_count == 3
    assert info.value.attempts == 3


def test_the_partial_text_of_a_truncation_is_a_bounded_excerpt(scripted: ScriptedServer) -> None:
    long_text = "word " * 100_000
    with pytest.raises(dx.LMTruncated) as info:
        _call(scripted, completion(long_text, finish="length"))
    assert info.value.partial_length == len(long_text)
    assert len(info.value.partial_text) < MAX_EXCERPT_CHARS + 100
    assert len(str(info.value)) < 1000


# -- refusals -----------------------------------------------------------------------


def test_a_refusal_with_null_content_raises_lm_refused_with_its_text_once(
    scripted: ScriptedServer,
) -> None:
    refusal = "I'm sorry, I can't help with that."
    scripted.set_default(Reply(body=completion(None, refusal=refusal)))
    with _system(scripted), pytest.raises(dx.LMRefused) as info:
        dx.Predict("question -> answer")(question="How do I pick a lock?")
    assert info.value.refusal == refusal
    assert refusal in str(info.value)
    assert len(scripted.requests) == 1  # no retry, no JSON fallback POST


def test_a_content_filter_finish_raises_lm_refused(scripted: ScriptedServer) -> None:
    with pytest.raises(dx.LMRefused) as info:
        _call(scripted, completion("", finish="content_filter"))
    assert info.value.finish_reason == "content_filter"
    assert "content filter" in str(info.value)
    assert not info.value.retryable


def test_a_refusal_part_in_list_content_raises_lm_refused(scripted: ScriptedServer) -> None:
    parts = [{"type": "refusal", "refusal": "No."}]
    with pytest.raises(dx.LMRefused) as info:
        _call(scripted, completion(parts))
    assert info.value.refusal == "No."


# -- error objects in a 200 -----------------------------------------------------------


def test_a_200_with_insufficient_quota_raises_lm_quota_exceeded_and_is_not_retried(
    scripted: ScriptedServer,
) -> None:
    error = {"message": "You exceeded your current quota", "type": "insufficient_quota"}
    scripted.set_default(Reply(body={"error": error}))
    with _system(scripted), pytest.raises(dx.LMQuotaExceeded) as info:
        dx.Predict("question -> answer")(question="Hi?")
    assert len(scripted.requests) == 1
    assert isinstance(info.value, dx.LMRateLimited)  # code catching 429s still catches it
    assert not info.value.retryable
    assert "exceeded your current quota" in str(info.value)


def test_a_429_with_insufficient_quota_is_quota_exceeded_not_a_retry(
    scripted: ScriptedServer,
) -> None:
    error = {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}
    with pytest.raises(dx.LMQuotaExceeded) as info:
        _call(scripted, {"error": error}, status=429)
    assert info.value.status == 429


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"message": "slow down", "type": "rate_limit_exceeded"}, dx.LMRateLimited),
        ({"message": "slow down", "type": "None", "code": "429"}, dx.LMRateLimited),
        ({"message": "boom", "type": "server_error"}, dx.LMServerError),
        ({"message": "overloaded", "type": "overloaded_error"}, dx.LMServerError),
        ({"message": "bad param", "type": "invalid_request_error"}, dx.LMBadRequest),
        ({"message": "who knows"}, dx.LMServerError),
        ("a bare string error", dx.LMServerError),
    ],
)
def test_a_200_error_object_maps_to_the_error_its_type_names(
    error: Any, expected: type[dx.LMError], scripted: ScriptedServer
) -> None:
    with pytest.raises(dx.LMError) as info:
        _call(scripted, {"error": error})
    assert type(info.value) is expected
    assert info.value.status == 200
    assert "error object in an HTTP 200 response" in str(info.value)


def test_a_200_with_both_error_and_choices_is_an_error(scripted: ScriptedServer) -> None:
    body = completion(ANSWER)
    body["error"] = {"message": "upstream failed", "type": "server_error"}
    with pytest.raises(dx.LMServerError, match="upstream failed"):
        _call(scripted, body)


# -- content and choices --------------------------------------------------------------


def test_content_as_a_list_of_parts_is_joined(scripted: ScriptedServer) -> None:
    parts = [
        {"type": "text", "text": "[[ ## answer ## ]]\n"},
        {"type": "image_url", "image_url": {"url": "http://x"}},
        {"type": "output_text", "text": "Paris\n\n[[ ## completed ## ]]"},
    ]
    scripted.set_default(Reply(body=completion(parts)))
    with _system(scripted):
        assert dx.Predict("question -> answer")(question="Capital?").answer == "Paris"
    assert len(scripted.requests) == 1


def test_choices_are_taken_by_index_not_by_position(scripted: ScriptedServer) -> None:
    body = completion("second")
    body["choices"] = [
        {"index": 1, "message": {"role": "assistant", "content": "one"}, "finish_reason": "stop"},
        {"index": 0, "message": {"role": "assistant", "content": "zero"}, "finish_reason": "stop"},
    ]
    assert _call(scripted, body).text == "zero"


def test_usage_that_is_not_a_finite_number_counts_as_zero(scripted: ScriptedServer) -> None:
    body = completion("ok")
    body["usage"] = {"prompt_tokens": 1e400, "completion_tokens": "7", "total_tokens": None}
    assert _call(scripted, body).usage == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
    }


# -- request shape --------------------------------------------------------------------


def test_stream_true_in_extra_is_refused_at_construction_naming_the_lm() -> None:
    with pytest.raises(ValueError, match=r"LM\('openai/gpt-4o-mini'\).*stream") as info:
        dx.LM("openai/gpt-4o-mini", extra={"stream": True})
    assert "not supported" in str(info.value)
    dx.LM("openai/gpt-4o-mini", extra={"stream": False})  # harmless, accepted


def test_stream_as_a_per_call_override_is_a_bad_request_naming_the_lm() -> None:
    with dx.RuleBasedLMServer() as server, _system(server):
        qa = dx.Predict("question -> answer", stream=True)
        with pytest.raises(dx.LMBadRequest, match="stream") as info:
            qa(question="Hi?")
        assert f"at {server.api_base}" in str(info.value)
        assert server.request_count == 0


def test_max_completion_tokens_is_sent_when_the_lm_says_so() -> None:
    with dx.RuleBasedLMServer() as server:
        lm = _lm(server, max_tokens=3, max_tokens_param="max_completion_tokens")
        with _system(server, lm=lm), pytest.raises(dx.LMTruncated):
            dx.Predict("question -> answer")(question="What is the capital of France?")
        sent = server.requests[-1]
    assert sent["max_completion_tokens"] == 3  # the server honoured it: the answer was cut
    assert "max_tokens" not in sent


@pytest.mark.parametrize(
    ("model", "param"),
    [
        ("openai/o1", "max_completion_tokens"),
        ("openai/o3-mini", "max_completion_tokens"),
        ("openai/o4-mini-2025-04-16", "max_completion_tokens"),
        ("openai/gpt-5", "max_completion_tokens"),
        ("openai/gpt-5-mini", "max_completion_tokens"),
        ("azure/gpt-5.1", "max_completion_tokens"),
        ("openai/gpt-5-chat-latest", "max_tokens"),
        ("openai/gpt-4o-mini", "max_tokens"),
        ("openai/o1x", "max_tokens"),
        ("openai/rule-based", "max_tokens"),
    ],
)
def test_reasoning_model_families_get_max_completion_tokens_by_default(
    model: str, param: str
) -> None:
    lm = dx.LM(model, api_base="http://127.0.0.1:9/v1")
    assert lm.tokens_param == param
    assert uses_max_completion_tokens(model) is (param == "max_completion_tokens")
    body = build_plan(lm, MESSAGES, max_tokens=77).json
    assert body[param] == 77
    other = "max_tokens" if param == "max_completion_tokens" else "max_completion_tokens"
    assert other not in body
    forced = dx.LM(model, api_base="http://127.0.0.1:9/v1", max_tokens_param="max_tokens")
    assert "max_tokens" in build_plan(forced, MESSAGES).json


# -- errors name the LM and the URL, and say which timeout fired ----------------------


def test_errors_name_the_lm_and_the_base_url(scripted: ScriptedServer) -> None:
    scripted.set_default(Reply(status=503, body={"error": {"message": "down"}}))
    with make_session(1) as s, pytest.raises(dx.LMServerError) as info:
        execute_plan(s, build_plan(_lm(scripted), MESSAGES))
    assert str(info.value).startswith(f"openai/wire-test at {scripted.api_base}: HTTP 503")


def test_the_base_url_in_errors_never_shows_user_info_or_query() -> None:
    lm = dx.LM("openai/m", api_base="http://user:pass@127.0.0.1:9/v1?api-key=secret")
    assert lm.label == "openai/m at http://127.0.0.1:9/v1"


def test_circuit_open_names_the_lm_and_the_url(scripted: ScriptedServer) -> None:
    scripted.set_default(Reply(status=500, body={"error": {"message": "down"}}))
    lm = _lm(scripted, breaker_mode="consecutive", breaker_threshold=1, breaker_cooldown=60.0)
    retry = dx.RetryPolicy(max_attempts=1)
    with _system(scripted, lm=lm, retry=retry):
        qa = dx.Predict("question -> answer")
        with pytest.raises(dx.LMServerError):
            qa(question="a?")
        with pytest.raises(dx.CircuitOpen) as info:
            qa(question="b?")
    assert f"openai/wire-test at {scripted.api_base}" in str(info.value)
    assert "circuit open" in str(info.value)


def test_a_read_timeout_says_it_was_the_read_timeout_and_after_how_long() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        base = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        lm = dx.LM("openai/m", api_base=base, timeout=0.3)
        with make_session(1) as s, pytest.raises(dx.LMTimeout) as info:
            execute_plan(s, build_plan(lm, MESSAGES))
    finally:
        listener.close()
    assert f"openai/m at {base}: read timed out after 0.3 s" in str(info.value)


def test_a_connect_timeout_says_it_was_the_connect_timeout(session: requests.Session) -> None:
    lm = dx.LM("openai/m", api_base="http://llm.test/v1")
    with responses.RequestsMock() as mocked:
        mocked.post("http://llm.test/v1/chat/completions", body=requests.ConnectTimeout("too slow"))
        with pytest.raises(dx.LMTimeout) as info:
            execute_plan(session, build_plan(lm, MESSAGES))
    assert "connect timed out after 10 s" in str(info.value)


def test_the_default_timeouts_and_limits() -> None:
    lm = dx.LM("openai/m", api_base="http://127.0.0.1:9/v1")
    assert (lm.connect_timeout, lm.timeout, lm.attempt_timeout) == (10.0, 30.0, None)
    assert lm.max_response_bytes == 16 * 1024 * 1024
    plan = build_plan(lm, MESSAGES)
    assert (plan.connect_timeout, plan.timeout, plan.attempt_timeout) == (10.0, 30.0, None)
