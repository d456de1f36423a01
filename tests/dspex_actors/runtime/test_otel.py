"""dx.otel: the bus's spans as OpenTelemetry spans (the SDK's in-memory exporter)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import dspex_actors as dx
from dspex_actors.testing import RuleBasedLMServer


@pytest.fixture
def system_options() -> dict[str, Any]:
    return {"retry": dx.RetryPolicy(base_delay=0.001, max_delay=0.01, deadline=10.0)}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def _instrument(system: dx.ActorSystem, exporter: InMemorySpanExporter) -> Any:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return dx.otel.instrument(system, tracer_provider=provider)


def test_one_predict_gives_one_program_span_with_one_child_chat_span(
    system: dx.ActorSystem, exporter: InMemorySpanExporter
) -> None:
    bridge = _instrument(system, exporter)
    dx.Predict("question -> answer")(question="Capital of France?")
    assert bridge.flush()
    spans = exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == ["Predict(question -> answer)", "chat rule-based"]
    program = next(s for s in spans if s.kind == SpanKind.INTERNAL)
    chat = next(s for s in spans if s.kind == SpanKind.CLIENT)
    assert chat.parent is not None and chat.parent.span_id == program.context.span_id
    assert chat.context.trace_id == program.context.trace_id and program.parent is None
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "rule-based"
    assert int(attributes["gen_ai.usage.input_tokens"]) > 0
    assert list(attributes["gen_ai.response.finish_reasons"]) == ["stop"]
    assert chat.end_time is not None and chat.start_time is not None
    assert chat.end_time >= chat.start_time
    bridge.uninstrument()


def test_a_retried_call_gives_two_chat_spans_under_the_same_program_span(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer, exporter: InMemorySpanExporter
) -> None:
    bridge = _instrument(system, exporter)
    lm_server.inject("503")
    dx.Predict("question -> answer")(question="Capital of France?")
    assert bridge.flush()
    spans = exporter.get_finished_spans()
    program = next(s for s in spans if s.kind == SpanKind.INTERNAL)
    chats = sorted((s for s in spans if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert len(chats) == 2
    assert all(
        c.parent is not None and c.parent.span_id == program.context.span_id for c in chats
    ), [(s.name, s.kind, s.context.span_id, s.parent and s.parent.span_id) for s in spans]
    assert chats[0].status.status_code == StatusCode.ERROR
    assert dict(chats[0].attributes or {})["error.type"] == "LMServerError"
    assert [dict(c.attributes or {})["attempt"] for c in chats] == [1, 2]
    bridge.uninstrument()
