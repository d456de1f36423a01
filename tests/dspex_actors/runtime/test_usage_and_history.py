"""Per-call token usage on the prediction, and a bounded history of LM calls."""

from __future__ import annotations

import io
from typing import Any

import dspex_actors as dx
from tests.dspex_actors.fixture_types import SystemFactory


class TwoSteps(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = dx.Predict("question -> answer")
        self.second = dx.ChainOfThought("question -> answer")

    def forward(self, question: str) -> Any:
        self.first(question=question)
        return self.second(question=question)


def test_get_lm_usage_sums_every_lm_call_of_the_call_keyed_by_lm(
    start_system: SystemFactory, lm_server: Any
) -> None:
    system = start_system(cache=False)

    pred = TwoSteps()(question="What is 2 + 3?")

    usage = pred.get_lm_usage()
    assert set(usage) == {"openai/rule-based"}
    counts = usage["openai/rule-based"]
    assert counts["total_tokens"] == counts["prompt_tokens"] + counts["completion_tokens"]
    assert lm_server.request_count == 2
    lm_stats = system.stats()["lms"]["default"]  # the client's counters of both calls
    assert counts["prompt_tokens"] == lm_stats["prompt_tokens"] > 0
    assert counts["completion_tokens"] == lm_stats["completion_tokens"] > 0


def test_a_cache_hit_uses_no_tokens(start_system: SystemFactory) -> None:
    start_system()
    qa = dx.Predict("question -> answer")
    first = qa(question="What is the capital of Peru?")

    again = qa(question="What is the capital of Peru?")

    assert first.get_lm_usage()["openai/rule-based"]["total_tokens"] > 0
    assert again.get_lm_usage() == {}


def test_history_keeps_the_last_calls_with_messages_and_no_key(
    start_system: SystemFactory,
) -> None:
    system = start_system(history_size=3, api_key="sk-HISTORY-SECRET-123")
    qa = dx.Predict("question -> answer")
    for i in range(5):
        qa(question=f"What is {i} + {i}?")
    qa(question="What is 4 + 4?")  # a cache hit

    history = system.history(n=10)

    assert len(history) == 3  # bounded
    assert [h["cache_hit"] for h in history] == [False, False, True]
    assert "What is 4 + 4?" in history[-1]["messages"][-1]["content"]
    assert history[0]["usage"]["total_tokens"] > 0 and history[-1]["usage"] == {}
    assert "SECRET" not in repr(history)
    history[0]["messages"].clear()  # a copy: the system's history is untouched
    assert system.history(n=3)[0]["messages"]


def test_inspect_history_prints_like_dspy(start_system: SystemFactory) -> None:
    system = start_system()
    dx.Predict("question -> answer")(question="What is 7 + 1?")
    out = io.StringIO()

    system.inspect_history(n=1, file=out)

    text = out.getvalue()
    for part in ("System message:", "User message:", "Response:", "[[ ## answer ## ]]"):
        assert part in text
    assert "\x1b[" not in text  # no colour codes in a file
    assert system.history(0) == []


def test_history_size_zero_keeps_nothing(start_system: SystemFactory) -> None:
    system = start_system(history_size=0)
    dx.Predict("question -> answer")(question="What is 1 + 1?")
    assert system.history() == []


def test_the_json_path_asks_the_lm_for_json_mode_as_dspy_does(
    start_system: SystemFactory, lm_server: Any
) -> None:
    # A model DSPy sends JSON mode to (tests/fixtures/dspy/response_format.json).
    start_system(cache=False, lm_options={"response_format": "json_object"})
    lm_server.inject("bad_format")  # the chat answer does not parse: the JSON fallback runs

    dx.Predict("question -> answer")(question="What is 6 + 1?")

    first, second = lm_server.requests[-2:]
    assert "response_format" not in first  # the chat format asks for no JSON mode
    assert second["response_format"] == {"type": "json_object"}


def test_the_json_path_sends_no_response_format_to_a_model_dspy_does_not_know(
    start_system: SystemFactory, lm_server: Any
) -> None:
    start_system(cache=False)  # "openai/rule-based": not in DSPy's model table
    lm_server.inject("bad_format")

    dx.Predict("question -> answer")(question="What is 6 + 1?")

    first, second = lm_server.requests[-2:]
    assert "response_format" not in first
    assert "response_format" not in second
    assert "JSON" in second["messages"][0]["content"]  # the JSON adapter's prompt went out


def test_a_predictor_config_wins_over_the_adapters_response_format(
    start_system: SystemFactory, lm_server: Any
) -> None:
    start_system(cache=False)
    mine = {"type": "text"}
    qa = dx.Predict("question -> answer", adapter=dx.JSONAdapter(), response_format=mine)

    qa(question="What is 6 + 2?")

    assert lm_server.requests[-1]["response_format"] == mine
