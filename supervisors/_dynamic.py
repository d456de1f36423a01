"""Dynamic supervisors: children started at run time, one_for_one, unordered."""

from __future__ import annotations

import itertools
from typing import Any, Self

from pykka import ActorRef

from supervisors._errors import StartError, SupervisorError
from supervisors._spec import ChildSpec
from supervisors._supervisor import Observer, _Child, _named, _SupervisorBase

__all__ = ["DynamicSupervisor"]


class DynamicSupervisor(_SupervisorBase):
    """A supervisor that starts with no children and adds them with :func:`start_child`.

    As Elixir's ``DynamicSupervisor``: strategy is always one_for_one, child ids are
    ignored (children are shown as ``<1>``, ``<2>``... in start order and addressed
    by ref), ``max_children`` (default ``None``: unlimited) bounds how many run at
    once, and on shutdown all children are asked to stop at once and each is given
    its own shutdown time. Children it holds are lost if it restarts: it always
    comes back empty.

    Example::

        pool = sv.DynamicSupervisor.start(max_children=100, name="pool")
        ref = sv.start_child("pool", sv.ChildSpec(id="w", start=Worker.start, restart="temporary"))
    """

    kind = "dynamic_supervisor"
    forget_stopped = True
    progress_level = 10

    def __init__(
        self,
        *,
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        observer: Observer | None = None,
    ) -> None:
        super().__init__(max_restarts=max_restarts, max_seconds=max_seconds, observer=observer)
        if max_children is not None and (
            isinstance(max_children, bool) or not isinstance(max_children, int) or max_children < 0
        ):
            raise ValueError(
                f"max_children must be a non-negative int or None, got {max_children!r}"
            )
        self.max_children = max_children
        self._seq = itertools.count(1)

    @classmethod
    def start(
        cls,
        *,
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        observer: Observer | None = None,
    ) -> ActorRef[Self]:
        """Start an empty dynamic supervisor and return its ref.

        ``observer``: as ``Supervisor.start``'s (told child_started, child_terminated, ...).

        Raises:
            ValueError: bad ``max_children`` or intensity (in the caller's thread).
            AlreadyStarted: ``name`` is taken.
        """
        with _named(name):
            return super().start(
                max_children=max_children,
                max_restarts=max_restarts,
                max_seconds=max_seconds,
                observer=observer,
            )

    def _shutdown_all(self) -> None:
        with self._children_lock:
            children = list(self._children)
        self._shutdown_children(children, parallel=True)
        with self._children_lock:
            self._children.clear()

    def _new_child(self, spec: ChildSpec) -> _Child:
        """Reserve a slot (and a sequence number) for a new child. Any thread."""
        with self._children_lock:
            if self._sv_terminated:
                raise StartError(f"child of {self.label()}", "noproc")
            if self.max_children is not None:
                running = sum(
                    1 for c in self._children if c.ref is not None or c.state != "stopped"
                )
                if running >= self.max_children:
                    raise SupervisorError(
                        f"{self.label()}: max_children ({self.max_children}) reached"
                    )
            child = _Child(next(self._seq), spec, state="restarting")
            self._children.append(child)
        return child

    def _call_start_child(self, spec: ChildSpec) -> ActorRef[Any]:
        child = self._new_child(spec)
        try:
            return self._start_child_record(child)
        except StartError:
            self._remove(child)
            raise

    def _call_terminate_child(self, target: Any) -> None:
        child = self._by_urn.get(target.actor_urn) if isinstance(target, ActorRef) else None
        if child is None:
            raise SupervisorError(f"{self.label()}: {target!r} is not a running child")
        self._shutdown_children([child])
        self._remove(child)

    def _call_restart_child(self, _key: Any) -> ActorRef[Any]:
        raise SupervisorError("a DynamicSupervisor cannot restart_child: start a new child instead")

    def _call_delete_child(self, _key: Any) -> None:
        raise SupervisorError("a DynamicSupervisor has no child specs to delete")

    def describe(self) -> str | None:
        return f"{sum(1 for c in self._children if c.ref is not None)} children"
