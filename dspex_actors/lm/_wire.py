"""From response bytes to a completion or a typed error; secrets kept out of every text.

:func:`completion_from_body` reads a 2xx body the way the OpenAI wire format and the
proxies in front of it actually send it: an ``error`` object in a 200 is an error
(even next to ``choices``), the choice is taken by its ``index``, ``content`` may be
``null`` or a list of parts, a refusal or a content filter is :class:`LMRefused`, a
cut answer (``finish_reason == "length"``) is :class:`LMTruncated`.
:func:`status_error` maps any other status. :func:`redact` removes the API key (and
every 8-character piece of it) from a text *before* cutting it to length, so a key
straddling the cut cannot survive in part; :func:`safe_cause` decides whether an
underlying exception may stay chained to ours.

Pure functions; any thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from dspex_actors.lm._plan import SECRET_HEADERS, Completion, RequestPlan
from dspex_actors.primitives import (
    LMBadRequest,
    LMError,
    LMQuotaExceeded,
    LMRateLimited,
    LMRefused,
    LMServerError,
    LMTimeout,
    LMTruncated,
)

__all__ = [
    "MAX_ERROR_TEXT",
    "completion_from_body",
    "redact",
    "safe_cause",
    "secrets_of",
    "status_error",
]

MAX_ERROR_TEXT = 500
"""The longest piece of server or library text an error message quotes."""

_MASK = "***"
_PIECE = 8  # every substring of the key this long is masked

_QUOTA = frozenset({"insufficient_quota", "quota_exceeded", "billing_hard_limit_reached"})
_RATE = frozenset(
    {
        "rate_limit_exceeded",
        "rate_limit_error",
        "rate_limit",
        "ratelimiterror",
        "requests",
        "tokens",
        "too_many_requests",
        "resource_exhausted",
    }
)
_TIMEOUT = frozenset({"timeout", "request_timeout", "timeout_error", "deadline_exceeded"})
_SERVER = frozenset(
    {
        "server_error",
        "internal_server_error",
        "internalservererror",
        "internal_error",
        "internal",
        "api_error",
        "overloaded_error",
        "service_unavailable",
        "unavailable",
        "bad_gateway",
    }
)
_BAD = frozenset(
    {
        "invalid_request_error",
        "badrequesterror",
        "bad_request",
        "invalid_argument",
        "authentication_error",
        "authenticationerror",
        "invalid_api_key",
        "permission_error",
        "permission_denied",
        "not_found_error",
        "not_found",
        "model_not_found",
        "context_length_exceeded",
        "unsupported_parameter",
    }
)


# ------------------------------------------------------------------------- secrets


def secrets_of(plan: RequestPlan) -> tuple[str, ...]:
    """The secrets a plan carries (the key in its auth header), to keep out of texts."""
    for name, value in plan.headers.items():
        lowered = name.lower()
        if lowered in SECRET_HEADERS:
            key = value.split(" ", 1)[-1].strip() if lowered == "authorization" else value.strip()
            return (key,) if key else ()
    return ()


def _masked_spans(text: str, secrets: Sequence[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for secret in secrets:
        pieces = (
            {secret}
            if len(secret) <= _PIECE
            else {secret[i : i + _PIECE] for i in range(len(secret) - _PIECE + 1)}
        )
        for piece in pieces:
            start = text.find(piece)
            while start != -1:
                spans.append((start, start + len(piece)))
                start = text.find(piece, start + 1)
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def redact(text: str, secrets: Sequence[str], limit: int | None = None) -> str:
    """``text`` with every occurrence of a secret, and of any 8-character piece of it,
    replaced by ``***``; cut to ``limit`` characters (plus ``"..."``) if given.

    The masking is decided on the text *before* the cut (on a window reaching one
    secret's length past it), so a secret straddling the cut is masked too. Linear
    in ``min(len(text), limit)`` times the number of pieces.
    """
    live = [s for s in secrets if s]
    if limit is not None and len(text) > limit:
        window = text[: limit + max((len(s) for s in live), default=0)]
        keep, cut = limit, True
    else:
        window, keep, cut = text, len(text), False
    if not live:
        return window[:keep] + ("..." if cut else "")
    out: list[str] = []
    position = 0
    for start, end in _masked_spans(window, live):
        if start >= keep:
            break
        out.append(window[position:start])
        out.append(_MASK)
        position = end
    if position < keep:
        out.append(window[position:keep])
    return "".join(out) + ("..." if cut else "")


def safe_cause(exc: BaseException, secrets: Sequence[str]) -> BaseException | None:
    """``exc`` if no text of it or of the exceptions chained to it holds a secret
    (or a piece of one), else ``None`` (then raise ``from None``)."""
    live = [s for s in secrets if s]
    if not live:
        return exc
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        if len(seen) >= 32:
            return None  # a chain too long to check is not kept
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        try:
            texts = (str(current), repr(current))
        except Exception:  # a broken __str__: do not keep what cannot be checked
            return None
        if any(_masked_spans(text, live) for text in texts):
            return None
        stack.extend((current.__cause__, current.__context__))
    return exc


# ------------------------------------------------------------------------- bodies


class _Invalid:
    """Marker: the body is not JSON."""


_INVALID = _Invalid()


def _load_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, a 5,000-digit int, deep nesting
        return _INVALID


def _body_text(raw: bytes, limit: int) -> str:
    """The start of the body as text (enough for a ``limit``-character excerpt)."""
    return raw[: limit * 4 + 256].decode("utf-8", errors="replace").strip()


def _detail(body: Any, raw: bytes) -> str:
    """The server's own words: ``error.message`` / ``error`` / ``message`` / ``detail``
    from a JSON body, else the start of the body text."""
    if isinstance(body, dict):
        error = body.get("error")
        candidates = [
            error.get("message") if isinstance(error, dict) else error,
            body.get("message"),
            body.get("detail"),
        ]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate:
                return candidate
        if error not in (None, "", {}):
            return json.dumps(error, ensure_ascii=False, default=str)[: MAX_ERROR_TEXT * 2]
    return _body_text(raw, MAX_ERROR_TEXT)


def _error_words(error: Any) -> tuple[set[str], int | None]:
    """The lower-cased ``type`` / ``code`` / ``status`` words of an error object and
    the HTTP status its ``code`` names, if it is one."""
    if not isinstance(error, dict):
        return set(), None
    words: set[str] = set()
    status: int | None = None
    for name in ("type", "code", "status"):
        value = error.get(name)
        if isinstance(value, str):
            words.add(value.strip().lower())
            if value.strip().isdigit() and len(value.strip()) == 3:
                status = int(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            status = value
    return words, status


def _class_for(words: set[str], status: int | None) -> type[LMError]:
    """The error class an error object (in a 200, or as ``status`` says) stands for."""
    if words & _QUOTA:
        return LMQuotaExceeded
    if words & _RATE or status == 429:
        return LMRateLimited
    if words & _TIMEOUT or status == 408:
        return LMTimeout
    if words & _SERVER or (status is not None and status >= 500):
        return LMServerError
    if words & _BAD or (status is not None and 400 <= status < 500):
        return LMBadRequest
    return LMServerError  # unknown: the server answered wrongly, retry


def _make(cls: type[LMError], message: str, status: int, retry_after: float | None) -> LMError:
    if issubclass(cls, LMRateLimited):
        return cls(message, retry_after=retry_after, status=status)
    return cls(message, status=status)


def status_error(
    status: int, raw: bytes, reason: str, retry_after: float | None, plan: RequestPlan
) -> LMError:
    """The typed error for a non-2xx response (``retry_after`` from its headers).

    429 -> :class:`LMRateLimited` (:class:`LMQuotaExceeded` for ``insufficient_quota``),
    408 -> :class:`LMTimeout`, 5xx -> :class:`LMServerError`, any other ->
    :class:`LMBadRequest`; the message quotes the server (redacted, bounded).
    """
    secrets = secrets_of(plan)
    body = _load_json(raw)
    words, _ = _error_words(body.get("error") if isinstance(body, dict) else None)
    detail = redact(_detail(body, raw) or reason or "", secrets, MAX_ERROR_TEXT)
    prefix = f"{plan.label or plan.model}: HTTP {status}"
    message = redact(f"{prefix}: {detail}" if detail else prefix, secrets)
    cls: type[LMError]
    if words & _QUOTA:
        cls = LMQuotaExceeded
    elif status == 429:
        cls = LMRateLimited
    elif status == 408:
        cls = LMTimeout
    elif status >= 500:
        cls = LMServerError
    else:
        cls = LMBadRequest
    return _make(cls, message, status, retry_after)


def _error_in_200(
    error: Any, detail: str, status: int, retry_after: float | None, plan: RequestPlan
) -> LMError:
    """The error an ``error`` object in a 2xx body stands for; ``detail`` is the
    server's message (unredacted, uncut)."""
    secrets = secrets_of(plan)
    words, code_status = _error_words(error)
    kind = ", ".join(sorted(words)) or "no type"
    detail = redact(detail, secrets, MAX_ERROR_TEXT)
    message = redact(
        f"{plan.label or plan.model}: error object in an HTTP {status} response ({kind}): {detail}",
        secrets,
    )
    return _make(_class_for(words, code_status), message, status, retry_after)


def _malformed(plan: RequestPlan, status: int, why: str) -> LMServerError:
    message = redact(
        f"{plan.label or plan.model}: malformed completion body ({why})", secrets_of(plan)
    )
    return LMServerError(message, status=status)


def _first_choice(choices: Any, plan: RequestPlan, status: int) -> dict[str, Any]:
    """The choice with the lowest ``index`` (0 in any sane body; a choice without
    ``index`` counts by its position), not simply the first in the list."""
    if not isinstance(choices, list) or not choices:
        raise _malformed(plan, status, "no choices")
    best: tuple[int, dict[str, Any]] | None = None
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", position)
        if isinstance(index, bool) or not isinstance(index, int):
            index = position
        if best is None or index < best[0]:
            best = (index, choice)
    if best is None:
        raise _malformed(plan, status, "no choice is an object")
    return best[1]


def _content_of(message: dict[str, Any], plan: RequestPlan, status: int) -> tuple[str, str]:
    """``(text, refusal)`` of a message: ``content`` as a str, ``null`` or a list of
    parts (text parts joined, refusal parts collected), and ``refusal``."""
    content = message.get("content")
    refusals: list[str] = []
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        refusals.append(refusal)
    if content is None:
        return "", "".join(refusals)
    if isinstance(content, str):
        return content, "".join(refusals)
    if not isinstance(content, list):
        raise _malformed(plan, status, f"message.content is {type(content).__name__}")
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            if part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                refusals.append(part["refusal"])
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
    return "".join(texts), "".join(refusals)


def _usage(raw_usage: Any) -> dict[str, int]:
    usage: dict[str, int] = {}
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = raw_usage.get(name) if isinstance(raw_usage, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            value = 0
        usage[name] = int(value) if math.isfinite(value) and value > 0 else 0
    if not usage["total_tokens"]:
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage


def _refused(
    plan: RequestPlan, status: int, refusal: str, text: str, finish: str | None
) -> LMRefused:
    secrets = secrets_of(plan)
    said = redact(refusal or text, secrets)
    if finish == "content_filter":
        why = "the provider's content filter stopped the answer (finish_reason='content_filter')"
    elif finish == "safety":
        why = "the provider's safety filter stopped the answer (finish_reason='safety')"
    else:
        why = "the model refused"
    quoted = redact(said, (), 200)
    message = f"{plan.label or plan.model}: {why}" + (f": {quoted}" if quoted else "")
    return LMRefused(message, refusal=said, finish_reason=finish, status=status)


def _truncated(plan: RequestPlan, status: int, text: str) -> LMTruncated:
    tokens_param = next(
        (p for p in ("max_completion_tokens", "max_tokens") if p in plan.json), "max_tokens"
    )
    limit = plan.json.get(tokens_param)
    config = plan.json.get("generationConfig")
    if limit is None and isinstance(config, dict):  # Gemini's name for it
        tokens_param, limit = "maxOutputTokens", config.get("maxOutputTokens")
    message = (
        f"{plan.label or plan.model}: the answer was cut at the token limit "
        f"({tokens_param}={limit}) after {len(text)} characters (finish_reason='length'); "
        "raise max_tokens"
    )
    return LMTruncated(
        message, partial_text=redact(text, secrets_of(plan)), finish_reason="length", status=status
    )


def completion_from_body(
    raw: bytes,
    status: int,
    retry_after: float | None,
    plan: RequestPlan,
    latency: float,
) -> Completion:
    """The :class:`Completion` in a 2xx body, or the typed error it amounts to.

    Raises :class:`LMServerError` for a body that is not a chat completion (not JSON,
    no choices, no message), the error an ``error`` object stands for (quota,
    rate limit, server, bad request; also next to ``choices``), :class:`LMRefused`
    for a refusal or a content filter and :class:`LMTruncated` for a cut answer.
    The key is removed from the completion text too.
    """
    body = _load_json(raw)
    if isinstance(body, _Invalid):
        snippet = redact(_body_text(raw, 200), secrets_of(plan), 200)
        raise _malformed(plan, status, f"not JSON: {snippet!r}")
    if not isinstance(body, dict):
        raise _malformed(plan, status, f"expected a JSON object, got {type(body).__name__}")
    error = body.get("error")
    if error:  # null, "", {} and false mean "no error" in the bodies seen in the wild
        raise _error_in_200(error, _detail(body, raw), status, retry_after, plan)
    choice = _first_choice(body.get("choices"), plan, status)
    message = choice.get("message")
    if not isinstance(message, dict):
        raise _malformed(plan, status, "the choice has no message")
    text, refusal = _content_of(message, plan, status)
    finish = choice.get("finish_reason")
    finish = finish if isinstance(finish, str) else None
    if refusal or finish == "content_filter":
        raise _refused(plan, status, refusal, text, finish)
    if finish == "length":
        raise _truncated(plan, status, text)
    secrets = secrets_of(plan)
    if secrets and any(s in text for s in secrets):
        text = redact(text, secrets)
    model = body.get("model")
    return Completion(
        text=text,
        usage=_usage(body.get("usage")),
        model=model if isinstance(model, str) and model else plan.model,
        latency_s=latency,
        finish_reason=normal_finish(finish),
    )


_TOOL_FINISH = frozenset({"tool_calls", "function_call", "tool_use"})


def normal_finish(finish: str | None) -> str | None:
    """OpenAI's finish reason in the one set every provider maps to: ``"stop"``,
    ``"tool"`` (``tool_calls``/``function_call``), or the server's other value as is
    (``"length"`` and ``"content_filter"`` never get here: they are errors)."""
    if finish in _TOOL_FINISH:
        return "tool"
    return finish
