"""Exceptions raised by the supervisors package."""

from __future__ import annotations

from typing import Any

from pykka import ActorDeadError, Timeout

__all__ = [
    "ActorDeadError",
    "AlreadyStarted",
    "NoProc",
    "StartError",
    "SupervisorError",
    "TaskFailed",
    "Timeout",
]


class NoProc(ActorDeadError):
    """No actor is registered under that name, or the actor is gone.

    A subclass of :class:`pykka.ActorDeadError`, so code that already handles dead
    actors handles unbound names too.
    """

    def __init__(self, target: Any) -> None:
        super().__init__(f"noproc: no live actor for {target!r}")
        self.target = target


class StartError(RuntimeError):
    """An actor failed to start: its ``on_start`` raised, it timed out, or its name was taken.

    ``reason`` is the exception from ``on_start`` (also chained as ``__cause__``),
    or a string such as ``"timeout"`` or ``"already_started"``.
    """

    def __init__(self, what: str, reason: Any) -> None:
        super().__init__(f"{what} failed to start: {reason!r}")
        self.what = what
        self.reason = reason


class AlreadyStarted(StartError):
    """A name is already bound to a live actor (OTP's ``{:already_started, pid}``)."""

    def __init__(self, name: str, holder: Any) -> None:
        super().__init__(f"actor named {name!r}", "already_started")
        self.name = name
        self.holder = holder


class SupervisorError(RuntimeError):
    """A supervisor refused a request: unknown child id, child still running, too many children.

    Raised in the caller's thread; the supervisor itself is unaffected.
    """


class TaskFailed(RuntimeError):
    """A task awaited with ``Task.await_`` ended without a result.

    ``reason`` is the exit reason; when the task raised, that exception is also the
    ``__cause__``.
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(f"task exited: {reason!r}")
        self.reason = reason
