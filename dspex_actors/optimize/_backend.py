"""Where ``Evaluate`` and compile jobs run their requests: the ``backend=`` seam.

A :class:`Backend` turns items into a :class:`Stream` of settled requests, the
interface of ``sv.FanOut`` that ``Evaluate`` and the compile job consume
(``get``, ``free``, ``buffered``, ``exhausted``, ``extend``, ``fill``, ``cancel``,
``close``). :data:`LOCAL` is the default: ``system.fan_out``, program actors in
this process. ``dx.RayBackend`` (``dspex_actors.distributed``) is the other one:
the same requests on Ray workers, each with its own local system.

:meth:`Backend.check` is called with the program and the metric before anything
runs, so that a backend that ships them elsewhere refuses what it cannot ship
(``TypeError``/``ValueError``) before any request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import supervisors as sv

if TYPE_CHECKING:
    from dspex_actors.runtime import ActorSystem

__all__ = ["LOCAL", "Backend", "LocalBackend", "Stream"]

T = TypeVar("T")

Call = tuple[Any, Any]
"""A program call: the module and its keyword inputs (a mapping)."""


class Stream(Protocol[T]):
    """What a backend's fan-out offers its consumer (``sv.FanOut`` is one).

    One consumer thread calls ``get``, ``extend`` and ``fill``; ``cancel`` and the
    counters may be used from any thread.
    """

    @property
    def free(self) -> int: ...

    @property
    def buffered(self) -> int: ...

    @property
    def exhausted(self) -> bool: ...

    def get(self, timeout: float | None = 0.0) -> sv.Settled[T] | None: ...

    def extend(self, items: Iterable[T]) -> None: ...

    def fill(self) -> int: ...

    def cancel(self) -> list[sv.Settled[T]]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """Runs program calls somewhere: in this process (:data:`LOCAL`) or on a cluster."""

    def check(self, program: Any, metric: Any) -> None:
        """Raise ``TypeError``/``ValueError`` if ``program`` or ``metric`` cannot run here."""
        ...

    def fan_out(
        self,
        system: ActorSystem,
        items: Iterable[T],
        call: Callable[[T], Call],
        *,
        max_concurrency: int,
        timeout: float,
        ordered: bool = False,
        notify: Callable[[], None] | None = None,
    ) -> Stream[T]:
        """Start ``call(item)`` per item, at most ``max_concurrency`` unfinished in total."""
        ...


class LocalBackend:
    """The default backend: ``system.fan_out``, each call in a program actor of this process."""

    def check(self, program: Any, metric: Any) -> None:
        """Anything runs locally: nothing to refuse."""

    def fan_out(
        self,
        system: ActorSystem,
        items: Iterable[T],
        call: Callable[[T], Call],
        *,
        max_concurrency: int,
        timeout: float,
        ordered: bool = False,
        notify: Callable[[], None] | None = None,
    ) -> Stream[T]:
        return system.fan_out(
            items,
            call,
            max_concurrency=max_concurrency,
            timeout=timeout,
            ordered=ordered,
            notify=notify,
        )

    def __repr__(self) -> str:
        return "LocalBackend()"


LOCAL = LocalBackend()
"""The backend used when none is given."""
