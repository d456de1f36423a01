"""``Module.acall`` and ``Module.abatch``: modules awaited from asyncio.

Each call is one program actor, started from the event loop's thread and
awaited through a ``concurrent.futures.Future`` its answer completes
(``ActorSystem.arun``): no thread waits on the caller's side and the loop never
blocks. ``abatch`` bounds how many run at once with a semaphore, keeps input
order, and cancels what still runs if it is cancelled itself.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from dspex_actors.runtime import current_program

if TYPE_CHECKING:
    from dspex_actors.runtime import ActorSystem

__all__ = ["abatch", "acall"]


async def acall(
    module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None = None
) -> Any:
    """``await module.acall(**kwargs)``: see :meth:`Module.acall`."""
    if args:
        raise TypeError(
            f"{type(module).__name__}.acall takes its inputs as keyword arguments, "
            f"e.g. {module._keyword_example()}; got {len(args)} positional argument(s)"
        )
    if current_program() is not None:  # awaited inside a forward: same request, same actor
        return module.forward(**kwargs)
    module._check_inputs(kwargs)
    return await module._system().arun(module, kwargs, timeout=timeout)


async def abatch(
    system: ActorSystem,
    module: Any,
    items: list[dict[str, Any]],
    max_concurrency: int,
    *,
    timeout: float | None,
) -> list[Any]:
    """Run ``module`` on every item (checked already), at most ``max_concurrency`` at once.

    Returns each prediction or exception in input order (never raises for one
    item's failure). Cancelling it cancels every item still running.
    """
    gate = asyncio.Semaphore(max_concurrency)

    async def one(item: dict[str, Any]) -> Any:
        async with gate:
            try:
                return await system.arun(module, item, timeout=timeout)
            except Exception as exc:  # kept in place; CancelledError is not caught
                return exc

    return list(await asyncio.gather(*(one(item) for item in items)))
