"""The Anthropic Messages and Gemini generateContent wire formats, as the server speaks them.

For each: the checks the real API makes before answering (and the error it answers
with), the request as the rules read it (an OpenAI-style body), the answer body, and
the answer as server-sent events. Also OpenAI's ``chat.completion.chunk`` events.
Wire formats from the providers' public API references (docs/providers.md).

Pure functions, safe from any thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from dspex_actors.testing._prompt import content_text
from dspex_actors.testing._responses import _count_tokens, _positive_int, _truncate

__all__ = [
    "GEMINI_PATH",
    "Problem",
    "anthropic_as_chat",
    "anthropic_check",
    "anthropic_events",
    "anthropic_message",
    "gemini_as_chat",
    "gemini_check",
    "gemini_events",
    "gemini_response",
    "native_fault",
    "openai_chunks",
    "pieces",
    "sse_bytes",
]

GEMINI_PATH: Final = re.compile(
    r"^/(v1beta|v1)/models/([^/:]+):(generateContent|streamGenerateContent)$"
)
"""``/v1beta/models/<model>:generateContent`` (or ``:streamGenerateContent``)."""

Problem = tuple[int, dict[str, Any]]
"""A refused request: the status and the provider's error body."""

_ANTHROPIC_ROLES: Final = ("user", "assistant")
_GEMINI_ROLES: Final = ("user", "model")


def pieces(text: str, words: int = 1) -> list[str]:
    """``text`` cut into stream chunks of ``words`` words each (a word with the
    spacing after it), so that the chunks joined are exactly ``text``."""
    lead = text[: len(text) - len(text.lstrip())]
    tokens = re.findall(r"\S+\s*", text[len(lead) :])
    if lead:
        tokens = [lead + tokens[0], *tokens[1:]] if tokens else [lead]
    step = max(words, 1)
    return ["".join(tokens[i : i + step]) for i in range(0, len(tokens), step)]


def _cut(content: str, limit: int | None) -> tuple[str, bool]:
    if limit is not None and limit < _count_tokens(content):
        return _truncate(content, limit), True
    return content, False


# ------------------------------------------------------------------------- Anthropic


def _anthropic_error(status: int, kind: str, message: str) -> Problem:
    return status, {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_check(headers: Any, body: Any, api_key: str | None) -> Problem | None:
    """What the Messages API refuses before answering: no ``x-api-key`` (401), a wrong
    one (401), no ``anthropic-version`` (400), a body without ``model``,
    ``max_tokens`` or ``messages``, or with a role other than user/assistant."""
    key = headers.get("x-api-key")
    if not key:
        return _anthropic_error(401, "authentication_error", "x-api-key header is required")
    if api_key is not None and key != api_key:
        return _anthropic_error(401, "authentication_error", "invalid x-api-key")
    if not headers.get("anthropic-version"):
        return _anthropic_error(
            400, "invalid_request_error", "anthropic-version: header is required"
        )
    if not isinstance(body, dict):
        return _anthropic_error(400, "invalid_request_error", "body: Input should be an object")
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            return _anthropic_error(400, "invalid_request_error", f"{field}: Field required")
    if _positive_int(body["max_tokens"]) is None:
        return _anthropic_error(400, "invalid_request_error", "max_tokens: must be at least 1")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return _anthropic_error(
            400, "invalid_request_error", "messages: at least one message is required"
        )
    for position, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _ANTHROPIC_ROLES:
            return _anthropic_error(
                400,
                "invalid_request_error",
                f"messages.{position}.role: Input should be 'user' or 'assistant' "
                "(the system prompt goes in the top-level `system` parameter)",
            )
    return None


def _system_text(system: Any) -> str:
    if isinstance(system, list):
        return "\n".join(b.get("text", "") for b in system if isinstance(b, dict))
    return system if isinstance(system, str) else ""


def anthropic_as_chat(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request as an OpenAI-style body, for the rules."""
    messages: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for message in body["messages"]:
        messages.append({"role": message["role"], "content": content_text(message.get("content"))})
    return {"model": body.get("model"), "messages": messages, "max_tokens": body.get("max_tokens")}


def _anthropic_usage(chat: Mapping[str, Any], content: str) -> dict[str, int]:
    prompt = sum(_count_tokens(content_text(m.get("content"))) for m in chat["messages"])
    return {"input_tokens": prompt, "output_tokens": _count_tokens(content)}


def anthropic_message(body: Mapping[str, Any], content: str, seq: int) -> dict[str, Any]:
    """The Message object answering ``body`` with ``content`` (cut at ``max_tokens``)."""
    chat = anthropic_as_chat(body)
    text, cut = _cut(content, _positive_int(body.get("max_tokens")))
    return {
        "id": f"msg_rule_{seq:08d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "max_tokens" if cut else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(chat, text),
    }


def anthropic_events(
    body: Mapping[str, Any], content: str, seq: int, words: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Message as ``(event, data)`` pairs: ``message_start``,
    ``content_block_start``, ``ping``, one ``content_block_delta`` per chunk,
    ``content_block_stop``, ``message_delta`` (stop reason, usage), ``message_stop``."""
    message = anthropic_message(body, content, seq)
    text = message["content"][0]["text"]
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1}
    yield "message_start", {"type": "message_start", "message": start}
    yield (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        },
    )
    yield "ping", {"type": "ping"}
    for piece in pieces(text, words):
        yield (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            },
        )
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


# ---------------------------------------------------------------------------- Gemini


def _gemini_error(status: int, state: str, message: str) -> Problem:
    return status, {"error": {"code": status, "message": message, "status": state}}


def gemini_check(
    headers: Any, query: Mapping[str, str], body: Any, api_key: str | None
) -> Problem | None:
    """What generateContent refuses: no key (403 ``PERMISSION_DENIED``), a wrong key
    (400 ``INVALID_ARGUMENT``), no ``contents``, a role other than user/model, a
    part without text."""
    key = headers.get("x-goog-api-key") or query.get("key")
    if not key:
        return _gemini_error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established "
            "identity). Please use API Key or other form of API consumer identity to "
            "call this API.",
        )
    if api_key is not None and key != api_key:
        return _gemini_error(
            400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."
        )
    if not isinstance(body, dict):
        return _gemini_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return _gemini_error(
            400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified"
        )
    for position, item in enumerate(contents):
        role = item.get("role", "user") if isinstance(item, dict) else None
        if role not in _GEMINI_ROLES:
            return _gemini_error(400, "INVALID_ARGUMENT", "Please use a valid role: user, model.")
        parts = item.get("parts") if isinstance(item, dict) else None
        if not isinstance(parts, list) or not parts:
            return _gemini_error(
                400,
                "INVALID_ARGUMENT",
                f"* GenerateContentRequest.contents[{position}].parts: "
                "contents.parts must not be empty.",
            )
    return None


def _parts_text(item: Any) -> str:
    parts = item.get("parts") if isinstance(item, dict) else None
    return "".join(p.get("text", "") for p in parts or () if isinstance(p, dict))


def gemini_as_chat(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request as an OpenAI-style body, for the rules."""
    messages: list[dict[str, Any]] = []
    system = _parts_text(body.get("systemInstruction"))
    if system:
        messages.append({"role": "system", "content": system})
    for item in body["contents"]:
        role = "assistant" if item.get("role") == "model" else "user"
        messages.append({"role": role, "content": _parts_text(item)})
    raw_config = body.get("generationConfig")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    chat: dict[str, Any] = {"messages": messages, "max_tokens": config.get("maxOutputTokens")}
    if config.get("responseMimeType") == "application/json":
        chat["response_format"] = {"type": "json_object"}
    return chat


def _gemini_usage(chat: Mapping[str, Any], text: str) -> dict[str, int]:
    prompt = sum(_count_tokens(content_text(m.get("content"))) for m in chat["messages"])
    output = _count_tokens(text)
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
    }


def gemini_response(body: Mapping[str, Any], content: str, model: str) -> dict[str, Any]:
    """The GenerateContentResponse answering ``body`` with ``content``."""
    chat = gemini_as_chat(body)
    text, cut = _cut(content, _positive_int(chat.get("max_tokens")))
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "MAX_TOKENS" if cut else "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": _gemini_usage(chat, text),
        "modelVersion": model,
    }


def gemini_events(
    body: Mapping[str, Any], content: str, model: str, words: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The response as ``streamGenerateContent?alt=sse`` sends it: one whole
    GenerateContentResponse per chunk of text, the last with the finish reason."""
    whole = gemini_response(body, content, model)
    candidate = whole["candidates"][0]
    chunks = pieces(candidate["content"]["parts"][0]["text"], words) or [""]
    for position, piece in enumerate(chunks):
        last = position == len(chunks) - 1
        part: dict[str, Any] = {
            "content": {"parts": [{"text": piece}], "role": "model"},
            "index": 0,
        }
        if last:
            part["finishReason"] = candidate["finishReason"]
        event = {"candidates": [part], "modelVersion": model}
        if last:
            event["usageMetadata"] = whole["usageMetadata"]
        yield "message", event


# ---------------------------------------------------------------------------- OpenAI


def openai_chunks(
    completion: Mapping[str, Any], words: int, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """A chat completion as ``chat.completion.chunk`` objects: a role chunk, one
    content chunk per piece, a finish chunk, and (``include_usage``) a usage chunk
    with ``choices: []``; the caller ends with ``data: [DONE]``."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    choice = completion["choices"][0]

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in pieces(choice["message"]["content"], words):
        yield chunk({"content": piece}, None)
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield {**base, "choices": [], "usage": completion["usage"]}


def native_fault(
    provider: str, kind: str, retry_after: float
) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """A status fault in the provider's own error format: ``"429"`` (Anthropic's
    ``rate_limit_error`` with ``retry-after``; Gemini's ``RESOURCE_EXHAUSTED`` with a
    ``RetryInfo`` delay), ``"503"`` (Anthropic's 529 ``overloaded_error``; Gemini's
    ``UNAVAILABLE``), ``"500"``, ``"400"``, ``"401"``."""
    note = "(injected fault; rule-based server, no model)"
    after = format(retry_after, "g")
    if provider == "anthropic":
        table = {
            "429": (
                429,
                "rate_limit_error",
                f"Number of requests has exceeded your rate limit {note}",
            ),
            "503": (529, "overloaded_error", f"Overloaded {note}"),
            "500": (500, "api_error", f"Internal server error {note}"),
            "400": (400, "invalid_request_error", f"Bad request {note}"),
            "401": (401, "authentication_error", f"invalid x-api-key {note}"),
        }
        status, kind_name, message = table[kind]
        headers = [("retry-after", after)] if kind == "429" else []
        return status, _anthropic_error(status, kind_name, message)[1], headers
    gemini = {
        "429": (429, "RESOURCE_EXHAUSTED", f"Resource has been exhausted {note}"),
        "503": (503, "UNAVAILABLE", f"The model is overloaded. Please try again later. {note}"),
        "500": (500, "INTERNAL", f"An internal error has occurred {note}"),
        "400": (400, "INVALID_ARGUMENT", f"Request contains an invalid argument {note}"),
        "401": (400, "INVALID_ARGUMENT", f"API key not valid. Please pass a valid API key. {note}"),
    }
    status, state, message = gemini[kind]
    body = _gemini_error(status, state, message)[1]
    if kind == "429":
        body["error"]["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{after}s"}
        ]
    return status, body, []


def sse_bytes(data: Any, event: str | None = None) -> bytes:
    """One server-sent event (``event:`` line if named, one ``data:`` line, blank line)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()
