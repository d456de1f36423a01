"""Messages the runtime delivers to actors, and exit reasons.

An exit reason is one of the strings ``"normal"``, ``"shutdown"``, ``"killed"``,
``"noproc"`` (and ``"timeout"`` for tasks), or the exception instance that crashed
the actor. ``"normal"`` and ``"shutdown"`` are *normal* reasons: a ``transient``
child that exits with one of them is not restarted, and a ``normal`` exit does not
propagate over links. Everything else is a crash.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = [
    "Down",
    "Exit",
    "ExitSignal",
    "MonitorRef",
    "Ok",
    "Reason",
    "Reject",
    "TaskResult",
    "is_normal",
]

Reason = str | BaseException
"""An exit reason: a reason string or the exception that crashed the actor."""

NORMAL_REASONS = frozenset({"normal", "shutdown"})

_monitor_ids = itertools.count(1)

T = TypeVar("T")


def is_normal(reason: object) -> bool:
    """Return ``True`` for ``"normal"`` and ``"shutdown"`` (and ``("shutdown", term)``).

    Mirrors OTP: these reasons are not crashes, so transient children are not
    restarted and no crash report is written.
    """
    if isinstance(reason, tuple):  # ("shutdown", term), as in OTP
        return len(reason) == 2 and reason[0] == "shutdown"
    return isinstance(reason, str) and reason in NORMAL_REASONS


@dataclass(frozen=True, slots=True)
class MonitorRef:
    """A unique reference returned by :meth:`Actor.monitor`; names one monitor."""

    id: int = field(default_factory=lambda: next(_monitor_ids))

    def __repr__(self) -> str:
        return f"#Ref<{self.id}>"


@dataclass(frozen=True, slots=True)
class Down:
    """A monitored actor ended.

    Delivered as an ordinary message (to ``on_receive``) of the actor that called
    :meth:`Actor.monitor`. ``ref`` is the monitor reference, ``actor`` the ref of the
    actor that ended, ``reason`` its exit reason (``"noproc"`` when it was already
    dead when the monitor was set up).
    """

    ref: MonitorRef
    actor: ActorRef[Any] | None
    reason: Reason


@dataclass(frozen=True, slots=True)
class ExitSignal:
    """A linked actor ended; delivered as a message only to actors with ``trap_exits = True``.

    Actors that do not trap exits are killed with the same reason instead
    (unless the reason is ``"normal"``), as in OTP.
    """

    actor: ActorRef[Any]
    reason: Reason


@dataclass(frozen=True, slots=True)
class TaskResult(Generic[T]):
    """A task started with :func:`async_nolink` finished; sent to its ``owner``."""

    ref: MonitorRef
    value: T


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    """A task's successful result, as yielded by :func:`async_stream` and ``Task.yield_``."""

    value: T


@dataclass(frozen=True, slots=True)
class Exit:
    """A task's failure, as yielded by :func:`async_stream` and ``Task.yield_``.

    ``reason`` is the exception the task raised, ``"timeout"`` or ``"killed"``.
    """

    reason: Reason


@dataclass(frozen=True, slots=True)
class Reject:
    """Return this from a handler to answer the asker with ``error``, without crashing.

    OTP's ``{reply, {error, Reason}, State}``: an exception raised by a handler is a
    crash (the actor ends and its supervisor restarts it), which is right for a bug
    but wrong for a bad request. ``return sv.Reject(ValueError("no such key"))``
    raises ``error`` in the asker's thread while the actor carries on. For a
    ``tell`` there is nobody to answer: the rejection is logged as a warning.
    """

    error: BaseException
