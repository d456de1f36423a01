"""Child specifications and the records supervisors report about their children."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from pykka import ActorRef

from supervisors._backoff import Backoff

__all__ = ["ChildCounts", "ChildInfo", "ChildSpec", "Restart", "Shutdown", "Strategy"]

Restart = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
Shutdown = float | Literal["brutal_kill", "infinity"]
ChildType = Literal["worker", "supervisor"]

RESTARTS: frozenset[str] = frozenset({"permanent", "transient", "temporary"})
STRATEGIES: frozenset[str] = frozenset({"one_for_one", "one_for_all", "rest_for_one"})
TYPES: frozenset[str] = frozenset({"worker", "supervisor"})

DEFAULT_WORKER_SHUTDOWN = 5.0


@dataclass(frozen=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child.

    Fields (defaults as in OTP):

    * ``id`` -- unique within its supervisor (ignored by dynamic supervisors).
    * ``start`` -- a callable returning the started child's ``ActorRef``, usually
      ``SomeActor.start``; called with ``*args, **kwargs``. The child must be a
      :class:`supervisors.Actor`. Its failure is a *start error*.
    * ``restart`` -- ``"permanent"`` (default: always restarted), ``"transient"``
      (restarted only after a crash, not after ``"normal"``/``"shutdown"``),
      ``"temporary"`` (never restarted; its spec is dropped when it ends).
    * ``shutdown`` -- seconds to wait for an orderly stop before killing it
      (default 5.0 for workers), ``"brutal_kill"`` (killed at once), or
      ``"infinity"`` (wait as long as it takes; the default for supervisors, whose
      own children's shutdown times bound the wait).
    * ``type`` -- ``"worker"`` (default) or ``"supervisor"``.
    * ``name`` -- optional registered name, bound before the child's ``on_start``
      runs and re-bound to each replacement after a restart.
    * ``backoff`` -- an optional :class:`Backoff`: each restart waits
      ``min(max_s, min_s * 2**n) * (1 + U * jitter)`` first (``n`` consecutive
      restarts so far, reset after ``reset_after_s`` up), scheduled by a timer
      message to the supervisor, which keeps serving its mailbox meanwhile. While
      the child waits its name is unbound (asks through it raise ``NoProc`` at once).
      Restarts still count against the intensity. ``None`` (default): at once, as OTP.

    Raises ``ValueError``/``TypeError`` at construction for bad values.
    """

    id: Any
    start: Callable[..., ActorRef[Any]]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    restart: Restart = "permanent"
    shutdown: Shutdown | None = None
    type: ChildType = "worker"
    name: str | None = None
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        if not callable(self.start):
            raise TypeError(f"child {self.id!r}: start must be callable, got {self.start!r}")
        if self.restart not in RESTARTS:
            raise ValueError(
                f"child {self.id!r}: unknown restart type {self.restart!r}; "
                f"expected one of {sorted(RESTARTS)}"
            )
        if self.type not in TYPES:
            raise ValueError(
                f"child {self.id!r}: unknown child type {self.type!r}; "
                f"expected one of {sorted(TYPES)}"
            )
        if self.shutdown is None:
            object.__setattr__(
                self,
                "shutdown",
                "infinity" if self.type == "supervisor" else DEFAULT_WORKER_SHUTDOWN,
            )
        shutdown = self.shutdown
        if isinstance(shutdown, str):
            if shutdown not in ("brutal_kill", "infinity"):
                raise ValueError(
                    f"child {self.id!r}: shutdown must be seconds, 'brutal_kill' or 'infinity', "
                    f"got {shutdown!r}"
                )
        elif isinstance(shutdown, bool) or not isinstance(shutdown, int | float):
            raise TypeError(
                f"child {self.id!r}: shutdown must be a number of seconds, got {shutdown!r}"
            )
        elif shutdown < 0 or math.isnan(shutdown):
            raise ValueError(f"child {self.id!r}: shutdown must not be negative, got {shutdown!r}")
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise TypeError(
                f"child {self.id!r}: name must be a non-empty string, got {self.name!r}"
            )
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise TypeError(
                f"child {self.id!r}: backoff must be an sv.Backoff or None, got {self.backoff!r}"
            )
        if not isinstance(self.args, tuple):
            object.__setattr__(self, "args", tuple(self.args))
        try:
            hash(self.id)
        except TypeError:
            raise TypeError(f"child id must be hashable, got {self.id!r}") from None

    def shutdown_timeout(self) -> float | None:
        """Seconds to wait for an orderly stop: 0 for brutal_kill, ``None`` for infinity."""
        if self.shutdown == "brutal_kill":
            return 0.0
        if self.shutdown == "infinity":
            return None
        assert isinstance(self.shutdown, int | float)
        return float(self.shutdown)


class ChildInfo(NamedTuple):
    """One row of :func:`which_children`: ``ref`` is ``None`` while not running."""

    id: Any
    ref: ActorRef[Any] | None
    type: ChildType
    restart: Restart


class ChildCounts(NamedTuple):
    """The result of :func:`count_children` (OTP's specs/active/supervisors/workers)."""

    specs: int
    active: int
    supervisors: int
    workers: int
