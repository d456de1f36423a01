"""LM configuration: an immutable description of one OpenAI-compatible chat endpoint.

:class:`LM` holds the model name, endpoint, key and request parameters; it is pure
data, hashable, and safe to share between threads. The API key is a
:class:`pydantic.SecretStr`: it never appears in ``repr``, ``str`` or ``model_dump``.
Invalid settings raise :class:`pydantic.ValidationError` (a ``ValueError``) when the
LM is built, before any I/O.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["DEFAULT_API_BASE", "LM", "RESERVED_PARAM_NAMES"]

DEFAULT_API_BASE = "https://api.openai.com/v1"

#: Names that may never be request parameters (they are credentials or routing, and
#: must stay out of request bodies and cache keys), nor override the plan's own keys.
RESERVED_PARAM_NAMES = frozenset(
    {"api_key", "api_base", "base_url", "authorization", "model", "messages"}
)


def _default_api_base() -> str:
    return os.environ.get("OPENAI_API_BASE") or DEFAULT_API_BASE


def _default_api_key() -> SecretStr | None:
    key = os.environ.get("OPENAI_API_KEY")
    return SecretStr(key) if key else None


def _normalise_name(name: str) -> str:
    return name.lower().replace("-", "_")


def _check_params(params: Mapping[str, Any], where: str) -> None:
    for name in params:
        if not isinstance(name, str):
            raise TypeError(f"{where}: parameter names must be str, got {name!r}")
        if _normalise_name(name) in RESERVED_PARAM_NAMES:
            raise ValueError(f"{where}: {name!r} cannot be a request parameter")


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
    Authorization header, for local servers). ``rpm``, ``breaker_threshold``,
    ``breaker_cooldown`` and ``pool_size`` configure the token bucket, circuit
    breaker and connection pool the LM actor builds. ``extra`` holds additional
    JSON-serialisable request body parameters (``top_p``, ``seed``, ``stop``...);
    credential/routing names and ``model``/``messages`` are rejected there.

    Threading: frozen; ``extra`` is a private deep copy of what was passed (do not
    mutate it in place); share freely.
    Raises :class:`pydantic.ValidationError` on invalid values.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    api_base: str | None = Field(default_factory=_default_api_base)
    api_key: SecretStr | None = Field(default_factory=_default_api_key)
    temperature: float = Field(default=0.0, ge=0.0)
    max_tokens: int = Field(default=512, ge=1)
    timeout: float = Field(default=30.0, gt=0.0)
    rpm: float | None = Field(default=None, gt=0.0)
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown: float = Field(default=10.0, ge=0.0)
    pool_size: int = Field(default=64, ge=1)
    extra: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, model: str | None = None, /, **data: Any) -> None:
        if model is not None:
            if "model" in data:
                raise TypeError("LM() got the model both positionally and as model=")
            data["model"] = model
        super().__init__(**data)

    @field_validator("extra")
    @classmethod
    def _validate_extra(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_params(value, "LM.extra")
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"LM.extra must be JSON-serialisable: {exc}") from exc
        copied: dict[str, Any] = json.loads(text)
        return copied

    @field_validator("timeout", "breaker_cooldown", "temperature", "rpm")
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
                self.timeout,
                self.rpm,
                self.breaker_threshold,
                self.breaker_cooldown,
                self.pool_size,
                json.dumps(self.extra, sort_keys=True),
            )
        )

    @property
    def wire_model(self) -> str:
        """The model name sent to the server (provider prefix stripped)."""
        _, sep, rest = self.model.partition("/")
        return rest if sep and rest else self.model

    @property
    def chat_url(self) -> str:
        """The ``/chat/completions`` URL of this endpoint."""
        return (self.api_base or DEFAULT_API_BASE).rstrip("/") + "/chat/completions"

    def request_params(self, **overrides: Any) -> dict[str, Any]:
        """The parameters that determine the completion, for the cache key.

        ``{"model", "temperature", "max_tokens", **extra, **overrides}``; an override
        of ``None`` removes the parameter. Never contains the key or the base URL.
        Returns a fresh dict. Raises ``ValueError`` for a reserved override name
        (``api_key``, ``api_base``, ``base_url``, ``authorization``, ``model``,
        ``messages``).
        """
        _check_params(overrides, "request override")
        params: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        params.update(json.loads(json.dumps(self.extra)))
        params.update(overrides)
        return {name: value for name, value in params.items() if value is not None}
