"""Asking actors from asyncio without parking a thread: :func:`ask_future`, :func:`ask_async`.

An actor answers an ask by calling ``set``/``set_exception`` on the envelope's
reply slot, in the actor's thread. :class:`FutureReply` is such a slot that
completes a :class:`concurrent.futures.Future`; ``asyncio.wrap_future`` turns that
into something a coroutine awaits, woken by ``loop.call_soon_threadsafe``. So an
``await`` holds no thread: the actor's own thread does the work and the answer.

pykka's own ``await future`` is different: its ``__await__`` yields once, then
calls the blocking ``get()`` on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import sys
from collections.abc import Generator
from typing import Any

from pykka import ActorDeadError, ActorRef, Future, Timeout
from pykka._envelope import Envelope

from supervisors import _registry

__all__ = ["FutureReply", "ask_async", "ask_future"]


class FutureReply(Future[Any]):
    """A pykka reply slot that completes a :class:`concurrent.futures.Future` (``.future``).

    Actor classes hand it out from ``_create_future`` (pykka's hook) so that
    ``ref.ask(msg, block=False)`` returns it; ``await reply`` waits through
    ``asyncio.wrap_future`` instead of blocking the loop as pykka's future does.
    ``set``/``set_exception`` run in the actor's thread; a second answer, or an
    answer to a cancelled future, raises ``queue.Full`` (the actor loop ignores it),
    as :class:`~supervisors.Reply` does. ``get(timeout)`` blocks (for threads).
    """

    def __init__(self) -> None:
        super().__init__()
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def set(self, value: Any = None) -> None:
        try:
            self.future.set_result(value)
        except concurrent.futures.InvalidStateError:
            raise queue.Full from None  # answered already, or the awaiting side cancelled

    def set_exception(self, exc_info: Any = None) -> None:
        error = (exc_info or sys.exc_info())[1]
        if error is None:
            error = ActorDeadError("no reply")
        try:
            self.future.set_exception(error)
        except concurrent.futures.InvalidStateError:
            raise queue.Full from None

    def get(self, *, timeout: float | None = None) -> Any:
        """The answer, or raise what the actor raised; ``Timeout`` after ``timeout`` s."""
        if self._get_hook is not None:  # pykka's filter/map/join build on the hook
            return super().get(timeout=timeout)
        try:
            return self.future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise Timeout(f"{timeout} seconds") from None

    def __await__(self) -> Generator[Any, None, Any]:
        if self._get_hook is not None:  # a derived future (map, filter): pykka's way
            return super().__await__()
        return asyncio.wrap_future(self.future).__await__()


def ask_future(
    ref_or_name: ActorRef[Any] | str | Any, message: Any
) -> concurrent.futures.Future[Any]:
    """Send ``message`` as an ask; return a :class:`concurrent.futures.Future` of the answer.

    Returns at once, from any thread. The future gets the actor's answer, or the
    exception its handler raised (as it was raised, not wrapped), or
    ``ActorDeadError`` if the actor is dead or dies before answering. Cancelling
    the future does not unsend the message; the answer is then dropped.

    Raises:
        NoProc: ``ref_or_name`` is a name (or ``NamedRef``) bound to no live actor.
        TypeError: ``ref_or_name`` is not a ref, a name or a ``NamedRef``.
    """
    ref = _registry.resolve(ref_or_name)
    reply = FutureReply()
    if ref.actor_stopped.is_set():
        reply.set_exception((ActorDeadError, ActorDeadError(f"{ref} not found"), None))
    else:
        # A closed supervisors inbox answers ActorDeadError itself.
        ref.actor_inbox.put(Envelope(message, reply_to=reply))
    return reply.future


async def ask_async(
    ref_or_name: ActorRef[Any] | str | Any, message: Any, timeout: float | None = 5.0
) -> Any:
    """Ask an actor and await its answer without blocking the event loop or holding a thread.

    ``timeout`` (seconds, default 5.0 as :meth:`NamedRef.ask`; ``None``: no bound)
    raises :class:`pykka.Timeout`. Cancelling the awaiting task cancels the wait
    (the actor still handles the message; its answer is dropped).

    Raises:
        pykka.Timeout: no answer within ``timeout``.
        ActorDeadError / NoProc: the actor is dead, dies first, or the name is unbound.
        Exception: what the actor's handler raised, as raised.
    """
    future = asyncio.wrap_future(ask_future(ref_or_name, message))
    if timeout is None:
        return await future
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        if future.cancelled():  # our own timeout, not a TimeoutError the actor raised
            raise Timeout(f"no answer from {ref_or_name!r} within {timeout} s") from None
        raise
