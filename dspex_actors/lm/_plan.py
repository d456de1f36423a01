"""The data of one LM call: the request plan and the completion (no I/O).

Threading: both are immutable; share freely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DEADLINE_MARGIN", "SECRET_HEADERS", "Completion", "RequestPlan"]

DEADLINE_MARGIN = 0.05
"""Seconds before the request deadline at which :meth:`RequestPlan.within` ends an
attempt, so the worker's own error (naming what happened) reaches the program
before the program's wait for it runs out."""


SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key"})
"""The headers that carry an API key (OpenAI's bearer, Anthropic's, Gemini's)."""


class _RedactedHeaders(dict[str, str]):
    """A header dict whose repr/str hide the values of :data:`SECRET_HEADERS`."""

    def __repr__(self) -> str:
        shown = {
            name: ("***" if name.lower() in SECRET_HEADERS else value)
            for name, value in self.items()
        }
        return repr(shown)

    __str__ = __repr__


@dataclass(frozen=True)
class RequestPlan:
    """Everything needed for one POST to ``/chat/completions`` (pure data).

    ``headers`` includes the key (``Authorization: Bearer <key>``, Anthropic's
    ``x-api-key``, Gemini's ``x-goog-api-key``) when the LM has one; the plan's
    ``repr``/``str`` (and the headers' own repr) show it as ``***``. ``provider``
    says which wire format the body is in and how to read the answer; ``stream``
    whether the answer comes as server-sent events. ``model``
    is the wire model name, ``label`` how errors name the LM (``"<model> at <base
    URL>"``, never the key).

    Time limits: ``timeout`` is the read timeout (longest silence between bytes),
    ``connect_timeout`` the connect timeout (``None``: ``timeout``),
    ``attempt_timeout`` the total time of the attempt (``None``: no total limit);
    ``attempt_limit`` says what set it (``"attempt_timeout"`` or ``"deadline"``, see
    :meth:`within`). ``max_response_bytes`` caps the body (``None``: no cap). Use
    :func:`dataclasses.replace` to derive a plan with other limits.

    Threading: immutable by convention (do not mutate ``headers``/``json``); share.
    """

    url: str
    headers: Mapping[str, str] = field(repr=False)
    json: dict[str, Any]
    timeout: float
    model: str
    connect_timeout: float | None = None
    attempt_timeout: float | None = None
    attempt_limit: Literal["attempt_timeout", "deadline"] = "attempt_timeout"
    max_response_bytes: int | None = None
    label: str = ""
    provider: str = "openai"
    stream: bool = False

    def __repr__(self) -> str:
        return (
            f"RequestPlan(url={self.url!r}, headers={_RedactedHeaders(self.headers)!r}, "
            f"json={self.json!r}, timeout={self.timeout!r}, model={self.model!r}, "
            f"connect_timeout={self.connect_timeout!r}, "
            f"attempt_timeout={self.attempt_timeout!r}, attempt_limit={self.attempt_limit!r}, "
            f"max_response_bytes={self.max_response_bytes!r}, label={self.label!r}, "
            f"provider={self.provider!r}, stream={self.stream!r})"
        )

    __str__ = __repr__

    def within(self, seconds_left: float) -> RequestPlan:
        """This plan with its attempt ending by the request deadline, ``seconds_left``
        from now (less :data:`DEADLINE_MARGIN`), if that comes before its own
        ``attempt_timeout``. The worker then closes the connection at the deadline
        and raises ``DeadlineExceeded``. Pure; returns ``self`` if nothing changes."""
        bound = max(seconds_left - DEADLINE_MARGIN, 0.001)
        if self.attempt_timeout is not None and self.attempt_timeout <= bound:
            return self
        # A field-for-field copy: dataclasses.replace re-runs __init__ over fields()
        # on every request (no __post_init__ or validation to skip here).
        plan = object.__new__(RequestPlan)
        plan.__dict__.update(self.__dict__)
        object.__setattr__(plan, "attempt_timeout", bound)
        object.__setattr__(plan, "attempt_limit", "deadline")
        return plan


@dataclass(frozen=True)
class Completion:
    """The result of one successful chat completion.

    ``text`` is the message content of the choice with index 0 (``""`` when the
    server sent ``null`` content; list-of-parts content joined); ``usage`` has
    ``prompt_tokens``, ``completion_tokens`` and ``total_tokens`` (0 when the server
    did not report them); ``model`` is the model the server says it used (the
    plan's model if it did not say); ``latency_s`` is the wall time of the HTTP
    exchange, body included; ``finish_reason`` is the server's raw value (``"stop"``...
    or ``None``; never ``"length"``/``"content_filter"``, which are errors).

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
