"""Typed errors raised by LM calls, the circuit breaker, adapters and deadlines.

Every error an LM call can end with is an :class:`LMError`. The class says whether
the program's retry loop may try again (:attr:`LMError.retryable`); the instance
carries the HTTP status when there was one and how many attempts were made before
the error was given to the caller (:attr:`LMError.attempts`, updated by the retry
loop).

Mapping from what happened on the wire to the class (see ``_lm.execute_plan``):

================================================  ========================  =========
what happened                                     class                     retryable
================================================  ========================  =========
HTTP 429                                          :class:`LMRateLimited`    yes
HTTP 5xx                                          :class:`LMServerError`    yes
HTTP 2xx whose body is not a chat completion      :class:`LMServerError`    yes
(not JSON, no ``choices``...)
HTTP 408, connect/read timeout                    :class:`LMTimeout`        yes
connection refused/reset/dropped mid-body         :class:`LMConnectionError` yes
other HTTP 4xx, invalid URL, redirect loop       :class:`LMBadRequest`     no
circuit breaker open                              :class:`CircuitOpen`      no
completion text does not parse                    :class:`AdapterParseError` no
overall deadline passed                           :class:`DeadlineExceeded` no
================================================  ========================  =========

A complete HTTP response that is not a valid completion is an :class:`LMServerError`
(the server answered, wrongly); :class:`LMConnectionError` is kept for failures where
no complete response arrived. Both are retryable and both count for the breaker.

All errors are plain data: they can be copied and pickled (pykka passes them between
threads as objects; pickling is only used by tools such as multiprocessing).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AdapterParseError",
    "CircuitOpen",
    "DeadlineExceeded",
    "LMBadRequest",
    "LMConnectionError",
    "LMError",
    "LMRateLimited",
    "LMServerError",
    "LMTimeout",
]


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


class LMServerError(LMError):
    """HTTP 5xx, or a 2xx response whose body is not a valid chat completion.

    Retryable; counts as a failure for the circuit breaker.
    """

    retryable = True


class LMTimeout(LMError):
    """Connect or read timeout (no ``status``), or HTTP 408 Request Timeout.

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

    ``text`` is the raw completion text, kept for debugging and for fallback adapters.
    Not retried by the LM retry loop (adapters have their own fallback).
    """

    retryable = False

    def __init__(self, message: str, *, text: str, attempts: int = 1) -> None:
        super().__init__(message, attempts=attempts)
        self.text = text

    def _details(self) -> list[str]:
        details = super()._details()
        snippet = self.text if len(self.text) <= 120 else self.text[:117] + "..."
        details.append(f"text={snippet!r}")
        return details


class DeadlineExceeded(LMError):
    """The overall per-request deadline passed before a successful attempt.

    Not retryable (the deadline is the budget for all retries).
    """

    retryable = False
