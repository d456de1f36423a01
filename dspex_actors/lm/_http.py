"""HTTP for one LM call: request plans, completions and one attempt (no actors, no retries).

:func:`build_plan` turns an :class:`~dspex_actors.lm.LM` and a message list into a
:class:`RequestPlan` (pure data); :func:`execute_plan` performs exactly one HTTP
attempt and returns a :class:`Completion` or raises one of the typed errors of
:mod:`dspex_actors.primitives`. Retrying, rate limiting, circuit breaking and caching
are layered on top by the runtime.

Threading: plans and completions are immutable. :func:`execute_plan` is safe to call
from several threads with one :class:`requests.Session` (its connection pool is
thread-safe). The key never appears in a plan's ``repr`` and is scrubbed from server
error messages.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from dspex_actors.lm._config import LM
from dspex_actors.primitives import (
    LMBadRequest,
    LMConnectionError,
    LMError,
    LMRateLimited,
    LMServerError,
    LMTimeout,
)

__all__ = [
    "Completion",
    "RequestPlan",
    "build_plan",
    "execute_plan",
    "make_session",
    "parse_retry_after",
]

_MAX_ERROR_TEXT = 500


class _RedactedHeaders(dict[str, str]):
    """A header dict whose repr/str hide the Authorization value."""

    def __repr__(self) -> str:
        shown = {
            name: ("***" if name.lower() == "authorization" else value)
            for name, value in self.items()
        }
        return repr(shown)

    __str__ = __repr__


@dataclass(frozen=True)
class RequestPlan:
    """Everything needed for one POST to ``/chat/completions`` (pure data).

    ``headers`` includes ``Authorization: Bearer <key>`` when the LM has a key; the
    plan's ``repr``/``str`` (and the headers' own repr) show it as ``***``. Use
    :func:`dataclasses.replace` to derive a plan with a shorter ``timeout`` (e.g.
    the time left before a deadline). ``model`` is the wire model name.

    Threading: immutable by convention (do not mutate ``headers``/``json``); share.
    """

    url: str
    headers: Mapping[str, str] = field(repr=False)
    json: dict[str, Any]
    timeout: float
    model: str

    def __repr__(self) -> str:
        return (
            f"RequestPlan(url={self.url!r}, headers={_RedactedHeaders(self.headers)!r}, "
            f"json={self.json!r}, timeout={self.timeout!r}, model={self.model!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class Completion:
    """The result of one successful chat completion.

    ``text`` is the first choice's message content (``""`` when the server sent
    ``null`` content); ``usage`` has ``prompt_tokens``, ``completion_tokens`` and
    ``total_tokens`` (0 when the server did not report them); ``model`` is the
    model the server says it used (the plan's model if it did not say);
    ``latency_s`` is the wall time of the HTTP exchange; ``finish_reason`` is the
    server's raw value (``"stop"``, ``"length"``... or ``None``).

    :meth:`to_dict` / :meth:`from_dict` convert to and from a JSON-serialisable dict
    (for the cache store).
    """

    text: str
    usage: dict[str, int]
    model: str
    latency_s: float
    finish_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict with the same fields (fresh copy)."""
        return {
            "text": self.text,
            "usage": dict(self.usage),
            "model": self.model,
            "latency_s": self.latency_s,
            "finish_reason": self.finish_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Completion:
        """Rebuild from :meth:`to_dict` output. Raises ``KeyError``/``TypeError`` if
        ``data`` lacks ``text`` or ``model``."""
        return cls(
            text=str(data["text"]),
            usage={str(k): int(v) for k, v in dict(data.get("usage") or {}).items()},
            model=str(data["model"]),
            latency_s=float(data.get("latency_s", 0.0)),
            finish_reason=data.get("finish_reason"),
        )


def build_plan(lm: LM, messages: list[dict[str, Any]], **overrides: Any) -> RequestPlan:
    """Build the POST request for an OpenAI-compatible ``/chat/completions`` call.

    The body is ``{"model": lm.wire_model, "messages": messages,
    **lm.request_params(**overrides) minus "model"}``: the same parameters that go
    into the cache key, so the key and the request cannot disagree. ``messages`` is
    copied (JSON round trip), so later mutation by the caller does not change the
    plan. Pure; any thread.

    Raises ``ValueError`` for reserved override names or an empty message list and
    ``TypeError`` for messages or overrides that are not JSON-serialisable.
    """
    if not messages:
        raise ValueError("build_plan: messages must not be empty")
    params = lm.request_params(**overrides)
    del params["model"]
    try:
        body: dict[str, Any] = json.loads(
            json.dumps({"model": lm.wire_model, "messages": messages, **params}, allow_nan=False)
        )
    except ValueError as exc:
        raise TypeError(f"build_plan: request is not JSON-serialisable: {exc}") from exc
    headers = _RedactedHeaders({"Content-Type": "application/json", "Accept": "application/json"})
    if lm.api_key is not None and lm.api_key.get_secret_value():
        headers["Authorization"] = f"Bearer {lm.api_key.get_secret_value()}"
    return RequestPlan(
        url=lm.chat_url, headers=headers, json=body, timeout=lm.timeout, model=lm.wire_model
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header value into seconds to wait (>= 0).

    Accepts delta-seconds (``"2"``, also ``"1.5"``) or an HTTP-date (``"Wed, 21 Oct
    2015 07:28:00 GMT"``), measured against ``now`` (wall-clock epoch seconds,
    default ``time.time()``); a date in the past gives 0.0. Returns ``None`` for a
    missing, empty, negative, non-finite or unparsable value (never raises).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=datetime.UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def make_session(pool_size: int = 64, base_url: str | None = None) -> requests.Session:
    """A :class:`requests.Session` with an ``HTTPAdapter`` pool of ``pool_size``
    connections (``pool_connections = pool_maxsize = pool_size``) for http and https,
    and urllib3 retries disabled (the retry policy retries; urllib3 must not).

    The environment (proxy variables, ``.netrc``) is read once, here, for
    ``base_url``, instead of on every request as ``requests`` does by default (that
    scan cost ~0.1-0.2 ms per call on our machines). So proxy settings changed
    after the LM client started apply at its next restart.

    Close it with ``session.close()`` when the owner stops. Raises ``ValueError`` if
    ``pool_size < 1``.
    """
    if pool_size < 1:
        raise ValueError(f"pool_size must be >= 1, got {pool_size}")
    session = requests.Session()
    if base_url is not None:
        session.proxies.update(requests.utils.get_environ_proxies(base_url))
        session.trust_env = False
    adapter = HTTPAdapter(
        pool_connections=pool_size,
        pool_maxsize=pool_size,
        max_retries=Retry(total=0, read=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _scrub(text: str, plan: RequestPlan) -> str:
    """Remove the bearer key from text that came back from the server."""
    auth = next((v for k, v in plan.headers.items() if k.lower() == "authorization"), None)
    if auth:
        key = auth.split(" ", 1)[-1]
        if key:
            text = text.replace(key, "***")
    return text


def _server_message(response: requests.Response) -> str:
    """The server's error message: ``error.message`` / ``error`` / ``message`` from a
    JSON body, else the start of the body text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(body.get("message"), str):
            return str(body["message"])
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
    text = response.text.strip()
    if len(text) > _MAX_ERROR_TEXT:
        text = text[:_MAX_ERROR_TEXT] + "..."
    return text or (response.reason or "")


def _retry_after_of(response: requests.Response) -> float | None:
    millis = response.headers.get("retry-after-ms")
    if millis is not None:
        parsed = parse_retry_after(millis)
        if parsed is not None:
            return parsed / 1000.0
    return parse_retry_after(response.headers.get("Retry-After"))


def _status_error(response: requests.Response, plan: RequestPlan) -> LMError:
    status = response.status_code
    detail = _scrub(_server_message(response), plan)
    prefix = f"{plan.model}: HTTP {status}"
    message = f"{prefix}: {detail}" if detail else prefix
    if status == 429:
        return LMRateLimited(message, retry_after=_retry_after_of(response))
    if status == 408:
        return LMTimeout(message, status=status)
    if status >= 500:
        return LMServerError(message, status=status)
    return LMBadRequest(message, status=status)


def _parse_completion(response: requests.Response, plan: RequestPlan, latency: float) -> Completion:
    status = response.status_code

    def malformed(why: str) -> LMServerError:
        return LMServerError(f"{plan.model}: malformed completion body ({why})", status=status)

    try:
        body = response.json()
    except ValueError:
        snippet = _scrub(response.text[:200], plan)
        raise malformed(f"not JSON: {snippet!r}") from None
    if not isinstance(body, dict):
        raise malformed(f"expected a JSON object, got {type(body).__name__}")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        error = body.get("error")
        if error is not None:
            raise malformed(f"error in 200 body: {_scrub(str(error)[:_MAX_ERROR_TEXT], plan)}")
        raise malformed("no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise malformed("choices[0].message missing")
    content = message.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise malformed(f"choices[0].message.content is {type(content).__name__}")
    raw_usage = body.get("usage")
    usage: dict[str, int] = {}
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = raw_usage.get(name) if isinstance(raw_usage, dict) else None
        usage[name] = int(value) if isinstance(value, int | float) else 0
    if not usage["total_tokens"]:
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    finish = choice.get("finish_reason")
    model = body.get("model")
    return Completion(
        text=content,
        usage=usage,
        model=model if isinstance(model, str) and model else plan.model,
        latency_s=latency,
        finish_reason=finish if isinstance(finish, str) else None,
    )


def execute_plan(session: requests.Session, plan: RequestPlan) -> Completion:
    """Perform exactly one HTTP attempt of ``plan`` and parse the completion.

    Blocks the calling thread for up to ``plan.timeout`` (connect and read each).
    Raises (all :class:`LMError`, chained to the underlying exception):

    - :class:`LMRateLimited` on 429, with ``retry_after`` from ``retry-after-ms`` or
      ``Retry-After`` (seconds or HTTP-date);
    - :class:`LMServerError` on 5xx, and on a 2xx whose body is not a chat
      completion (not JSON, no ``choices``, no ``message``);
    - :class:`LMTimeout` on a connect/read timeout or HTTP 408;
    - :class:`LMConnectionError` when no complete response arrived (refused, reset,
      dropped mid-body);
    - :class:`LMBadRequest` on any other status (4xx, unexpected 1xx/3xx), for an
      unusable URL and for a redirect loop; the message carries the server's error
      message.

    The API key is scrubbed from every message.
    """
    started = time.perf_counter()
    try:
        response = session.post(
            plan.url, headers=dict(plan.headers), json=plan.json, timeout=plan.timeout
        )
    except requests.Timeout as exc:  # includes ConnectTimeout (also a ConnectionError)
        raise LMTimeout(f"{plan.model}: timed out after {plan.timeout}s: {exc}") from exc
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise LMConnectionError(f"{plan.model}: connection failed: {exc}") from exc
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidHeader,
        requests.TooManyRedirects,
    ) as exc:
        raise LMBadRequest(f"{plan.model}: unusable request: {exc}") from exc
    except requests.RequestException as exc:  # ContentDecodingError and the like
        raise LMConnectionError(f"{plan.model}: request failed: {exc}") from exc
    latency = time.perf_counter() - started
    try:
        if 200 <= response.status_code < 300:
            return _parse_completion(response, plan, latency)
        raise _status_error(response, plan)
    finally:
        response.close()
