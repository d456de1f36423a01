"""One interface for every wire format: a plan builder and a response parser per provider.

A :class:`Provider` turns the adapter's chat messages and the LM's parameters into
one provider's request (URL, auth header, body), reads that provider's answer into a
:class:`Completion` (usage as ``prompt_tokens``/``completion_tokens``/``total_tokens``,
finish reasons in one set: ``"stop"``, ``"tool"``; a cut answer is
:class:`LMTruncated`, a refusal or a safety stop :class:`LMRefused`), maps its error
bodies to the typed :class:`LMError` s, and decodes its server-sent events
(:class:`StreamDecoder`). :data:`OPENAI` is the OpenAI-compatible one; Anthropic's
and Gemini's live in ``_anthropic.py`` and ``_gemini.py``. No provider knows about
actors or HTTP sessions; all are pure and shareable between threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from dspex_actors.lm._plan import Completion, RequestPlan
from dspex_actors.lm._sse import SSEEvent
from dspex_actors.lm._wire import (
    _error_in_200,
    _load_json,
    _malformed,
    _refused,
    _truncated,
    _usage,
    completion_from_body,
    redact,
    secrets_of,
    status_error,
)
from dspex_actors.primitives import LMError

if TYPE_CHECKING:
    from dspex_actors.lm._config import LM

__all__ = [
    "OPENAI",
    "OpenAIProvider",
    "Provider",
    "StreamDecoder",
    "StreamDelta",
    "finish_completion",
    "json_object",
    "message_text",
]


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """What one event of a stream adds: ``text``, the final ``usage`` (``None``: not
    in this event), a ``finish`` reason (raw; the stream reader maps it), ``done``
    (the provider's end marker: ``[DONE]``, ``message_stop``), the ``model``."""

    text: str = ""
    usage: dict[str, int] | None = None
    finish: str | None = None
    done: bool = False
    model: str | None = None


class StreamDecoder(Protocol):
    """Per-stream state of one provider's event decoding (one thread)."""

    def decode(self, event: SSEEvent) -> StreamDelta | None:
        """What ``event`` adds (``None``: nothing, e.g. a ping). Raises the typed
        :class:`LMError` for an error event or ``ValueError`` for a malformed one."""
        ...


class Provider(Protocol):
    """A wire format: how to ask, how to read the answer, how to read its errors."""

    name: ClassVar[str]

    def body(
        self, lm: LM, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> dict[str, Any]:
        """The request body for ``messages`` with ``params`` (``lm.request_params``
        without ``model``). Raises ``ValueError`` for what the API cannot take."""
        ...

    def headers(self, key: str | None) -> dict[str, str]:
        """The auth (and version) headers for ``key`` (``None``: no key)."""
        ...

    def url(self, lm: LM, stream: bool) -> str:
        """Where the request goes (the streaming endpoint if ``stream``)."""
        ...

    def streaming(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` as the streaming request (a copy)."""
        ...

    def parse(
        self, raw: bytes, status: int, retry_after: float | None, plan: RequestPlan, latency: float
    ) -> Completion:
        """The completion in a 2xx body, or the typed error it amounts to."""
        ...

    def error(
        self, status: int, raw: bytes, reason: str, retry_after: float | None, plan: RequestPlan
    ) -> LMError:
        """The typed error for a non-2xx response."""
        ...

    def decoder(self, plan: RequestPlan) -> StreamDecoder:
        """A fresh decoder for one stream of ``plan``."""
        ...


def message_text(content: Any, where: str) -> str:
    """The text of a chat message's ``content``: a str as is, a list of parts with
    their ``text`` joined. Raises ``ValueError`` for a part that is not text (an
    image, audio): native providers get text only for now."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ValueError(f"{where}: only text content is supported, got a {kind!r} part")
        return "".join(texts)
    raise ValueError(f"{where}: message content must be a str or a list of parts")


# ----------------------------------------------------------------------------- OpenAI


class _OpenAIDecoder:
    """OpenAI ``chat.completion.chunk`` events: ``data: {...}`` and ``data: [DONE]``;
    a usage chunk with ``choices: []`` (or ``null``, as vLLM sends); an ``error``
    object in a chunk is that error."""

    def __init__(self, plan: RequestPlan) -> None:
        self._plan = plan

    def decode(self, event: SSEEvent) -> StreamDelta | None:
        data = event.data.strip()
        if data == "[DONE]":
            return StreamDelta(done=True)
        chunk = _load_json(data.encode())
        if not isinstance(chunk, dict):
            raise ValueError(f"a stream chunk that is not a JSON object: {data[:80]!r}")
        if chunk.get("error"):
            error = chunk["error"]
            detail = error.get("message") if isinstance(error, dict) else str(error)
            raise _error_in_200(error, str(detail or ""), 200, None, self._plan)
        usage = chunk.get("usage")
        text, finish = "", None
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    text = delta["content"]
                if isinstance(delta, dict) and delta.get("tool_calls"):
                    finish = "tool_calls"
                reason = choice.get("finish_reason")
                finish = reason if isinstance(reason, str) else finish
        model = chunk.get("model")
        return StreamDelta(
            text=text,
            usage=_usage(usage) if isinstance(usage, dict) else None,
            finish=finish,
            model=model if isinstance(model, str) else None,
        )


class OpenAIProvider:
    """OpenAI-compatible ``/chat/completions`` (OpenAI, vLLM, Ollama, proxies)."""

    name: ClassVar[str] = "openai"

    def body(
        self, lm: LM, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> dict[str, Any]:
        return {"model": lm.wire_model, "messages": messages, **params}

    def headers(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}

    def url(self, lm: LM, stream: bool) -> str:
        return lm.chat_url

    def streaming(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "stream": True, "stream_options": {"include_usage": True}}

    def parse(
        self, raw: bytes, status: int, retry_after: float | None, plan: RequestPlan, latency: float
    ) -> Completion:
        return completion_from_body(raw, status, retry_after, plan, latency)

    def error(
        self, status: int, raw: bytes, reason: str, retry_after: float | None, plan: RequestPlan
    ) -> LMError:
        return status_error(status, raw, reason, retry_after, plan)

    def decoder(self, plan: RequestPlan) -> StreamDecoder:
        return _OpenAIDecoder(plan)


OPENAI = OpenAIProvider()


def json_object(raw: bytes, plan: RequestPlan, status: int) -> dict[str, Any]:
    """``raw`` as a JSON object, or :class:`LMServerError` (a malformed body)."""
    body = _load_json(raw)
    if not isinstance(body, dict):
        raise _malformed(plan, status, "the body is not a JSON object")
    return body


def finish_completion(
    plan: RequestPlan,
    status: int,
    text: str,
    finish: str | None,
    usage: dict[str, int],
    model: Any,
    latency: float,
) -> Completion:
    """The completion for a normalised ``finish``, or the error it stands for
    (``"length"`` -> :class:`LMTruncated`, ``"refusal"``/``"safety"`` ->
    :class:`LMRefused`). The key is removed from the text."""
    if finish == "length":
        raise _truncated(plan, status, text)
    if finish in ("refusal", "safety"):
        raise _refused(plan, status, "", text, finish)
    secrets = secrets_of(plan)
    if secrets and any(s in text for s in secrets):
        text = redact(text, secrets)
    return Completion(
        text=text,
        usage=usage,
        model=model if isinstance(model, str) and model else plan.model,
        latency_s=latency,
        finish_reason=finish,
    )
