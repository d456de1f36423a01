"""Gemini's ``generateContent`` (``POST .../models/<model>:generateContent``), natively.

The request: the ``x-goog-api-key`` header; the system prompt as
``systemInstruction``; turns as ``contents`` (roles ``user`` and ``model``, text in
``parts``); the sampling parameters in ``generationConfig`` (``temperature``,
``maxOutputTokens``, ``stopSequences``, ``topP``, ``topK``, ``seed``,
``candidateCount``; other snake_case names camel-cased there; ``response_format``
JSON -> ``responseMimeType: application/json``); ``safetySettings``, ``tools``,
``toolConfig`` and ``cachedContent`` stay at the top level.
The answer: the candidate of the lowest ``index``, its text parts joined (thought
parts skipped); ``finishReason`` ``STOP`` -> ``"stop"``, ``MAX_TOKENS`` ->
:class:`LMTruncated`, the safety family (``SAFETY``, ``RECITATION``, ``BLOCKLIST``,
``PROHIBITED_CONTENT``, ``SPII``...) and a blocked prompt (``promptFeedback.blockReason``)
-> :class:`LMRefused`, a function call -> ``"tool"``; ``usageMetadata``
(``promptTokenCount``, ``candidatesTokenCount`` + ``thoughtsTokenCount``). Errors are
``{"error": {"code", "message", "status"}}``: ``RESOURCE_EXHAUSTED`` (429) is
:class:`LMRateLimited`, with the ``RetryInfo`` detail's ``retryDelay`` as
``retry_after`` when no header says. Streams: ``:streamGenerateContent?alt=sse``, each
event a whole ``GenerateContentResponse`` with the next piece of text; the stream
ends when the server closes it after a chunk with a ``finishReason``.

Pure; any thread.
"""

from __future__ import annotations

import re
import urllib.parse
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

__all__ = ["GEMINI", "GeminiProvider", "gemini_finish"]

_SAFETY = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "LANGUAGE",
    }
)
_TOOL = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"})
_CONFIG_NAMES = {
    "temperature": "temperature",
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_TOP_LEVEL = frozenset({"safetySettings", "tools", "toolConfig", "cachedContent", "labels"})


def gemini_finish(reason: str | None) -> str | None:
    """A ``finishReason`` in the one set: ``"stop"``, ``"length"``, ``"safety"``,
    ``"tool"`` (``None`` if absent; ``OTHER`` and unknown reasons -> ``"stop"``)."""
    if reason is None:
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _SAFETY:
        return "safety"
    if reason in _TOOL:
        return "tool"
    return "stop"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _contents(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        role = message.get("role")
        text = message_text(message.get("content"), f"gemini: messages[{position}]")
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            contents.append(
                {"role": "user" if role == "user" else "model", "parts": [{"text": text}]}
            )
        else:
            raise ValueError(f"gemini: messages[{position}] has role {role!r}")
    if not contents:
        raise ValueError("gemini: generateContent needs at least one user message")
    return "\n\n".join(system), contents


def _usage(raw: Any) -> dict[str, int]:
    def count(name: str) -> int:
        value = raw.get(name) if isinstance(raw, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    prompt = count("promptTokenCount")
    completion = count("candidatesTokenCount") + count("thoughtsTokenCount")
    total = count("totalTokenCount") or prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def _candidate(body: dict[str, Any]) -> dict[str, Any] | None:
    candidates = body.get("candidates")
    if not isinstance(candidates, list):
        return None
    usable = [c for c in candidates if isinstance(c, dict)]
    return min(
        usable,
        key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0,
        default=None,
    )


def _text_and_finish(candidate: dict[str, Any]) -> tuple[str, str | None]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    tool = False
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("functionCall"):
            tool = True
        elif isinstance(part.get("text"), str) and not part.get("thought"):
            texts.append(part["text"])
    finish = gemini_finish(candidate.get("finishReason"))
    return "".join(texts), ("tool" if tool and finish == "stop" else finish)


_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_delay(raw: bytes) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail's ``retryDelay`` (``"30s"``)."""
    body = _load_json(raw)
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        match = _DELAY.match(delay) if isinstance(delay, str) else None
        if match:
            return float(match.group(1))
    return None


class _GeminiDecoder:
    def __init__(self, plan: RequestPlan) -> None:
        self._plan = plan

    def decode(self, event: SSEEvent) -> StreamDelta | None:
        body = _load_json(event.data.encode())
        if not isinstance(body, dict):
            raise ValueError(f"an event that is not a JSON object: {event.data[:80]!r}")
        if body.get("error"):
            error = body["error"]
            detail = error.get("message") if isinstance(error, dict) else ""
            raise _error_in_200(error, str(detail or ""), 200, None, self._plan)
        feedback = body.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            return StreamDelta(finish="safety", done=True)
        candidate = _candidate(body)
        text, finish = _text_and_finish(candidate) if candidate is not None else ("", None)
        model = body.get("modelVersion")
        return StreamDelta(
            text=text,
            usage=_usage(body.get("usageMetadata")) if finish is not None else None,
            finish=finish,
            done=finish is not None,
            model=model if isinstance(model, str) else None,
        )


class GeminiProvider:
    """``gemini/<model>``: the Gemini API's ``generateContent``."""

    name: ClassVar[str] = "gemini"

    def body(
        self, lm: LM, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> dict[str, Any]:
        system, contents = _contents(messages)
        config: dict[str, Any] = {}
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        for name, value in params.items():
            if name in _CONFIG_NAMES:
                config[_CONFIG_NAMES[name]] = value
            elif name == "stop":
                config["stopSequences"] = [value] if isinstance(value, str) else value
            elif name == "response_format":
                if isinstance(value, dict) and value.get("type") in ("json_object", "json_schema"):
                    config["responseMimeType"] = "application/json"
            elif name in _TOP_LEVEL:
                body[name] = value
            else:
                config[_camel(name)] = value
        body["generationConfig"] = config
        return body

    def headers(self, key: str | None) -> dict[str, str]:
        return {"x-goog-api-key": key} if key else {}

    def url(self, lm: LM, stream: bool) -> str:
        if not stream:
            return lm.chat_url
        base = lm.base_url.rstrip("/")
        model = urllib.parse.quote(lm.wire_model, safe="-._~")
        return f"{base}/models/{model}:streamGenerateContent?alt=sse"

    def streaming(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(body)  # the endpoint says it, not the body

    def parse(
        self, raw: bytes, status: int, retry_after: float | None, plan: RequestPlan, latency: float
    ) -> Completion:
        body = json_object(raw, plan, status)
        if body.get("error"):
            error = body["error"]
            detail = error.get("message") if isinstance(error, dict) else ""
            raise _error_in_200(error, str(detail or ""), status, retry_after, plan)
        usage = _usage(body.get("usageMetadata"))
        model = body.get("modelVersion")
        candidate = _candidate(body)
        if candidate is None:
            feedback = body.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                return finish_completion(plan, status, "", "safety", usage, model, latency)
            raise _malformed(plan, status, "no candidates")
        text, finish = _text_and_finish(candidate)
        return finish_completion(plan, status, text, finish, usage, model, latency)

    def error(
        self, status: int, raw: bytes, reason: str, retry_after: float | None, plan: RequestPlan
    ) -> LMError:
        if retry_after is None:
            retry_after = retry_delay(raw)
        return status_error(status, raw, reason, retry_after, plan)

    def decoder(self, plan: RequestPlan) -> StreamDecoder:
        return _GeminiDecoder(plan)


GEMINI = GeminiProvider()
