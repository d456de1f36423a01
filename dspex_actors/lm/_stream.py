"""One streamed HTTP attempt: server-sent events parsed as they arrive, text handed on.

:func:`execute_stream` posts a streaming plan (:func:`~dspex_actors.lm._http.stream_plan`),
feeds the body to an :class:`~dspex_actors.lm._sse.SSEParser` piece by piece, lets the
plan's provider decode each event, and calls ``on_chunk(text)`` for every piece of
answer text, in the calling thread: a slow ``on_chunk`` slows the reading, so the
socket's own flow control holds the server back (memory stays bounded). At the end
it returns the whole :class:`Completion` (usage from the stream's final event;
``{}`` when the stream had none: unknown, not zero).

Failures before the first chunk are the same typed errors as a non-streaming
attempt (a status, a refused connection, an error event such as Anthropic's
``overloaded_error``), so the retry policy retries them; after the first chunk any
failure is :class:`LMStreamInterrupted` with the text received so far.

Threading: the calling thread (an I/O worker's) only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests
from urllib3.exceptions import HTTPError as Urllib3Error

from dspex_actors.lm._anthropic import anthropic_finish
from dspex_actors.lm._http import (
    PROVIDERS,
    _expired,
    _read_body,
    _retry_after_of,
    _too_large,
    _transport_error,
)
from dspex_actors.lm._plan import Completion, RequestPlan
from dspex_actors.lm._provider import StreamDelta, finish_completion
from dspex_actors.lm._sse import SSEParser
from dspex_actors.lm._transport import AttemptClock, activate
from dspex_actors.lm._wire import normal_finish, redact, safe_cause, secrets_of
from dspex_actors.primitives import LMError, LMServerError, LMStreamInterrupted

__all__ = ["execute_stream"]

_READ = 16 * 1024


class _Received:
    """What a stream delivered so far."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.chunks = 0
        self.usage: dict[str, int] | None = None
        self.finish: str | None = None
        self.model: str | None = None
        self.done = False
        self.size = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, delta: StreamDelta) -> str:
        if delta.usage is not None:
            self.usage = delta.usage
        if delta.finish is not None:
            self.finish = delta.finish
        if delta.model:
            self.model = delta.model
        self.done = self.done or delta.done
        if delta.text:
            self.parts.append(delta.text)
            self.chunks += 1
        return delta.text


def _interrupted(plan: RequestPlan, got: _Received, why: str) -> LMStreamInterrupted:
    label = plan.label or plan.model
    message = redact(
        f"{label}: the stream broke after {got.chunks} chunk(s) "
        f"({len(got.text)} characters): {why}",
        secrets_of(plan),
    )
    return LMStreamInterrupted(
        message, partial_text=redact(got.text, secrets_of(plan)), chunks=got.chunks, status=200
    )


def _post(session: requests.Session, plan: RequestPlan, clock: AttemptClock) -> requests.Response:
    connect = plan.connect_timeout if plan.connect_timeout is not None else plan.timeout
    left = clock.left()
    if left is not None and left <= 0:
        clock.expired = True
        raise _expired(plan)
    used = min(connect, left) if left is not None and left < connect else connect
    try:
        return session.post(
            plan.url,
            headers=dict(plan.headers),
            json=plan.json,
            timeout=(used, plan.timeout),
            stream=True,
        )
    except (requests.RequestException, Urllib3Error, OSError) as exc:
        error = _transport_error(exc, plan, clock, used, used < connect)
        raise error from safe_cause(exc, secrets_of(plan))


def _pump(
    response: requests.Response,
    plan: RequestPlan,
    got: _Received,
    on_chunk: Callable[[str], None],
) -> None:
    """Read events until the provider's end marker or the end of the body."""
    parser = SSEParser()
    decoder = PROVIDERS[plan.provider].decoder(plan)
    cap = plan.max_response_bytes
    raw: Any = response.raw
    while not got.done:
        data = raw.read1(_READ)
        if not data:
            break
        got.size += len(data)
        if cap is not None and got.size > cap:
            raise _too_large(plan, response.status_code, f"more than {cap} bytes streamed")
        for event in parser.feed(data):
            delta = decoder.decode(event)
            if delta is None:
                continue
            text = got.add(delta)
            if text:
                on_chunk(text)
            if got.done:
                break


def _read_stream(
    response: requests.Response,
    plan: RequestPlan,
    clock: AttemptClock,
    on_chunk: Callable[[str], None],
) -> _Received:
    got = _Received()
    try:
        _pump(response, plan, got, on_chunk)
    except LMError as exc:
        if got.chunks:
            raise _interrupted(plan, got, f"{type(exc).__name__}: {exc.message}") from None
        raise
    except ValueError as exc:
        why = redact(str(exc), secrets_of(plan), 200)
        if got.chunks:
            raise _interrupted(plan, got, f"malformed event: {why}") from None
        raise LMServerError(f"{plan.label}: malformed stream: {why}", status=200) from None
    except (requests.RequestException, Urllib3Error, OSError) as exc:
        connect = plan.connect_timeout or plan.timeout
        error = _transport_error(exc, plan, clock, connect, False)
        if got.chunks:
            raise _interrupted(plan, got, error.message) from safe_cause(exc, secrets_of(plan))
        raise error from safe_cause(exc, secrets_of(plan))
    if not got.done and got.finish is None:
        why = "the connection closed before the stream's end"
        if got.chunks:
            raise _interrupted(plan, got, why)
        raise LMServerError(f"{plan.label}: {why} (no answer)", status=200)
    return got


def _whole(
    response: requests.Response, plan: RequestPlan, on_chunk: Callable[[str], None], started: float
) -> Completion:
    """A server that ignored ``stream`` and answered with one JSON body: read it whole
    and hand its text on as one chunk."""
    raw = _read_body(response, plan)
    provider = PROVIDERS[plan.provider]
    completion = provider.parse(
        raw, response.status_code, None, plan, time.perf_counter() - started
    )
    if completion.text:
        on_chunk(completion.text)
    return completion


def execute_stream(
    session: requests.Session, plan: RequestPlan, on_chunk: Callable[[str], None]
) -> Completion:
    """Perform one streamed attempt of ``plan``; ``on_chunk`` gets each piece of text.

    Time limits as :func:`~dspex_actors.lm.execute_plan` (the read timeout is the
    longest silence between two events' bytes; keep-alive comments count as bytes).
    Raises what ``execute_plan`` raises for a failure before the first chunk,
    :class:`LMStreamInterrupted` after it, :class:`LMTruncated` / :class:`LMRefused`
    for a stream that ended cut or refused, and whatever ``on_chunk`` raises.
    """
    started = time.perf_counter()
    clock = AttemptClock(plan.attempt_timeout, plan.timeout)
    previous = activate(clock)
    try:
        response = _post(session, plan, clock)
        try:
            status = response.status_code
            if not 200 <= status < 300:
                try:
                    raw = _read_body(response, plan)
                except (requests.RequestException, Urllib3Error, OSError):
                    raw = b""
                reason = response.reason if isinstance(response.reason, str) else ""
                provider = PROVIDERS[plan.provider]
                raise provider.error(status, raw, reason, _retry_after_of(response.headers), plan)
            if "text/event-stream" not in response.headers.get("Content-Type", ""):
                return _whole(response, plan, on_chunk, started)
            got = _read_stream(response, plan, clock, on_chunk)
        finally:
            response.close()
    finally:
        activate(previous)
    finish = normal_finish(got.finish)
    if plan.provider == "anthropic":
        finish = anthropic_finish(got.finish)
    elif plan.provider == "gemini":
        finish = got.finish  # the decoder maps it already
    elif finish == "content_filter":
        finish = "safety"
    return finish_completion(
        plan, 200, got.text, finish, got.usage or {}, got.model, time.perf_counter() - started
    )
