"""Typed errors raised by LM calls, the circuit breaker, adapters and deadlines.

Every error an LM call can end with is an :class:`LMError`. The class says whether
the program's retry loop may try again (:attr:`LMError.retryable`); the instance
carries the HTTP status when there was one and how many attempts were made before
the error was given to the caller (:attr:`LMError.attempts`, updated by the retry
loop).

Mapping from what happened on the wire to the class (see ``dspex_actors.lm.execute_plan``):

==================================================  ===========================  =========
what happened                                       class                        retryable
==================================================  ===========================  =========
HTTP 429, or a 200 whose ``error`` is a rate limit  :class:`LMRateLimited`       yes
HTTP 429/200 with ``insufficient_quota``            :class:`LMQuotaExceeded`     no
HTTP 5xx, or a 200 whose ``error`` is server-side   :class:`LMServerError`       yes
HTTP 2xx whose body is not a chat completion        :class:`LMServerError`       yes
(not JSON, no ``choices``...)
body larger than ``LM.max_response_bytes``          :class:`LMResponseTooLarge`  no
``finish_reason == "length"`` (cut answer)          :class:`LMTruncated`         no
refusal, or ``finish_reason == "content_filter"``   :class:`LMRefused`           no
HTTP 408, connect/read timeout, attempt time limit  :class:`LMTimeout`           yes
connection refused/reset/dropped mid-body           :class:`LMConnectionError`   yes
other HTTP 4xx, invalid URL, redirect loop          :class:`LMBadRequest`        no
circuit breaker open                                :class:`CircuitOpen`         no
completion text does not parse                      :class:`AdapterParseError`   no
overall deadline passed                             :class:`DeadlineExceeded`    no
the LM's bulkhead queue is full                     :class:`LMQueueFull`         no
waited longer than ``queue_timeout`` for a slot     :class:`LMQueueTimeout`      no
the LM's client is down (crash storm, backoff)      :class:`LMUnavailable`       no
a stream broke after its first chunk                :class:`LMStreamInterrupted` no
==================================================  ===========================  =========

A complete HTTP response that is not a valid completion is an :class:`LMServerError`
(the server answered, wrongly); :class:`LMConnectionError` is kept for failures where
no complete response arrived. Both are retryable and both count for the breaker.

Texts carried by errors (messages, ``AdapterParseError.text``,
``LMTruncated.partial_text``) are bounded excerpts: :data:`MAX_EXCERPT_CHARS` characters
at most, the full length kept beside them.

All errors are plain data: they can be copied and pickled (pykka passes them between
threads as objects; pickling is only used by tools such as multiprocessing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

__all__ = [
    "MAX_EXCERPT_CHARS",
    "AdapterParseError",
    "CircuitOpen",
    "DeadlineExceeded",
    "LMBadRequest",
    "LMConnectionError",
    "LMError",
    "LMQueueFull",
    "LMQueueTimeout",
    "LMQuotaExceeded",
    "LMRateLimited",
    "LMRefused",
    "LMResponseTooLarge",
    "LMServerError",
    "LMStreamInterrupted",
    "LMTimeout",
    "LMTruncated",
    "LMUnavailable",
    "SystemDown",
    "UnknownMessage",
    "excerpt",
]

MAX_EXCERPT_CHARS = 2000
"""The longest text an error keeps (a head and a tail of the original, see :func:`excerpt`)."""

_TAIL_CHARS = 500


def excerpt(text: str, limit: int = MAX_EXCERPT_CHARS) -> str:
    """``text`` if it has at most ``limit`` characters, else its head and its last
    500 characters (or a quarter of ``limit``) around a ``[... N characters omitted ...]``
    marker, so the result stays near ``limit``. Pure; never raises for a str."""
    if len(text) <= limit:
        return text
    tail = min(_TAIL_CHARS, limit // 4)
    omitted = len(text) - (limit - tail)
    head = text[: limit - tail]
    return f"{head}[... {omitted} characters omitted ...]{text[len(text) - tail :] if tail else ''}"


def _rebuild(cls: type[LMError], args: tuple[Any, ...], state: dict[str, Any]) -> LMError:
    """Recreate an :class:`LMError` without calling its keyword-only ``__init__``."""
    obj = cls.__new__(cls, *args)
    Exception.__init__(obj, *args)
    obj.__dict__.update(state)
    return obj


class LMError(Exception):
    """Base class of every error an LM call can raise.

    Attributes:
        message: the human-readable cause.
        status: the HTTP status of the response that caused the error, or ``None``
            when there was no response (timeout, connection error, breaker open...).
        attempts: how many attempts had been made when the error reached the caller;
            1 when raised, set by the retry loop before it gives up. Must be >= 1.
        retryable: class attribute; whether the program's retry loop may retry.
    """

    retryable: ClassVar[bool] = False
    default_status: ClassVar[int | None] = None

    def __init__(self, message: str = "", *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status if status is not None else self.default_status
        self.attempts = attempts

    @property
    def attempts(self) -> int:
        """Number of attempts made when the error was raised to the caller (>= 1)."""
        return self._attempts

    @attempts.setter
    def attempts(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"attempts must be an int >= 1, got {value!r}")
        self._attempts = value

    def _details(self) -> list[str]:
        details: list[str] = []
        if self.status is not None:
            details.append(f"status={self.status}")
        if self._attempts != 1:
            details.append(f"attempts={self._attempts}")
        return details

    def __str__(self) -> str:
        message = self.message or type(self).__name__
        details = self._details()
        return f"{message} [{', '.join(details)}]" if details else message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class _HasRetryAfter(LMError):
    """Shared ``retry_after`` handling (seconds the server or breaker asks us to wait)."""

    def __init__(
        self,
        message: str = "",
        *,
        retry_after: float | None = None,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, status=status, attempts=attempts)
        self.retry_after = retry_after

    def _details(self) -> list[str]:
        details = super()._details()
        if self.retry_after is not None:
            details.append(f"retry_after={self.retry_after:.3g}s")
        return details


class LMRateLimited(_HasRetryAfter):
    """HTTP 429. ``retry_after`` is the server's Retry-After in seconds, if it sent one.

    Retryable; the retry policy waits at least ``retry_after``. Does not count as a
    failure for the circuit breaker (the server is alive, it is throttling us).
    """

    retryable = True
    default_status = 429


class LMQuotaExceeded(LMRateLimited):
    """The account is out of quota or credit (``insufficient_quota``, in a 429 or in
    the ``error`` object of a 200).

    An :class:`LMRateLimited` (code that catches 429s still catches it, as the
    ``openai`` SDK's ``RateLimitError`` does), but **not retryable**: waiting does not
    refill a quota. Does not count for the circuit breaker.
    """

    retryable = False


class LMServerError(LMError):
    """HTTP 5xx, a 2xx response whose body is not a valid chat completion, or a 200
    whose ``error`` object is a server error (or of an unknown type).

    Retryable; counts as a failure for the circuit breaker.
    """

    retryable = True


class LMResponseTooLarge(LMServerError):
    """The response body passed ``LM.max_response_bytes`` (its ``Content-Length``
    said so, or the bytes read did); reading stopped there and the connection was
    closed. ``limit`` is the cap in bytes.

    Not retryable (the same request would most likely get the same body); counts
    as a failure for the circuit breaker, like any broken response.
    """

    retryable = False

    def __init__(
        self, message: str = "", *, limit: int, status: int | None = None, attempts: int = 1
    ) -> None:
        super().__init__(message, status=status, attempts=attempts)
        self.limit = limit


class LMTruncated(LMError):
    """The completion was cut by the token limit (``finish_reason == "length"``).

    ``partial_text`` is an excerpt (at most :data:`MAX_EXCERPT_CHARS` characters) of
    what the model wrote before the cut, ``partial_length`` its full length in
    characters, ``finish_reason`` the server's value. The cut answer is never
    returned nor cached. Not retryable by default (the same request gives the same
    cut); ``RetryPolicy(retry_also=(LMTruncated,))`` retries it. Does not count for
    the circuit breaker. Raise ``max_tokens`` to avoid it.
    """

    retryable = False

    def __init__(
        self,
        message: str = "",
        *,
        partial_text: str = "",
        finish_reason: str | None = "length",
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, status=status, attempts=attempts)
        self.partial_text = excerpt(partial_text)
        self.partial_length = len(partial_text)
        self.finish_reason = finish_reason


class LMRefused(LMError):
    """The model refused (``message.refusal`` set, usually with ``content: null``) or
    the provider's content filter stopped it (``finish_reason == "content_filter"``).

    ``refusal`` is the refusal text (an excerpt; ``""`` when the server sent none),
    ``finish_reason`` the server's value. Never retried; does not count for the
    circuit breaker.
    """

    retryable = False

    def __init__(
        self,
        message: str = "",
        *,
        refusal: str = "",
        finish_reason: str | None = None,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, status=status, attempts=attempts)
        self.refusal = excerpt(refusal)
        self.finish_reason = finish_reason


class LMTimeout(LMError):
    """Connect or read timeout, or the attempt's total time limit
    (``LM.attempt_timeout``) passed (no ``status``), or HTTP 408 Request Timeout.
    The message says which one fired and after how many seconds.

    Retryable; counts as a failure for the circuit breaker.
    """

    retryable = True


class LMConnectionError(LMError):
    """No complete HTTP response: connection refused, reset, or dropped mid-body.

    Retryable; counts as a failure for the circuit breaker.
    """

    retryable = True


class LMBadRequest(LMError):
    """HTTP 4xx other than 408/429 (bad parameters, auth, unknown model), or an
    unusable URL. The message includes the server's error message. Never retried,
    does not count for the circuit breaker.
    """

    retryable = False


class CircuitOpen(_HasRetryAfter):
    """The circuit breaker refused the request without any I/O.

    ``retry_after`` is how long until the breaker will let a trial request through.
    Not retried by the program's retry loop (failing fast is the point).
    """

    retryable = False


class AdapterParseError(LMError):
    """The completion text could not be parsed into the signature's output fields.

    ``text`` is the raw completion text, kept for debugging: the whole text when it
    has at most :data:`MAX_EXCERPT_CHARS` characters, else a head-and-tail excerpt;
    ``text_length`` is the full length. Not retried by the LM retry loop (adapters
    have their own fallback).
    """

    retryable = False

    def __init__(self, message: str, *, text: str, attempts: int = 1) -> None:
        super().__init__(message, attempts=attempts)
        self.text = excerpt(text)
        self.text_length = len(text)

    def _details(self) -> list[str]:
        details = super()._details()
        snippet = self.text if len(self.text) <= 120 else self.text[:117] + "..."
        details.append(f"text={snippet!r}")
        return details


class DeadlineExceeded(LMError):
    """The overall per-request deadline passed before a successful attempt.

    Raised by the program (in a backoff, a rate-limit wait, or waiting on a worker)
    or by the I/O worker itself when the deadline cut its attempt short (it then
    closed the connection). Not retryable (the deadline is the budget for all retries).
    """

    retryable = False


class LMQueueFull(LMError):
    """The LM's bulkhead had ``max_in_flight`` requests running and ``max_queue``
    waiting: this one was refused at once, without any I/O (the LM is saturated;
    failing fast keeps callers of other LMs unaffected). ``lm`` names the LM.

    Not retried (waiting in the queue is what ``queue_timeout`` is for); does not
    count for the circuit breaker.
    """

    retryable = False

    def __init__(self, message: str = "", *, lm: str = "", attempts: int = 1) -> None:
        super().__init__(message, attempts=attempts)
        self.lm = lm


class LMQueueTimeout(LMQueueFull):
    """Waited ``queue_timeout`` seconds in the LM's bulkhead queue without a free slot
    (an :class:`LMQueueFull`, so one ``except`` catches both). Not retried."""


class LMUnavailable(LMError):
    """The LM's client is down: it crashed too often and its own supervisor gave up,
    or it is waiting out its restart backoff. Calls fail fast, without I/O, until it
    is back. ``lm`` names the LM. Not retried; does not count for the breaker."""

    retryable = False

    def __init__(self, message: str = "", *, lm: str = "", attempts: int = 1) -> None:
        super().__init__(message, attempts=attempts)
        self.lm = lm


class LMStreamInterrupted(LMError):
    """A streamed response broke after its first chunk (connection dropped, a
    malformed or error event mid-stream). ``partial_text`` is an excerpt of what was
    received, ``partial_length`` its full length, ``chunks`` how many chunks came.
    The usage of such a stream is unknown (not zero). Never cached, never retried
    (the caller has seen part of the answer already); counts for the breaker.
    """

    retryable = False

    def __init__(
        self,
        message: str = "",
        *,
        partial_text: str = "",
        chunks: int = 0,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, status=status, attempts=attempts)
        self.partial_text = excerpt(partial_text)
        self.partial_length = len(partial_text)
        self.chunks = chunks


class UnknownMessage(TypeError):
    """A runtime actor was sent a message it does not handle.

    Raised in the asker's thread (the actor answers with it and carries on; a told
    unknown message is logged). ``actor`` names the actor, ``message`` is the message's
    type name, ``accepted`` the message types it handles.
    """

    def __init__(self, actor: str, message: object, accepted: Sequence[type]) -> None:
        self.actor = actor
        self.message = type(message).__name__
        self.accepted = tuple(t.__name__ for t in accepted)
        super().__init__(
            f"{actor} does not handle {self.message}; it accepts: {', '.join(self.accepted)} "
            "(see dspex_actors.messages)"
        )


class SystemDown(RuntimeError):
    """The actor system's root supervisor gave up (or the system is restarting).

    ``system`` is its name and ``reason`` what the root said when it gave up (which
    child crashed too often, and with what). Calls fail fast with this until
    ``system.restart()`` (or ``dx.start(on_down="restart")``) brings the tree back.
    """

    def __init__(self, system: str, reason: str) -> None:
        self.system = system
        self.reason = reason
        super().__init__(f"actor system {system!r} is down: {reason}")
