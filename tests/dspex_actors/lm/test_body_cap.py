"""Response bodies are read incrementally and capped; errors keep bounded excerpts."""

from __future__ import annotations

import time
import tracemalloc

import pytest

import dspex_actors as dx
from dspex_actors.lm import build_plan, execute_plan, make_session
from dspex_actors.primitives._errors import MAX_EXCERPT_CHARS
from tests.dspex_actors.lm._loopback import FloodServer, Reply, ScriptedServer

MESSAGES = [{"role": "user", "content": "hi"}]
MIB = 1024 * 1024


def test_a_body_declared_larger_than_max_response_bytes_is_refused_unread() -> None:
    with ScriptedServer() as server, make_session(1) as session:
        server.set_default(Reply(body=b"x" * (2 * MIB)))
        lm = dx.LM("openai/m", api_base=server.api_base, max_response_bytes=MIB)
        with pytest.raises(dx.LMResponseTooLarge) as info:
            execute_plan(session, build_plan(lm, MESSAGES))
    assert info.value.limit == MIB
    assert isinstance(info.value, dx.LMServerError)
    assert not info.value.retryable
    assert f"Content-Length {2 * MIB}" in str(info.value)


def test_an_endless_chunked_body_is_cut_at_the_cap_without_holding_it_in_memory() -> None:
    with FloodServer() as server, make_session(1) as session:
        lm = dx.LM("openai/m", api_base=server.api_base, max_response_bytes=4 * MIB)
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(dx.LMResponseTooLarge) as info:
                execute_plan(session, build_plan(lm, MESSAGES))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        limit = time.monotonic() + 5
        while not server.sent and time.monotonic() < limit:
            time.sleep(0.02)
    assert time.monotonic() - started < 10
    assert "more than 4194304 bytes read" in str(info.value)
    assert peak < 24 * MIB  # the cap (4 MiB) and its chunks, not the 512 MiB on offer
    assert server.closed, "the client kept the connection open"
    assert server.sent[0] < 128 * MIB


def test_the_default_cap_applies_to_a_huge_body() -> None:
    with FloodServer(max_bytes=64 * MIB) as server, make_session(1) as session:
        lm = dx.LM("openai/m", api_base=server.api_base)
        with pytest.raises(dx.LMResponseTooLarge) as info:
            execute_plan(session, build_plan(lm, MESSAGES))
    assert info.value.limit == 16 * MIB


def test_an_error_body_is_quoted_as_a_bounded_excerpt() -> None:
    with ScriptedServer() as server, make_session(1) as session:
        server.set_default(Reply(status=500, body="E" * MIB))
        lm = dx.LM("openai/m", api_base=server.api_base)
        with pytest.raises(dx.LMServerError) as info:
            execute_plan(session, build_plan(lm, MESSAGES))
    assert len(str(info.value)) < 700
    assert str(info.value).count("E") >= 400


def test_a_garbage_200_is_quoted_as_a_bounded_excerpt() -> None:
    with ScriptedServer() as server, make_session(1) as session:
        server.set_default(Reply(status=200, body="<html>" + "g" * MIB))
        lm = dx.LM("openai/m", api_base=server.api_base)
        with pytest.raises(dx.LMServerError, match="not JSON") as info:
            execute_plan(session, build_plan(lm, MESSAGES))
    assert len(str(info.value)) < 500


def test_adapter_parse_error_keeps_a_bounded_excerpt_and_the_full_length() -> None:
    text = "head " + "x" * 1_000_000 + " tail"
    error = dx.AdapterParseError("missing answer", text=text)
    assert error.text_length == len(text)
    assert len(error.text) < MAX_EXCERPT_CHARS + 100
    assert error.text.startswith("head ") and error.text.endswith(" tail")
    assert "characters omitted" in error.text
    short = dx.AdapterParseError("missing answer", text="short")
    assert (short.text, short.text_length) == ("short", 5)


def test_a_huge_unparsable_completion_ends_in_a_bounded_adapter_parse_error() -> None:
    from tests.dspex_actors.lm._loopback import completion

    with ScriptedServer() as server:
        server.set_default(Reply(body=completion("no fields here " * 50_000)))
        with (
            dx.start(
                lm=dx.LM("openai/m", api_base=server.api_base),
                cache=False,
                name="cap",
                configure_logs=False,
            ),
            pytest.raises(dx.AdapterParseError) as info,
        ):
            dx.Predict("question -> answer")(question="q?")
    assert info.value.text_length == len("no fields here " * 50_000)
    assert len(info.value.text) < MAX_EXCERPT_CHARS + 100
    assert len(str(info.value)) < 1000
