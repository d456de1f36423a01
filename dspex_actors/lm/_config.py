"""LM configuration: an immutable description of one OpenAI-compatible chat endpoint.

:class:`LM` holds the model name, endpoint, key and request parameters; it is pure
data, hashable, and safe to share between threads. The API key is a
:class:`pydantic.SecretStr`: it never appears in ``repr``, ``str`` or ``model_dump``.
Invalid settings raise :class:`pydantic.ValidationError` (a ``ValueError``) when the
LM is built, before any I/O.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

import supervisors as sv
from dspex_actors.lm._openai_models import OPENAI_JSON_OBJECT, OPENAI_JSON_SCHEMA

__all__ = [
    "DEFAULT_API_BASE",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "LM",
    "PROVIDER_API_BASES",
    "RESERVED_PARAM_NAMES",
    "provider_of",
    "refuse_stream",
    "uses_max_completion_tokens",
]

DEFAULT_API_BASE = "https://api.openai.com/v1"

PROVIDER_API_BASES = {
    "openai": DEFAULT_API_BASE,
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
}
"""The public endpoint of each native provider (``api_base=None``)."""

_KEY_VARIABLES = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}


def provider_of(model: str) -> str:
    """The wire format ``model`` is spoken in: ``"anthropic"`` for ``anthropic/...``,
    ``"gemini"`` for ``gemini/...``, else ``"openai"`` (OpenAI-compatible)."""
    prefix = model.split("/", 1)[0].lower() if "/" in model else ""
    return prefix if prefix in ("anthropic", "gemini") else "openai"


DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""The default cap on one response body (16 MiB; a chat completion is a few KiB)."""

# DSPy 3.4.1's ``_is_openai_reasoning_model`` (dspy/clients/lm.py): these families
# reject ``max_tokens`` and take ``max_completion_tokens``.
_REASONING_FAMILY = re.compile(
    r"^(?:o[1345](?:-(?:mini|nano|pro))?(?:-\d{4}-\d{2}-\d{2})?|gpt-5(?:\.\d+)*(?!-chat)(?:-.*)?)$"
)

#: Names that may never be request parameters (they are credentials or routing, and
#: must stay out of request bodies and cache keys), nor override the plan's own keys.
RESERVED_PARAM_NAMES = frozenset(
    {"api_key", "api_base", "base_url", "authorization", "model", "messages"}
)


def _default_api_base() -> str:
    return os.environ.get("OPENAI_API_BASE") or DEFAULT_API_BASE


def _default_api_key() -> SecretStr | None:
    return _clean_key(os.environ.get("OPENAI_API_KEY") or None, "LM: $OPENAI_API_KEY")


def _normalise_name(name: str) -> str:
    return name.lower().replace("-", "_")


def _check_params(params: Mapping[str, Any], where: str) -> None:
    for name in params:
        if not isinstance(name, str):
            raise TypeError(f"{where}: parameter names must be str, got {name!r}")
        if _normalise_name(name) in RESERVED_PARAM_NAMES:
            raise ValueError(f"{where}: {name!r} cannot be a request parameter")


def refuse_stream(params: Mapping[str, Any], where: str) -> None:
    """Raise ``ValueError`` if ``params`` asks for streaming (there is none yet)."""
    if params.get("stream"):
        raise ValueError(
            f"{where}: 'stream' is not supported yet: responses are read whole (no "
            "streaming); remove it"
        )


@functools.lru_cache(maxsize=256)
def uses_max_completion_tokens(model: str) -> bool:
    """Whether ``model`` is of a family that rejects ``max_tokens`` (OpenAI's o1/o3/o4/o5
    and gpt-5 reasoning models, as DSPy 3.4.1 decides: the last ``/`` segment,
    lower-cased, against the same pattern)."""
    return _REASONING_FAMILY.match(model.rsplit("/", maxsplit=1)[-1].lower()) is not None


def _clean_key(value: Any, where: str) -> SecretStr | None:
    """The key with surrounding whitespace stripped (``None`` if nothing is left).

    Raises ``ValueError`` for a control or non-latin-1 character (HTTP headers carry
    latin-1 only), naming its position and never the key itself.
    """
    if value is None:
        return None
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(raw, str):
        raise ValueError(f"{where} must be a str, got {type(raw).__name__}")
    key = raw.strip()
    if not key:
        return None
    for position, char in enumerate(key):
        code = ord(char)
        if code > 0xFF:
            raise ValueError(
                f"{where} has a non-latin-1 character at position {position} "
                "(an HTTP header cannot carry it; the key is not shown)"
            )
        if code < 0x20 or 0x7F <= code < 0xA0:
            raise ValueError(
                f"{where} has a control character (U+{code:04X}) at position "
                f"{position} (the key is not shown)"
            )
    return SecretStr(key)


@functools.lru_cache(maxsize=256)
def _display_url(url: str) -> str:
    """``url`` without user info, query or fragment (where credentials may hide).

    Cached (a pure function of the string): every request names its LM by it."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if not parts.scheme or not host:
        return url.split("?", 1)[0].split("#", 1)[0].rsplit("@", maxsplit=1)[-1]
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class LM(BaseModel):
    """Immutable configuration of one OpenAI-compatible chat completion endpoint.

    ``LM("openai/gpt-4o-mini", api_base=..., api_key="sk-...")``: the model may be
    given positionally. The first ``/``-separated segment of ``model`` is the
    provider prefix (DSPy/litellm convention) and is stripped for the wire name
    (:attr:`wire_model`): ``"openai/gpt-4o-mini"`` -> ``"gpt-4o-mini"``,
    ``"openai/meta-llama/Llama-3-8B"`` -> ``"meta-llama/Llama-3-8B"``; a model
    without ``/`` is sent as is.

    ``api_base`` defaults to ``$OPENAI_API_BASE`` or the OpenAI URL (``None`` means the
    OpenAI URL too); ``api_key`` defaults to ``$OPENAI_API_KEY`` (``None``: no
    Authorization header, for local servers). The key is stripped of surrounding
    whitespace (keys read from files end in a newline); a control or non-latin-1
    character in it is refused with an error that does not show the key.

    Time limits of one HTTP attempt (each error says which one fired):

    - ``connect_timeout`` (10 s, as DSPy): to open the connection;
    - ``timeout`` (30 s): the read timeout, the longest silence between two bytes
      of the response (a non-streaming answer is silent until it is complete, so
      raise it for slow models);
    - ``attempt_timeout`` (``None``): the total time of one attempt, however the
      bytes trickle in; when it passes the connection is closed (:class:`LMTimeout`).
      In a running system every attempt is also cut at the request deadline
      (``RetryPolicy.deadline``, 60 s), with :class:`DeadlineExceeded`, and the
      connection is closed then too. So with the defaults a hung server costs one
      30 s read timeout, a retry, and the rest of the 60 s deadline. DSPy waits 600 s
      for each byte and has no deadline: raise ``timeout`` *and* the deadline together
      for models that think for minutes.

    ``max_response_bytes`` (16 MiB) caps a response body, read incrementally
    (:class:`LMResponseTooLarge` past it). ``max_tokens`` is sent as ``max_tokens``,
    or as ``max_completion_tokens`` when ``max_tokens_param`` says so; by default
    (``None``) the latter for the families that reject ``max_tokens`` (o1/o3/o4-mini,
    gpt-5...; :func:`uses_max_completion_tokens`). ``cache_scope`` names the
    endpoint in cache keys: by default (``None``) the base URL (without credentials),
    so two servers never share answers; give several LMs the same ``cache_scope`` to
    share a cache across endpoints on purpose.

    ``rpm`` and ``pool_size`` configure the token bucket and connection pool the LM
    client builds. The circuit breaker opens, by default (``breaker_mode="rate"``), when
    ``breaker_failure_rate`` (0.5) of the last ``breaker_window`` (100) counted calls
    failed, once ``breaker_min_calls`` (50) were seen: a flaky upstream is left to
    retries, a dead one is cut off; ``breaker_mode="consecutive"`` opens it after
    ``breaker_threshold`` (5) failures in a row instead. It stays open
    ``breaker_cooldown`` (10 s), then lets one trial through at a time;
    ``breaker_success_threshold`` (1) successful trials in a row close it. Each failed
    trial re-opens it for ``breaker_backoff`` (2) times longer, up to
    ``breaker_max_cooldown`` (300 s), plus up to ``breaker_jitter`` (20 %) at random.
    Operators tell ``BreakerDisable()`` / ``BreakerEnable()`` to the LM's client
    (``docs/providers.md``, "Breaker operations").
    ``extra`` holds additional JSON-serialisable request body parameters (``top_p``,
    ``seed``, ``stop``...); credential/routing names, ``model``/``messages`` and
    ``stream`` (there is no streaming yet) are rejected there.

    Providers (``docs/providers.md``): ``"anthropic/<model>"`` speaks Anthropic's
    Messages API natively and ``"gemini/<model>"`` Gemini's ``generateContent``; any
    other model is OpenAI-compatible. For those two ``api_base=None`` is the
    provider's public endpoint (Anthropic's host root, Gemini's ``.../v1beta``) and
    the key defaults to ``$ANTHROPIC_API_KEY`` / ``$GEMINI_API_KEY`` (or
    ``$GOOGLE_API_KEY``).

    The bulkhead (each LM its own): at most ``max_in_flight`` (64) requests at once,
    at most ``max_queue`` (1024) waiting for a slot, each for at most
    ``queue_timeout`` (10 s); past those a call fails fast with
    :class:`LMQueueFull` / :class:`LMQueueTimeout`, so one slow provider cannot take
    the threads and the patience of the others.

    ``response_format`` is what the JSON adapter's calls send (DSPy's choice, by
    model): ``"auto"`` (default) a strict JSON schema of the outputs for the OpenAI
    models DSPy sends Structured Outputs to (gpt-4o, gpt-4.1, gpt-5, o1/o3/o4...), JSON
    mode for the others it knows (gpt-3.5-turbo, gpt-4-turbo...), JSON mode for Gemini
    and nothing for Anthropic and for models DSPy does not know (local servers);
    ``"json_schema"``, ``"json_object"`` or ``"none"`` to choose
    (:attr:`response_format_support`). A predictor's own ``response_format`` wins.

    Supervision (``docs/providers.md``, "crash storms"): each LM's client runs under
    its own supervisor, allowing ``client_max_restarts`` (3) restarts in
    ``client_max_seconds`` (5 s); each restart waits ``restart_backoff``
    (``sv.Backoff()``: 0.1 s doubling to 10 s, 20 % jitter; ``None``: at once); a call
    meanwhile waits for it if it is back before the request's deadline. One
    crash too many and that supervisor gives up: the LM is *down* (its calls fail fast
    with :class:`LMUnavailable`) until the system's root starts it again after
    ``down_backoff`` (``sv.Backoff(min_s=1.0, max_s=60.0)``, doubling while it keeps
    failing). Other LMs, the cache and running programs are not touched.

    Threading: frozen; ``extra`` is a private deep copy of what was passed (do not
    mutate it in place); share freely.
    Raises :class:`pydantic.ValidationError` (a ``ValueError``) on invalid values;
    its text never shows the values given.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    model: str = Field(min_length=1)
    api_base: str | None = Field(default_factory=_default_api_base)
    api_key: SecretStr | None = Field(default_factory=_default_api_key, validate_default=True)
    temperature: float = Field(default=0.0, ge=0.0)
    max_tokens: int = Field(default=512, ge=1)
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] | None = None
    timeout: float = Field(default=30.0, gt=0.0)
    connect_timeout: float = Field(default=10.0, gt=0.0)
    attempt_timeout: float | None = Field(default=None, gt=0.0)
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1)
    cache_scope: str | None = Field(default=None, min_length=1)
    rpm: float | None = Field(default=None, gt=0.0)
    breaker_mode: Literal["rate", "consecutive"] = "rate"
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_failure_rate: float = Field(default=0.5, gt=0.0, le=1.0)
    breaker_window: int = Field(default=100, ge=1)
    breaker_min_calls: int = Field(default=50, ge=1)
    breaker_cooldown: float = Field(default=10.0, ge=0.0)
    breaker_backoff: float = Field(default=2.0, ge=1.0)
    breaker_max_cooldown: float = Field(default=300.0, ge=0.0)
    breaker_jitter: float = Field(default=0.2, ge=0.0, le=1.0)
    breaker_success_threshold: int = Field(default=1, ge=1)
    pool_size: int = Field(default=64, ge=1)
    max_in_flight: int = Field(default=64, ge=1)
    max_queue: int = Field(default=1024, ge=0)
    queue_timeout: float = Field(default=10.0, gt=0.0)
    response_format: Literal["auto", "json_schema", "json_object", "none"] = "auto"
    restart_backoff: sv.Backoff | None = Field(default_factory=sv.Backoff)
    client_max_restarts: int = Field(default=3, ge=0)
    client_max_seconds: float = Field(default=5.0, gt=0.0)
    down_backoff: sv.Backoff = Field(default_factory=lambda: sv.Backoff(min_s=1.0, max_s=60.0))
    extra: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, model: str | None = None, /, **data: Any) -> None:
        if model is not None:
            if "model" in data:
                raise TypeError("LM() got the model both positionally and as model=")
            data["model"] = model
        provider = provider_of(str(data.get("model") or ""))
        if provider != "openai":
            # A native provider: its own endpoint and key variable, never OpenAI's.
            data.setdefault("api_base", None)
            if "api_key" not in data:
                names = _KEY_VARIABLES[provider]
                data["api_key"] = next((os.environ[n] for n in names if os.environ.get(n)), None)
        if "api_key" in data:
            # Checked here, not only by the field validator, so that a bad key raises a
            # plain ValueError: a ValidationError would keep the key in ``.errors()``.
            data["api_key"] = _clean_key(data["api_key"], f"LM({data.get('model')!r}): api_key")
        super().__init__(**data)

    @field_validator("api_key", mode="before")
    @classmethod
    def _validate_key(cls, value: Any, info: ValidationInfo) -> SecretStr | None:
        return _clean_key(value, f"LM({info.data.get('model')!r}): api_key")

    @field_validator("extra")
    @classmethod
    def _validate_extra(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        where = f"LM({info.data.get('model', '?')!r}).extra"
        _check_params(value, where)
        refuse_stream(value, where)
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"LM.extra must be JSON-serialisable: {exc}") from exc
        copied: dict[str, Any] = json.loads(text)
        return copied

    @field_validator(
        "timeout",
        "connect_timeout",
        "attempt_timeout",
        "breaker_cooldown",
        "breaker_backoff",
        "breaker_max_cooldown",
        "temperature",
        "rpm",
        "queue_timeout",
        "client_max_seconds",
    )
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be finite")
        return value

    def __hash__(self) -> int:
        # The generated frozen-model hash fails on the ``extra`` dict; hash a
        # canonical form instead (the key is not part of it; equality still
        # compares it).
        return hash(
            (
                self.model,
                self.api_base,
                self.temperature,
                self.max_tokens,
                self.max_tokens_param,
                self.timeout,
                self.connect_timeout,
                self.attempt_timeout,
                self.max_response_bytes,
                self.cache_scope,
                self.rpm,
                self.breaker_mode,
                self.breaker_threshold,
                self.breaker_failure_rate,
                self.breaker_window,
                self.breaker_min_calls,
                self.breaker_cooldown,
                self.breaker_backoff,
                self.breaker_max_cooldown,
                self.breaker_jitter,
                self.breaker_success_threshold,
                self.pool_size,
                self.max_in_flight,
                self.max_queue,
                self.queue_timeout,
                self.restart_backoff,
                self.client_max_restarts,
                self.client_max_seconds,
                self.down_backoff,
                json.dumps(self.extra, sort_keys=True),
            )
        )

    @property
    def wire_model(self) -> str:
        """The model name sent to the server (provider prefix stripped)."""
        _, sep, rest = self.model.partition("/")
        return rest if sep and rest else self.model

    @property
    def provider(self) -> str:
        """The wire format: ``"openai"``, ``"anthropic"`` or ``"gemini"`` (:func:`provider_of`)."""
        return provider_of(self.model)

    @property
    def base_url(self) -> str:
        """``api_base``, or the provider's public endpoint when it is ``None``."""
        return self.api_base or PROVIDER_API_BASES[self.provider]

    @property
    def chat_url(self) -> str:
        """The URL a (non-streaming) call goes to: ``/chat/completions`` (OpenAI),
        ``/v1/messages`` (Anthropic), ``/models/<model>:generateContent`` (Gemini)."""
        base = self.base_url.rstrip("/")
        if self.provider == "anthropic":
            return base + "/v1/messages"
        if self.provider == "gemini":
            return (
                f"{base}/models/{urllib.parse.quote(self.wire_model, safe='-._~')}:generateContent"
            )
        return base + "/chat/completions"

    @property
    def display_base(self) -> str:
        """The base URL as errors show it: no user info, query or fragment."""
        return _display_url(self.base_url)

    @property
    def label(self) -> str:
        """How errors name this LM: ``"<model> at <base URL>"`` (never the key)."""
        return f"{self.model} at {self.display_base}"

    @property
    def cache_endpoint(self) -> str:
        """The endpoint's identity in cache keys: ``cache_scope`` if set, else the
        base URL as :attr:`display_base` shows it (never the key)."""
        return self.cache_scope if self.cache_scope is not None else self.display_base

    @property
    def response_format_support(self) -> Literal["json_schema", "json_object"] | None:
        """What the JSON adapter's calls send as ``response_format``: a JSON schema,
        JSON mode, or nothing (``None``); see ``response_format``."""
        if self.response_format != "auto":
            return None if self.response_format == "none" else self.response_format
        if self.provider == "gemini":
            return "json_object"
        if self.provider == "anthropic":
            return None
        name = self.wire_model
        if name in OPENAI_JSON_SCHEMA:
            return "json_schema"
        return "json_object" if name in OPENAI_JSON_OBJECT else None

    @property
    def tokens_param(self) -> str:
        """The body parameter that carries ``max_tokens``: ``max_tokens_param`` if set,
        else by model family (:func:`uses_max_completion_tokens`)."""
        if self.max_tokens_param is not None:
            return self.max_tokens_param
        return "max_completion_tokens" if uses_max_completion_tokens(self.model) else "max_tokens"

    def request_params(self, **overrides: Any) -> dict[str, Any]:
        """The parameters that determine the completion, for the cache key.

        ``{"model", "temperature", <tokens_param>: max_tokens, **extra, **overrides}``;
        an override of ``None`` removes the parameter. With ``max_completion_tokens``
        as :attr:`tokens_param`, a ``max_tokens`` from ``extra`` or an override is
        sent under that name. Never contains the key or the base URL. Returns a
        fresh dict. Raises ``ValueError`` for a reserved override name (``api_key``,
        ``api_base``, ``base_url``, ``authorization``, ``model``, ``messages``).
        """
        if overrides:
            _check_params(overrides, f"{self.label}: request override")
        tokens = self.tokens_param
        params: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            tokens: self.max_tokens,
        }
        if self.extra:
            params.update(json.loads(json.dumps(self.extra)))  # a deep copy
        params.update(overrides)
        if tokens == "max_completion_tokens" and "max_tokens" in params:
            params[tokens] = params.pop("max_tokens")
        return {name: value for name, value in params.items() if value is not None}
