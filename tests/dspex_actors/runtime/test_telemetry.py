"""Telemetry spans on the bus: ids across threads, GenAI attribute names, content opt-in."""

from __future__ import annotations

from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.testing import RuleBasedLMServer
from tests.dspex_actors.fixture_types import API_KEY, SystemFactory


@pytest.fixture
def system_options() -> dict[str, Any]:
    return {"retry": dx.RetryPolicy(base_delay=0.001, max_delay=0.01, deadline=10.0)}


def _topics(seen: list[dx.Event]) -> list[tuple[str, ...]]:
    return [e.topic for e in seen if e.topic[0] != "supervisor"]


def test_one_call_gives_a_program_span_with_a_child_chat_span_all_in_one_trace(
    system: dx.ActorSystem,
) -> None:
    with system.events.recording() as seen:
        dx.Predict("question -> answer")(question="Capital of France?")
    assert _topics(seen) == [
        ("program", "start"),
        ("lm", "request", "start"),
        ("lm", "request", "stop"),
        ("program", "stop"),
    ]
    spans = [e for e in seen if e.topic[0] != "supervisor"]
    program_start, lm_start, lm_stop, program_stop = spans
    assert len({e.trace_id for e in spans}) == 1 and spans[0].trace_id is not None
    assert program_start.span_id == program_stop.span_id and program_start.parent_id is None
    assert lm_start.span_id == lm_stop.span_id != program_start.span_id
    assert lm_start.parent_id == program_start.span_id
    assert program_start.data["module"] == "Predict(question -> answer)"
    assert program_start.data["inputs"] == ["question"]
    assert "input_values" not in program_start.data
    assert program_stop.data["outcome"] == "ok" and program_stop.data["duration_s"] > 0
    stop = lm_stop.data
    assert stop["gen_ai.operation.name"] == "chat"
    assert stop["gen_ai.provider.name"] == "openai"
    assert stop["gen_ai.request.model"] == "rule-based"
    assert stop["gen_ai.usage.input_tokens"] > 0 and stop["gen_ai.usage.output_tokens"] > 0
    assert stop["gen_ai.response.finish_reasons"] == ["stop"]
    assert stop["attempt"] == 1 and stop["cache_hit"] is False and stop["duration_s"] > 0


def test_a_retried_call_gives_an_exception_span_a_retry_and_a_second_attempt_in_one_trace(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    lm_server.inject("500")
    with system.events.recording(("lm",)) as seen:
        dx.Predict("question -> answer")(question="Capital of France?")
    assert [e.topic for e in seen] == [
        ("lm", "request", "start"),
        ("lm", "request", "exception"),
        ("lm", "retry"),
        ("lm", "request", "start"),
        ("lm", "request", "stop"),
    ]
    failed, retry, second = seen[1], seen[2], seen[4]
    assert failed.data["error.type"] == "LMServerError" and failed.data["attempt"] == 1
    assert "error.message" in failed.data
    assert retry.data["reason"] == "LMServerError" and retry.data["delay_s"] >= 0
    assert second.data["attempt"] == 2
    assert len({e.trace_id for e in seen}) == 1
    assert failed.parent_id == second.parent_id == retry.span_id  # both under the program span
    assert failed.span_id != second.span_id


def test_a_failed_call_ends_its_program_span_with_the_error_type(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    lm_server.inject("400")
    with system.events.recording(("program",)) as seen, pytest.raises(dx.LMBadRequest):
        dx.Predict("question -> answer")(question="Capital of France?")
    assert [e.topic for e in seen] == [("program", "start"), ("program", "exception")]
    assert seen[1].data["error.type"] == "LMBadRequest"
    assert seen[1].data["outcome"] == "LMBadRequest"


def test_a_cache_hit_is_a_cache_event_and_a_chat_span_marked_cache_hit(
    start_system: SystemFactory,
) -> None:
    system = start_system()
    qa = dx.Predict("question -> answer")
    with system.events.recording(("cache",)) as misses:
        qa(question="Capital of France?")
    with system.events.recording() as seen:
        qa(question="Capital of France?")
    assert [e.topic for e in misses] == [("cache", "miss")]
    assert _topics(seen) == [
        ("program", "start"),
        ("cache", "hit"),
        ("lm", "request", "start"),
        ("lm", "request", "stop"),
        ("program", "stop"),
    ]
    assert seen[-2].data["cache_hit"] is True and seen[-2].data["attempt"] == 0
    assert len({e.trace_id for e in seen if e.topic[0] != "supervisor"}) == 1


def test_a_user_event_published_inside_a_module_carries_the_calls_trace(
    system: dx.ActorSystem,
) -> None:
    class Noting(dx.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qa = dx.Predict("question -> answer")

        def forward(self, question: str) -> Any:
            system.events.publish(("app", "note"), {"q": question})
            return self.qa(question=question)

    with system.events.recording() as seen:
        Noting()(question="Capital of France?")
    note = next(e for e in seen if e.topic == ("app", "note"))
    program = next(e for e in seen if e.topic == ("program", "start"))
    assert note.trace_id == program.trace_id and note.span_id == program.span_id


def test_messages_and_outputs_appear_only_with_record_content_and_the_key_never(
    start_system: SystemFactory,
) -> None:
    for record in (False, True):
        system = start_system(cache=False, record_content=record)
        with system.events.recording() as seen:
            dx.Predict("question -> answer")(question="Capital of France?")
        text = repr([e.data for e in seen])
        assert API_KEY not in text
        assert ("Capital of France?" in text) is record
        assert ("gen_ai.input.messages" in text) is record
        assert ("Paris" in text) is record
        system.shutdown()


def test_a_breaker_opening_is_a_breaker_state_event(
    start_system: SystemFactory, lm_server: RuleBasedLMServer
) -> None:
    system = start_system(
        cache=False,
        retry=dx.RetryPolicy(max_attempts=1),
        lm_options={"breaker_mode": "consecutive", "breaker_threshold": 2},
    )
    lm_server.inject("500", "500")
    qa = dx.Predict("question -> answer")
    with system.events.recording(("breaker",)) as seen:
        for _ in range(2):
            with pytest.raises(dx.LMServerError):
                qa(question="Capital of France?")
    assert [(e.topic, e.data["old"], e.data["new"]) for e in seen] == [
        (("breaker", "state"), "closed", "open")
    ]
    assert seen[0].data["lm"] == "default" and seen[0].trace_id is not None
