"""The OpenAI-style JSON bodies the server sends: completions, the model list, errors.

Pure functions, safe from any thread.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Final

from dspex_actors.testing._faults import Fault
from dspex_actors.testing._prompt import content_text

_FAULT_NOTE: Final = "(injected fault; rule-based server, no model)"
_FAULT_ERRORS: Final[Mapping[str, tuple[int, str, str, str | None]]] = {
    "429": (429, f"Rate limit reached {_FAULT_NOTE}", "requests", "rate_limit_exceeded"),
    "500": (500, f"The server had an error {_FAULT_NOTE}", "server_error", None),
    "503": (
        503,
        f"The server is overloaded {_FAULT_NOTE}",
        "server_error",
        "service_unavailable",
    ),
    "400": (400, f"Bad request {_FAULT_NOTE}", "invalid_request_error", "bad_request"),
    "401": (
        401,
        f"Incorrect API key provided {_FAULT_NOTE}",
        "invalid_request_error",
        "invalid_api_key",
    ),
}


def error_body(message: str, err_type: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


def fault_error(fault: Fault) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """Status, error body and extra headers for a status fault (``"429"``, ``"500"``, ...).

    Raises :class:`KeyError` for a kind that is not answered with a status.
    """
    status, message, err_type, code = _FAULT_ERRORS[fault.kind]
    headers = [("Retry-After", format(fault.retry_after, "g"))] if fault.kind == "429" else []
    return status, error_body(message, err_type, code), headers


def models_body(model: str) -> dict[str, Any]:
    """The ``GET /v1/models`` list: the one model id the server reports."""
    return {
        "object": "list",
        "data": [
            {
                "id": model,
                "object": "model",
                "created": 0,
                "owned_by": "dspex-actors (rule-based; no model)",
            }
        ],
    }


def _count_tokens(text: str) -> int:
    return len(text.split())


def _truncate(text: str, max_tokens: int) -> str:
    """``text`` cut after ``max_tokens`` whitespace tokens (layout before the cut kept)."""
    end = 0
    for i, m in enumerate(re.finditer(r"\S+", text)):
        if i == max_tokens:
            break
        end = m.end()
    return text[:end]


def _positive_int(value: object) -> int | None:
    """``value`` if it is an int (not a bool) greater than 0, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def completion_body(body: Mapping[str, Any], content: str, seq: int, model: str) -> dict[str, Any]:
    """The chat-completion object for request ``body`` answered with ``content``.

    ``max_tokens`` / ``max_completion_tokens`` cut the content (``finish_reason``
    ``"length"``), ``n`` (1..128) repeats the choice, ``usage`` counts
    whitespace tokens; ``seq`` numbers the ``id``.
    """
    finish = "stop"
    limit = _positive_int(body.get("max_completion_tokens", body.get("max_tokens")))
    if limit is not None and limit < _count_tokens(content):
        content = _truncate(content, limit)
        finish = "length"
    n = _positive_int(body.get("n", 1))
    n = n if n is not None and n <= 128 else 1
    prompt_tokens = sum(
        _count_tokens(content_text(m.get("content")))
        for m in body.get("messages", ())
        if isinstance(m, dict)
    )
    completion_tokens = _count_tokens(content) * n
    choice = {"role": "assistant", "content": content}
    return {
        "id": f"chatcmpl-rule-{seq:08d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "rule-based",
        "choices": [
            {"index": i, "message": dict(choice), "logprobs": None, "finish_reason": finish}
            for i in range(n)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
