"""``dx.astart``: start an actor system from asyncio without blocking the loop."""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Any

from dspex_actors.runtime._async import off_loop
from dspex_actors.runtime._system import ActorSystem, start

__all__ = ["AStart", "astart"]


class AStart:
    """What :func:`astart` returns: awaitable (``system = await dx.astart(...)``) and an
    async context manager (``async with dx.astart(...) as system:``), which shuts the
    system down gracefully (:meth:`ActorSystem.ashutdown`) when the block ends.
    """

    def __init__(self, kwargs: dict[str, Any], grace: float) -> None:
        self._kwargs = kwargs
        self._grace = grace
        self._system: ActorSystem | None = None

    async def _start(self) -> ActorSystem:
        self._system = await off_loop(start, **self._kwargs)
        return self._system

    def __await__(self) -> Generator[Any, None, ActorSystem]:
        return self._start().__await__()

    async def __aenter__(self) -> ActorSystem:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._system is not None:
            await self._system.ashutdown(grace=self._grace)


def astart(*, shutdown_grace: float = 10.0, **options: Any) -> AStart:
    """:func:`dx.start` for asyncio: the tree starts on a one-shot thread, the loop stays free.

    Takes :func:`dx.start`'s keyword options (``lm=``, ``lms=``, ``cache=``, ...).
    ``async with dx.astart(lm=...) as system:`` stops it on exit with
    ``await system.ashutdown(grace=shutdown_grace)``: requests in flight get
    ``shutdown_grace`` seconds, then are cancelled.

    Raises (when awaited): what :func:`dx.start` raises (``ValueError``, ``AlreadyStarted``).
    """
    return AStart(dict(options), shutdown_grace)
