"""HTTP for one LM call: request plans, completions and one attempt (no actors, no retries).

:func:`build_plan` turns an :class:`~dspex_actors.lm.LM` and a message list into a
:class:`RequestPlan` (pure data); :func:`execute_plan` performs exactly one HTTP
attempt and returns a :class:`Completion` or raises one of the typed errors of
:mod:`dspex_actors.primitives`. Retrying, rate limiting, circuit breaking and caching
are layered on top by the runtime.

One attempt is bounded in time (connect timeout, read timeout, and a total time that
holds however slowly the bytes arrive: the connection is closed when it passes) and
in size (the body is read incrementally up to ``max_response_bytes``). Every error
names the LM and its base URL and says which limit fired; no error text holds the
API key (server texts and the texts of ``requests``/urllib3 exceptions are redacted
before they are cut to length).

Threading: plans and completions are immutable. :func:`execute_plan` is safe to call
from several threads with one :class:`requests.Session` (its connection pool is
thread-safe).
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import json
import math
import time
from typing import Any

import requests
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from dspex_actors.lm._anthropic import ANTHROPIC
from dspex_actors.lm._config import LM, refuse_stream
from dspex_actors.lm._gemini import GEMINI
from dspex_actors.lm._plan import Completion, RequestPlan, _RedactedHeaders
from dspex_actors.lm._provider import OPENAI, Provider
from dspex_actors.lm._transport import AttemptAbort, AttemptClock, BoundedAdapter, activate
from dspex_actors.lm._wire import MAX_ERROR_TEXT, redact, safe_cause, secrets_of
from dspex_actors.primitives import (
    DeadlineExceeded,
    LMBadRequest,
    LMConnectionError,
    LMError,
    LMResponseTooLarge,
    LMTimeout,
    LMTruncated,
    logger,
)

__all__ = [
    "PROVIDERS",
    "Completion",
    "RequestPlan",
    "build_plan",
    "execute_plan",
    "make_session",
    "parse_retry_after",
    "provider_for",
    "stream_plan",
]

_CHUNK = 64 * 1024


def _plain_copy(value: Any) -> Any:
    """A deep copy of ``value`` if it is made of exactly dict (str keys), list, str,
    int, bool, None and finite float, else ``None``.

    For such values it equals ``json.loads(json.dumps(value))`` at a third of the
    cost; anything else (tuples, subclasses, NaN, non-str keys...) gets ``None`` and
    goes through the JSON round trip, which decides what it becomes or raises.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                return None
            inner = _plain_copy(item)
            if inner is None and item is not None:
                return None
            copied[key] = inner
        return copied
    if kind is list:
        items: list[Any] = []
        for item in value:
            inner = _plain_copy(item)
            if inner is None and item is not None:
                return None
            items.append(inner)
        return items
    return None


PROVIDERS: dict[str, Provider] = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI}
"""Every wire format by name (:attr:`LM.provider`)."""


def provider_for(plan_or_name: RequestPlan | str) -> Provider:
    """The :class:`Provider` a plan (or a provider name) speaks."""
    name = plan_or_name if isinstance(plan_or_name, str) else plan_or_name.provider
    return PROVIDERS[name]


def build_plan(lm: LM, messages: list[dict[str, Any]], **overrides: Any) -> RequestPlan:
    """Build the request for one (non-streaming) call in the LM's wire format.

    OpenAI-compatible: the body is ``{"model": lm.wire_model, "messages": messages,
    **lm.request_params(**overrides) minus "model"}``: the same parameters that go
    into the cache key, so the key and the request cannot disagree. Anthropic and
    Gemini: the same messages and parameters in their format (see their providers);
    the content of every message is sent unchanged. ``messages`` is copied (JSON
    round trip), so later mutation by the caller does not change the plan (for plain
    JSON data a direct deep copy, same result). Pure; any thread.

    The plan carries the LM's time and size limits, its :attr:`~LM.label` and
    provider; :func:`stream_plan` makes its streaming twin.

    Raises ``ValueError`` for reserved override names (and ``stream``), an empty
    message list or messages the provider cannot take, and ``TypeError`` for
    messages or overrides that are not JSON-serialisable.
    """
    if not messages:
        raise ValueError("build_plan: messages must not be empty")
    params = lm.request_params(**overrides)
    if "stream" in params:
        refuse_stream(params, f"{lm.label}: request")
    del params["model"]
    provider = PROVIDERS[lm.provider]
    if provider is OPENAI:
        request = {"model": lm.wire_model, "messages": messages, **params}
    else:
        request = provider.body(lm, messages, params)
    body = _plain_copy(request)
    if body is None:  # not made of the built-in JSON types only: what JSON makes of it
        try:
            body = json.loads(json.dumps(request, allow_nan=False))
        except ValueError as exc:
            raise TypeError(f"build_plan: request is not JSON-serialisable: {exc}") from exc
    headers = _RedactedHeaders({"Content-Type": "application/json", "Accept": "application/json"})
    key = lm.api_key.get_secret_value() if lm.api_key is not None else None
    headers.update(provider.headers(key or None))
    return RequestPlan(
        url=lm.chat_url,
        headers=headers,
        json=body,
        timeout=lm.timeout,
        model=lm.wire_model,
        connect_timeout=lm.connect_timeout,
        attempt_timeout=lm.attempt_timeout,
        max_response_bytes=lm.max_response_bytes,
        label=lm.label,
        provider=provider.name,
    )


def stream_plan(plan: RequestPlan) -> RequestPlan:
    """``plan`` as a streaming request: the provider's streaming body and URL
    (Gemini's ``:streamGenerateContent?alt=sse``), ``Accept: text/event-stream``,
    ``stream=True``. Pure; returns ``plan`` if it streams already."""
    if plan.stream:
        return plan
    provider = PROVIDERS[plan.provider]
    headers = _RedactedHeaders(plan.headers)
    headers["Accept"] = "text/event-stream"
    url = plan.url
    if plan.provider == "gemini" and url.endswith(":generateContent"):
        url = url[: -len(":generateContent")] + ":streamGenerateContent?alt=sse"
    return dataclasses.replace(
        plan, url=url, headers=headers, json=provider.streaming(plan.json), stream=True
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
    and urllib3 retries disabled (the retry policy retries; urllib3 must not). The
    adapter is a :class:`~dspex_actors.lm._transport.BoundedAdapter`: reads made by
    :func:`execute_plan` honour the attempt's total time limit.

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
    adapter = BoundedAdapter(
        pool_connections=pool_size,
        pool_maxsize=pool_size,
        max_retries=Retry(total=0, read=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _retry_after_of(headers: Any) -> float | None:
    millis = headers.get("retry-after-ms")
    if millis is not None:
        parsed = parse_retry_after(millis)
        if parsed is not None:
            return parsed / 1000.0
    return parse_retry_after(headers.get("Retry-After"))


def _seconds(value: float) -> str:
    return f"{round(value, 2):g} s"


def _expired(plan: RequestPlan) -> LMError:
    """The error for an attempt its total time limit cut short (connection closed)."""
    label = plan.label or plan.model
    limit = _seconds(plan.attempt_timeout or 0.0)
    if plan.attempt_limit == "deadline":
        return DeadlineExceeded(
            f"{label}: the request deadline came {limit} into this attempt, before a "
            "complete response; connection closed"
        )
    return LMTimeout(
        f"{label}: no complete response within {limit} (attempt_timeout, the total time "
        "of one attempt); connection closed"
    )


def _is_read_timeout(exc: BaseException) -> bool:
    if isinstance(exc, requests.Timeout | ReadTimeoutError | TimeoutError):
        return True
    inner = exc.args[0] if exc.args else None
    return isinstance(inner, ReadTimeoutError)


def _transport_error(
    exc: BaseException, plan: RequestPlan, clock: AttemptClock, connect: float, cut: bool
) -> LMError:
    """The typed error for an exception of ``requests``/urllib3 (or the socket) during
    an attempt; ``connect`` is the connect timeout used, ``cut`` whether the attempt's
    total limit shortened it."""
    label = plan.label or plan.model
    if clock.expired or (cut and isinstance(exc, requests.ConnectTimeout)):
        return _expired(plan)
    if isinstance(exc, requests.ConnectTimeout):
        return LMTimeout(f"{label}: connect timed out after {_seconds(connect)}")
    if _is_read_timeout(exc):
        return LMTimeout(
            f"{label}: read timed out after {_seconds(plan.timeout)} (no data from the "
            "server for that long; LM.timeout)"
        )
    text = redact(str(exc), secrets_of(plan), MAX_ERROR_TEXT)
    unusable = (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidHeader,
        requests.TooManyRedirects,
    )
    if isinstance(exc, unusable):
        return LMBadRequest(f"{label}: unusable request: {text}")
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return LMConnectionError(f"{label}: connection failed: {text}")
    return LMConnectionError(f"{label}: request failed: {text}")


def _too_large(plan: RequestPlan, status: int, seen: str) -> LMResponseTooLarge:
    limit = plan.max_response_bytes or 0
    return LMResponseTooLarge(
        f"{plan.label or plan.model}: response body larger than max_response_bytes={limit} "
        f"({seen}); connection closed",
        limit=limit,
        status=status,
    )


def _read_body(response: requests.Response, plan: RequestPlan) -> bytes:
    """The whole body, read in chunks, at most ``plan.max_response_bytes`` of it.
    Raises :class:`LMResponseTooLarge` (the caller closes the connection)."""
    cap = plan.max_response_bytes
    declared = response.headers.get("Content-Length", "")
    if cap is not None and declared.strip().isdigit() and int(declared) > cap:
        raise _too_large(plan, response.status_code, f"Content-Length {int(declared)}")
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_content(_CHUNK):
        total += len(chunk)
        if cap is not None and total > cap:
            raise _too_large(plan, response.status_code, f"more than {cap} bytes read")
        chunks.append(chunk)
    return b"".join(chunks)


def _exchange(
    session: requests.Session, plan: RequestPlan, clock: AttemptClock
) -> tuple[requests.Response, bytes]:
    """POST the plan and read the body; the response is closed before returning."""
    connect = plan.connect_timeout if plan.connect_timeout is not None else plan.timeout
    left = clock.left()
    cut = left is not None and left < connect
    if left is not None and left <= 0:
        clock.expired = True
        raise _expired(plan)
    used = min(connect, left) if cut and left is not None else connect
    try:
        response = session.post(
            plan.url,
            headers=dict(plan.headers),
            json=plan.json,
            timeout=(used, plan.timeout),
            stream=True,
        )
        try:
            raw = _read_body(response, plan)
        finally:
            response.close()  # a partly read body: the connection is closed, not reused
    except (requests.RequestException, Urllib3Error, OSError) as exc:
        error = _transport_error(exc, plan, clock, used, cut)
        raise error from safe_cause(exc, secrets_of(plan))
    return response, raw


def execute_plan(
    session: requests.Session, plan: RequestPlan, abort: AttemptAbort | None = None
) -> Completion:
    """Perform exactly one HTTP attempt of ``plan`` and parse the completion.

    Blocks the calling thread for at most ``plan.connect_timeout`` to connect, at
    most ``plan.timeout`` between two bytes of the response and, if
    ``plan.attempt_timeout`` is set, at most that long in total: then the connection
    is closed at once, whatever the server is doing (dripping bytes included). The
    body is read incrementally and never past ``plan.max_response_bytes``.
    ``abort`` lets another thread end the attempt at once (its socket is shut down;
    the attempt then raises :class:`LMConnectionError`).

    Raises (all :class:`LMError`, chained to the underlying exception unless its
    text holds the key):

    - :class:`LMRateLimited` on 429 (``retry_after`` from ``retry-after-ms`` or
      ``Retry-After``) or a 200 whose ``error`` is a rate limit;
      :class:`LMQuotaExceeded` for ``insufficient_quota`` (not retryable);
    - :class:`LMServerError` on 5xx, on a 2xx whose body is not a chat completion,
      and on a 200 whose ``error`` is server-side or unknown;
      :class:`LMResponseTooLarge` past ``max_response_bytes``;
    - :class:`LMTruncated` for ``finish_reason == "length"`` (with the partial text);
      :class:`LMRefused` for a refusal or ``finish_reason == "content_filter"``;
    - :class:`LMTimeout` on a connect timeout, a read timeout, HTTP 408, or the
      attempt's total limit; :class:`DeadlineExceeded` when that limit was the
      request deadline (:meth:`RequestPlan.within`);
    - :class:`LMConnectionError` when no complete response arrived (refused, reset,
      dropped mid-body);
    - :class:`LMBadRequest` on any other status (4xx, unexpected 1xx/3xx), for an
      unusable URL and for a redirect loop; the message carries the server's error
      message.

    Every message names the LM (``plan.label``) and has the API key redacted.
    """
    started = time.perf_counter()
    clock = AttemptClock(plan.attempt_timeout, plan.timeout, abort)
    previous = activate(clock)
    try:
        response, raw = _exchange(session, plan, clock)
    finally:
        activate(previous)
    latency = time.perf_counter() - started
    status = response.status_code
    provider = PROVIDERS[plan.provider]
    if 200 <= status < 300:
        try:
            return provider.parse(raw, status, _retry_after_of(response.headers), plan, latency)
        except LMTruncated as exc:
            logger.warning(
                "lm.truncated", lm=plan.label, partial_chars=exc.partial_length, status=status
            )
            raise
    reason = response.reason if isinstance(response.reason, str) else ""
    raise provider.error(status, raw, reason, _retry_after_of(response.headers), plan)
