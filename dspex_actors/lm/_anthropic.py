"""Anthropic's Messages API (``POST /v1/messages``), spoken natively.

The request: ``x-api-key`` and ``anthropic-version`` headers; the system prompt as the
top-level ``system`` string (the Messages API has no ``system`` role); ``max_tokens``
always present (the API requires it); ``stop`` sent as ``stop_sequences``;
``response_format`` dropped (no JSON mode: the JSON adapter's prompt asks for JSON).
The answer: ``content`` blocks (text joined), ``stop_reason`` (``end_turn``,
``stop_sequence``, ``pause_turn`` -> ``"stop"``; ``tool_use`` -> ``"tool"``;
``max_tokens`` -> :class:`LMTruncated`; ``refusal`` -> :class:`LMRefused`), ``usage``
(``input_tokens`` + cache reads/writes -> ``prompt_tokens``, ``output_tokens`` ->
``completion_tokens``). Errors are ``{"type": "error", "error": {"type", "message"}}``:
``overloaded_error`` (529) is retryable, ``rate_limit_error`` (429) honours
``retry-after``. Streams: ``message_start`` / ``content_block_delta`` /
``message_delta`` / ``message_stop``, ``ping`` ignored, an ``error`` event is the error.

Pure; any thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from dspex_actors.lm._plan import Completion, RequestPlan
from dspex_actors.lm._provider import (
    StreamDecoder,
    StreamDelta,
    finish_completion,
    json_object,
    message_text,
)
from dspex_actors.lm._sse import SSEEvent
from dspex_actors.lm._wire import _error_in_200, _load_json, _malformed, status_error
from dspex_actors.primitives import LMError

if TYPE_CHECKING:
    from dspex_actors.lm._config import LM

__all__ = ["ANTHROPIC", "ANTHROPIC_VERSION", "AnthropicProvider", "anthropic_finish"]

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header sent (the current version of the Messages API)."""

_STOP = frozenset({"end_turn", "stop_sequence", "pause_turn"})


def anthropic_finish(stop_reason: str | None) -> str | None:
    """A ``stop_reason`` in the one set: ``"stop"``, ``"tool"``, ``"length"``,
    ``"refusal"`` (the last two become errors), ``None`` if absent."""
    if stop_reason is None:
        return None
    if stop_reason in _STOP:
        return "stop"
    if stop_reason == "tool_use":
        return "tool"
    if stop_reason == "max_tokens":
        return "length"
    return stop_reason  # "refusal", or a reason newer than this code


def _usage(raw: Any) -> dict[str, int]:
    def count(name: str) -> int:
        value = raw.get(name) if isinstance(raw, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    prompt = (
        count("input_tokens")
        + count("cache_creation_input_tokens")
        + count("cache_read_input_tokens")
    )
    completion = count("output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _turns(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The system text and the user/assistant turns (consecutive same-role turns merged)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        role = message.get("role")
        text = message_text(message.get("content"), f"anthropic: messages[{position}]")
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"] += "\n\n" + text
            else:
                turns.append({"role": role, "content": text})
        else:
            raise ValueError(f"anthropic: messages[{position}] has role {role!r}")
    if not turns:
        raise ValueError("anthropic: the Messages API needs at least one user message")
    return "\n\n".join(system), turns


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class _AnthropicDecoder:
    def __init__(self, plan: RequestPlan) -> None:
        self._plan = plan
        self._input: dict[str, Any] = {}
        self._model: str | None = None

    def decode(self, event: SSEEvent) -> StreamDelta | None:
        data = _load_json(event.data.encode())
        if not isinstance(data, dict):
            raise ValueError(f"an event that is not a JSON object: {event.data[:80]!r}")
        kind = data.get("type") or event.event
        if kind == "error":
            error = data.get("error")
            detail = error.get("message") if isinstance(error, dict) else ""
            raise _error_in_200(error, str(detail or ""), 200, None, self._plan)
        if kind == "message_start":
            message = _dict(data.get("message"))
            self._input = dict(message.get("usage") or {})
            model = message.get("model")
            self._model = model if isinstance(model, str) else None
            return StreamDelta(model=self._model)
        if kind == "content_block_delta":
            delta = data.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                return StreamDelta(text=str(delta.get("text") or ""))
            return None  # thinking, tool input JSON: not answer text
        if kind == "message_delta":
            delta = _dict(data.get("delta"))
            usage = {**self._input, **dict(data.get("usage") or {})}
            return StreamDelta(usage=_usage(usage), finish=delta.get("stop_reason"))
        if kind == "message_stop":
            return StreamDelta(done=True)
        return None  # ping, content_block_start/stop, unknown new events


class AnthropicProvider:
    """``anthropic/<model>``: the Messages API."""

    name: ClassVar[str] = "anthropic"

    def body(
        self, lm: LM, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> dict[str, Any]:
        system, turns = _turns(messages)
        params = dict(params)
        max_tokens = params.pop("max_tokens", None) or params.pop("max_completion_tokens", None)
        params.pop("max_completion_tokens", None)
        params.pop("response_format", None)
        if "stop" in params:
            stop = params.pop("stop")
            params["stop_sequences"] = [stop] if isinstance(stop, str) else stop
        if params.pop("n", 1) not in (None, 1):
            raise ValueError("anthropic: the Messages API returns one answer (n must be 1)")
        body: dict[str, Any] = {"model": lm.wire_model, "max_tokens": max_tokens or lm.max_tokens}
        if system:
            body["system"] = system
        body["messages"] = turns
        body.update(params)
        return body

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

    def url(self, lm: LM, stream: bool) -> str:
        return lm.chat_url

    def streaming(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "stream": True}

    def parse(
        self, raw: bytes, status: int, retry_after: float | None, plan: RequestPlan, latency: float
    ) -> Completion:
        body = json_object(raw, plan, status)
        if body.get("type") == "error" or body.get("error"):
            error = body.get("error")
            detail = error.get("message") if isinstance(error, dict) else ""
            raise _error_in_200(error, str(detail or ""), status, retry_after, plan)
        blocks = body.get("content")
        if not isinstance(blocks, list):
            raise _malformed(plan, status, "no content blocks")
        text = "".join(
            str(b.get("text") or "")
            for b in blocks
            if isinstance(b, dict) and b.get("type") == "text"
        )
        finish = anthropic_finish(body.get("stop_reason"))
        return finish_completion(
            plan, status, text, finish, _usage(body.get("usage")), body.get("model"), latency
        )

    def error(
        self, status: int, raw: bytes, reason: str, retry_after: float | None, plan: RequestPlan
    ) -> LMError:
        return status_error(status, raw, reason, retry_after, plan)

    def decoder(self, plan: RequestPlan) -> StreamDecoder:
        return _AnthropicDecoder(plan)


ANTHROPIC = AnthropicProvider()
