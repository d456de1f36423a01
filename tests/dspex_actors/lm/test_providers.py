"""Native providers (Anthropic Messages, Gemini generateContent) against the loopback server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

import dspex_actors as dx
from dspex_actors.adapters import ChatAdapter
from dspex_actors.lm import LM
from dspex_actors.lm._http import build_plan, execute_plan, make_session
from dspex_actors.lm._plan import RequestPlan
from dspex_actors.primitives import (
    LMBadRequest,
    LMRateLimited,
    LMRefused,
    LMServerError,
    LMTruncated,
)
from dspex_actors.signatures import ensure_signature
from dspex_actors.testing import RuleBasedLMServer

KEY = "sk-test-0123456789abcdef"
QUESTION = {"question": "What is the capital of France?"}


@pytest.fixture
def server() -> Iterator[RuleBasedLMServer]:
    with RuleBasedLMServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture
def session() -> Iterator[requests.Session]:
    s = make_session(4)
    yield s
    s.close()


def _lms(srv: RuleBasedLMServer, key: str = KEY) -> dict[str, LM]:
    return {
        "openai": LM("openai/rule", api_base=srv.api_base, api_key=key),
        "anthropic": LM("anthropic/claude-sonnet-4-5", api_base=srv.anthropic_base, api_key=key),
        "gemini": LM("gemini/gemini-2.5-flash", api_base=srv.gemini_base, api_key=key),
    }


def _messages() -> list[dict[str, Any]]:
    demos = [dx.Example(question="What is 2 + 2?", answer="4")]
    return ChatAdapter().format(ensure_signature("question -> answer"), demos, QUESTION)


def _plan(lm: LM, **overrides: Any) -> RequestPlan:
    return build_plan(lm, _messages(), **overrides)


def test_the_model_prefix_picks_the_wire_format_and_its_public_endpoint() -> None:
    assert LM("anthropic/claude-sonnet-4-5", api_key="k").chat_url == (
        "https://api.anthropic.com/v1/messages"
    )
    assert LM("gemini/gemini-2.5-flash", api_key="k").chat_url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert (
        LM("openai/gpt-4o-mini", api_base="http://h/v1").chat_url == "http://h/v1/chat/completions"
    )
    assert LM("anthropic/claude-sonnet-4-5").provider == "anthropic"
    assert LM("meta-llama/Llama-3-8B", api_base="http://h/v1").provider == "openai"


def test_anthropic_requests_carry_x_api_key_version_top_level_system_and_max_tokens() -> None:
    lm = LM("anthropic/claude-sonnet-4-5", api_base="http://h", api_key=KEY)
    plan = _plan(lm, stop="###")
    assert plan.headers["x-api-key"] == KEY
    assert plan.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in plan.headers
    assert KEY not in repr(plan)
    body = plan.json
    assert body["max_tokens"] == 512 and body["model"] == "claude-sonnet-4-5"
    assert body["system"] == _messages()[0]["content"]
    assert all(m["role"] in ("user", "assistant") for m in body["messages"])
    assert body["stop_sequences"] == ["###"] and "stop" not in body


def test_gemini_requests_carry_x_goog_api_key_system_instruction_and_generation_config() -> None:
    lm = LM("gemini/gemini-2.5-flash", api_base="http://h/v1beta", api_key=KEY)
    plan = _plan(lm, response_format={"type": "json_object"}, top_p=0.5)
    assert plan.headers["x-goog-api-key"] == KEY
    assert "Authorization" not in plan.headers and KEY not in repr(plan)
    body = plan.json
    assert body["systemInstruction"] == {"parts": [{"text": _messages()[0]["content"]}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {
        "temperature": 0.0,
        "maxOutputTokens": 512,
        "responseMimeType": "application/json",
        "topP": 0.5,
    }


def test_the_same_chat_adapter_prompt_goes_out_through_every_provider_with_identical_content(
    server: RuleBasedLMServer, session: requests.Session
) -> None:
    for lm in _lms(server).values():
        execute_plan(session, _plan(lm))
    openai, anthropic, gemini = server.requests
    sent = [m["content"] for m in openai["messages"]]
    assert sent == [m["content"] for m in _messages()]
    assert [anthropic["system"], *(m["content"] for m in anthropic["messages"])] == sent
    gemini_texts = [gemini["systemInstruction"]["parts"][0]["text"]]
    gemini_texts += [c["parts"][0]["text"] for c in gemini["contents"]]
    assert gemini_texts == sent


def test_every_provider_answers_a_program_with_usage_mapped_to_one_shape(
    server: RuleBasedLMServer,
) -> None:
    with dx.start(lms={"default": _lms(server)["openai"], **_lms(server)}, cache=None, name="prov"):
        results = {}
        for name in ("openai", "anthropic", "gemini"):
            prediction = dx.Predict("question -> answer", lm=name)(**QUESTION)
            results[name] = (prediction.answer, prediction.get_lm_usage())
    answers = {answer for answer, _ in results.values()}
    assert answers == {"The answer is Paris."}
    for name, (_, usage) in results.items():
        (counts,) = usage.values()
        assert counts["prompt_tokens"] > 0 and counts["completion_tokens"] > 0, name
        assert counts["total_tokens"] == counts["prompt_tokens"] + counts["completion_tokens"]


def _raw_post(url: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
    response = requests.post(url, headers=headers, data=json.dumps(body), timeout=5)
    return response.status_code, response.json()


def test_the_anthropic_loopback_refuses_what_the_messages_api_refuses(
    server: RuleBasedLMServer,
) -> None:
    url = server.anthropic_base + "/v1/messages"
    good = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    body = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    status, error = _raw_post(url, good, body)
    assert status == 400
    assert error == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    body["max_tokens"] = 10
    status, error = _raw_post(
        url, {"Authorization": f"Bearer {KEY}", **good} | {"x-api-key": ""}, body
    )
    assert (status, error["error"]["type"]) == (401, "authentication_error")
    status, error = _raw_post(url, {"x-api-key": KEY}, body)
    assert status == 400 and "anthropic-version" in error["error"]["message"]
    system_role = {**body, "messages": [{"role": "system", "content": "s"}, *body["messages"]]}
    status, error = _raw_post(url, good, system_role)
    assert status == 400 and "system" in error["error"]["message"]
    assert _raw_post(url, good, body)[0] == 200


def test_the_gemini_loopback_refuses_a_missing_or_wrong_key_and_bad_roles(
    server: RuleBasedLMServer,
) -> None:
    url = server.gemini_base + "/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    status, error = _raw_post(url, {"Authorization": f"Bearer {KEY}"}, body)
    assert (status, error["error"]["status"]) == (403, "PERMISSION_DENIED")
    status, error = _raw_post(url, {"x-goog-api-key": "wrong"}, body)
    assert (status, error["error"]["status"]) == (400, "INVALID_ARGUMENT")
    bad_role = {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}
    status, error = _raw_post(url, {"x-goog-api-key": KEY}, bad_role)
    assert status == 400 and "valid role" in error["error"]["message"]
    assert _raw_post(url, {"x-goog-api-key": KEY}, body)[0] == 200


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_a_wrong_key_is_a_bad_request_naming_the_lm_and_never_showing_the_key(
    server: RuleBasedLMServer, session: requests.Session, provider: str
) -> None:
    wrong = "sk-wrong-9876543210fedcba"
    lm = _lms(server, key=wrong)[provider]
    with pytest.raises(LMBadRequest) as info:
        execute_plan(session, _plan(lm))
    assert lm.label in str(info.value)
    assert wrong not in str(info.value) and wrong[:8] not in str(info.value)
    assert info.value.status in (400, 401)


def test_anthropic_overloaded_529_is_a_retryable_server_error(
    server: RuleBasedLMServer, session: requests.Session
) -> None:
    server.inject("503")
    with pytest.raises(LMServerError) as info:
        execute_plan(session, _plan(_lms(server)["anthropic"]))
    assert info.value.status == 529 and info.value.retryable
    assert "Overloaded" in str(info.value)


def test_rate_limits_carry_retry_after_from_the_header_or_gemini_retry_info(
    server: RuleBasedLMServer, session: requests.Session
) -> None:
    server.inject(dx.testing.Fault("429", retry_after=7), dx.testing.Fault("429", retry_after=3))
    with pytest.raises(LMRateLimited) as anthropic:
        execute_plan(session, _plan(_lms(server)["anthropic"]))
    assert anthropic.value.retry_after == 7.0
    with pytest.raises(LMRateLimited) as gemini:
        execute_plan(session, _plan(_lms(server)["gemini"]))
    assert gemini.value.retry_after == 3.0
    assert gemini.value.retryable and gemini.value.status == 429


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_a_cut_answer_is_truncated_in_every_provider(
    server: RuleBasedLMServer, session: requests.Session, provider: str
) -> None:
    with pytest.raises(LMTruncated) as info:
        execute_plan(session, _plan(_lms(server)[provider], max_tokens=2))
    assert info.value.partial_length > 0


class _Canned:
    """A plan whose answer we hand to the provider's parser directly."""

    def __init__(self, provider: str) -> None:
        lm = {
            "anthropic": LM("anthropic/claude-sonnet-4-5", api_base="http://h", api_key=KEY),
            "gemini": LM("gemini/gemini-2.5-flash", api_base="http://h/v1beta", api_key=KEY),
        }[provider]
        self.plan = _plan(lm)
        from dspex_actors.lm._http import provider_for

        self.provider = provider_for(self.plan)

    def parse(self, body: Any, status: int = 200) -> Any:
        return self.provider.parse(json.dumps(body).encode(), status, None, self.plan, 0.01)


def test_anthropic_stop_reasons_map_to_one_set_and_usage_counts_cache_tokens() -> None:
    canned = _Canned("anthropic")
    base = {"type": "message", "model": "claude-x", "content": [{"type": "text", "text": "hi"}]}
    usage = {"input_tokens": 5, "cache_read_input_tokens": 2, "output_tokens": 3}
    done = canned.parse({**base, "stop_reason": "end_turn", "usage": usage})
    assert (done.text, done.finish_reason, done.model) == ("hi", "stop", "claude-x")
    assert done.usage == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert canned.parse({**base, "stop_reason": "tool_use"}).finish_reason == "tool"
    with pytest.raises(LMRefused) as refused:
        canned.parse({**base, "stop_reason": "refusal"})
    assert refused.value.finish_reason == "refusal"
    with pytest.raises(LMTruncated):
        canned.parse({**base, "stop_reason": "max_tokens"})
    with pytest.raises(LMServerError):
        canned.parse({"type": "message", "content": None})


def test_gemini_finish_reasons_and_blocked_prompts_map_to_one_set() -> None:
    canned = _Canned("gemini")

    def answer(finish: str, parts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        content = {"parts": parts or [{"text": "hi"}], "role": "model"}
        return {
            "candidates": [{"content": content, "finishReason": finish, "index": 0}],
            "usageMetadata": {
                "promptTokenCount": 4,
                "candidatesTokenCount": 2,
                "totalTokenCount": 6,
            },
        }

    done = canned.parse(answer("STOP", [{"text": "thinking", "thought": True}, {"text": "hi"}]))
    assert (done.text, done.finish_reason) == ("hi", "stop")
    assert done.usage == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    tool = canned.parse(answer("STOP", [{"functionCall": {"name": "f", "args": {}}}]))
    assert tool.finish_reason == "tool"
    for reason in ("SAFETY", "RECITATION", "PROHIBITED_CONTENT"):
        with pytest.raises(LMRefused) as refused:
            canned.parse(answer(reason))
        assert refused.value.finish_reason == "safety"
    with pytest.raises(LMRefused):
        canned.parse({"promptFeedback": {"blockReason": "SAFETY"}})
    with pytest.raises(LMTruncated):
        canned.parse(answer("MAX_TOKENS"))
