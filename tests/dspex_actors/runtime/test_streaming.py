"""Streaming: SSE parsing, field listeners, dx.streamify end to end per provider."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.lm import SSEParser
from dspex_actors.lm._plan import RequestPlan
from dspex_actors.lm._provider import OPENAI
from dspex_actors.runtime._stream import ChatFieldSplitter, JSONFieldSplitter
from dspex_actors.testing import RuleBasedLMServer

KEY = "sk-stream-0123456789abcdef"


def _feed_bytes(parser: SSEParser, data: bytes, step: int) -> list[tuple[str, str]]:
    out = []
    for i in range(0, len(data), step):
        out += [(e.event, e.data) for e in parser.feed(data[i : i + step])]
    return out


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_sse_parsing_is_the_same_however_the_bytes_are_split(step: int) -> None:
    stream = (
        "\ufeff: keep-alive\r\n\r\n"
        'event: message_start\ndata: {"a": 1}\n\n'
        "data: line one\ndata: line two\r\n\r\n"
        "data:no-space\rdata: é ünïcode\r\r"
        "id: 7\nretry: 100\nunknown: x\ndata: [DONE]\n\n"
        "event: lonely\n\n"  # no data: not dispatched
        "data: cut off"  # never terminated: dropped
    ).encode()
    events = _feed_bytes(SSEParser(), stream, step)
    assert events == [
        ("message_start", '{"a": 1}'),
        ("message", "line one\nline two"),
        ("message", "no-space\né ünïcode"),
        ("message", "[DONE]"),
    ]


def test_an_sse_event_past_the_size_bound_is_refused() -> None:
    parser = SSEParser(max_event_bytes=100)
    with pytest.raises(ValueError, match="larger than 100"):
        parser.feed(b"data: " + b"x" * 60 + b"\ndata: " + b"y" * 60 + b"\n")


def test_openai_chunks_with_empty_or_null_choices_carry_usage_and_done_ends() -> None:
    plan = RequestPlan(url="http://h", headers={}, json={}, timeout=1.0, model="m")
    decoder = OPENAI.decoder(plan)
    from dspex_actors.lm._sse import SSEEvent

    text = decoder.decode(
        SSEEvent("message", json.dumps({"choices": [{"index": 0, "delta": {"content": "hi"}}]}))
    )
    assert text is not None and text.text == "hi"
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    for choices in ([], None):
        delta = decoder.decode(
            SSEEvent("message", json.dumps({"choices": choices, "usage": usage}))
        )
        assert delta is not None and delta.usage == usage and delta.text == ""
    done = decoder.decode(SSEEvent("message", "[DONE]"))
    assert done is not None and done.done
    with pytest.raises(dx.LMServerError):
        decoder.decode(
            SSEEvent("message", json.dumps({"error": {"type": "server_error", "message": "x"}}))
        )


CHAT = (
    "[[ ## reasoning ## ]]\nBecause.\n\n[[ ## answer ## ]]\nParis [sic]\n\n[[ ## completed ## ]]\n"
)


@pytest.mark.parametrize("step", [1, 2, 5, 200])
def test_chat_markers_split_across_chunks_are_recognised_and_nothing_leaks(step: int) -> None:
    splitter = ChatFieldSplitter()
    pieces = []
    for i in range(0, len(CHAT), step):
        pieces += splitter.feed(CHAT[i : i + step])
    pieces += splitter.close()
    fields: dict[str, str] = {}
    for field, text, _ in pieces:
        fields[field] = fields.get(field, "") + text
        assert "[[" not in text.replace("[sic]", "") and "##" not in text
    assert fields == {"reasoning": "Because.", "answer": "Paris [sic]", "completed": ""}
    lasts = [(f, last) for f, _, last in pieces if last]
    assert lasts == [("reasoning", True), ("answer", True), ("completed", True)]


@pytest.mark.parametrize("step", [1, 3, 100])
def test_json_keys_split_across_chunks_stream_their_decoded_values(step: int) -> None:
    text = (
        '```json\n{"reasoning": "a \\"quoted\\" \\u00e9", '
        '"answer": "Paris", "n": [1, {"x": 2}]}\n```'
    )
    splitter = JSONFieldSplitter()
    pieces = []
    for i in range(0, len(text), step):
        pieces += splitter.feed(text[i : i + step])
    fields: dict[str, str] = {}
    for field, piece, _ in pieces:
        fields[field] = fields.get(field, "") + piece
    assert fields == {"reasoning": 'a "quoted" é', "answer": "Paris", "n": '[1, {"x": 2}]'}
    assert [f for f, _, last in pieces if last] == ["reasoning", "answer", "n"]


@pytest.fixture
def server() -> Iterator[RuleBasedLMServer]:
    with RuleBasedLMServer(api_key=KEY) as srv:
        yield srv


def _lms(srv: RuleBasedLMServer) -> dict[str, dx.LM]:
    return {
        "default": dx.LM("openai/rule", api_base=srv.api_base, api_key=KEY),
        "anthropic": dx.LM("anthropic/claude-x", api_base=srv.anthropic_base, api_key=KEY),
        "gemini": dx.LM("gemini/gemini-x", api_base=srv.gemini_base, api_key=KEY),
    }


def _collect(stream: Any, **inputs: Any) -> tuple[list[dx.StreamResponse], Any]:
    items = list(stream(**inputs))
    *chunks, final = items
    assert all(isinstance(c, dx.StreamResponse) for c in chunks)
    return chunks, final


@pytest.mark.parametrize("lm", ["default", "anthropic", "gemini"])
def test_streamify_yields_field_chunks_then_the_prediction_for_every_provider(
    server: RuleBasedLMServer, lm: str
) -> None:
    with dx.start(lms=_lms(server), name=f"stream-{lm}"):
        program = dx.ChainOfThought("question -> answer", lm=lm)
        stream = dx.streamify(program, listeners=[dx.StreamListener("answer")])
        chunks, final = _collect(stream, question="What is the capital of France?")
        assert isinstance(final, dx.Prediction)
        assert "".join(c.chunk for c in chunks) == final.answer == "The answer is Paris."
        assert len(chunks) > 2 and chunks[-1].is_last_chunk
        assert not any(c.is_last_chunk for c in chunks[:-1])
        assert {(c.predict_name, c.signature_field_name) for c in chunks} == {("predict", "answer")}
        usage = final.get_lm_usage()
        (counts,) = usage.values()
        assert counts["completion_tokens"] > 0  # usage from the stream's final event


def test_a_cache_hit_yields_only_the_prediction_and_listener_state_is_per_call(
    server: RuleBasedLMServer,
) -> None:
    with dx.start(lms=_lms(server), name="stream-cache"):
        stream = dx.streamify(dx.Predict("question -> answer"))
        first, _ = _collect(stream, question="What is the capital of France?")
        again, final = _collect(stream, question="What is the capital of France?")
        other, _ = _collect(stream, question="What is the capital of Spain?")
    assert first and again == [] and final.answer == "The answer is Paris."
    assert "".join(c.chunk for c in other) == "The answer is Madrid."  # fresh state


def test_a_stream_cut_after_its_first_chunk_is_interrupted_and_never_cached(
    server: RuleBasedLMServer,
) -> None:
    with dx.start(lms=_lms(server), name="stream-cut") as system:
        stream = dx.streamify(dx.Predict("question -> answer", lm="anthropic"))
        server.inject("stream_cut")
        got: list[Any] = []
        iterator = stream(question="What is the capital of France?")
        with pytest.raises(dx.LMStreamInterrupted) as info:
            got.extend(iterator)
        assert info.value.chunks >= 1 and info.value.partial_text
        assert info.value.partial_text.startswith("[[ ## answer ## ]]")
        assert all(isinstance(i, dx.StreamResponse) for i in got)
        assert server.request_count == 1  # not retried
        chunks, final = _collect(stream, question="What is the capital of France?")
        assert chunks and final.answer == "The answer is Paris."  # streamed again: not cached
        stats = system.lm("anthropic").ask(dx.messages.GetStats(), timeout=5)
        assert stats["errors_by_type"] == {"LMStreamInterrupted": 1}
        assert stats["usage_unknown"] == 1  # the cut stream's tokens: unknown, not zero


def test_a_stream_that_fails_before_its_first_chunk_is_retried(server: RuleBasedLMServer) -> None:
    retry = dx.RetryPolicy(base_delay=0.01, max_delay=0.02)
    with dx.start(lms=_lms(server), retry=retry, name="stream-retry"):
        stream = dx.streamify(dx.Predict("question -> answer", lm="anthropic"))
        server.inject("503")  # Anthropic's 529 overloaded_error
        chunks, final = _collect(stream, question="What is the capital of France?")
    assert final.answer == "The answer is Paris." and chunks
    assert server.request_count == 2


def test_a_slow_consumer_holds_the_stream_back_with_bounded_buffering(
    server: RuleBasedLMServer,
) -> None:
    with dx.start(lms=_lms(server), name="stream-slow"):
        program = dx.Predict("question -> answer")
        stream = dx.streamify(program, max_buffered=1)
        iterator = stream(question="What is the capital of France?")
        first = next(iterator)
        time.sleep(0.3)  # a consumer that stops: the program waits on the full buffer
        rest = list(iterator)
    assert isinstance(first, dx.StreamResponse) and isinstance(rest[-1], dx.Prediction)
    assert first.chunk + "".join(r.chunk for r in rest[:-1]) == "The answer is Paris."


def test_aiter_streams_on_an_event_loop_without_a_thread_per_item(
    server: RuleBasedLMServer,
) -> None:
    with dx.start(lms=_lms(server), name="stream-async"):
        stream = dx.streamify(dx.Predict("question -> answer", lm="gemini"))

        async def run() -> tuple[list[Any], list[str]]:
            before = set(threading.enumerate())
            items = [item async for item in stream.aiter(question="What is the capital of Spain?")]
            new = [
                t.name
                for t in threading.enumerate()
                if t not in before and t.name.startswith(("sv:", "dx:"))  # ours, not the server's
            ]
            return items, new

        items, new_threads = asyncio.run(run())
    *chunks, final = items
    assert "".join(c.chunk for c in chunks) == final.answer == "The answer is Madrid."
    assert len(chunks) >= 4
    # The program and its worker (pooled), not one per chunk. Threads are compared by
    # identity, so one a previous test left ending does not count.
    assert len(new_threads) <= 2, new_threads
