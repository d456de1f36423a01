"""Awaiting program actors from asyncio, with no thread parked per await.

:func:`run_in_program_async` has the program actor started by the spawner (one
daemon thread for all systems; starting a thread waits for it to run, which on a
busy machine takes longer than a loop may be held), with a
:class:`supervisors.FutureReply` as the slot for its answer; the loop only
enqueues. The program actor's ``reply_and_exit`` completes that slot's
``concurrent.futures.Future`` from its own thread; ``asyncio.wrap_future`` wakes
the awaiting task through ``loop.call_soon_threadsafe``. Nothing else runs per
request on the caller's side.

Cancelling the awaiting task tells the program :class:`Cancel` and kills it: its
linked I/O workers end with it, the LM client is not touched, and the programs
supervisor forgets it. The task sees ``CancelledError`` only.

:func:`off_loop` runs a blocking call (starting or stopping a whole system) on a
one-shot daemon thread and awaits its result; it is for rare, coarse work, not
per request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pykka

import supervisors as sv
from dspex_actors.primitives import DeadlineExceeded, logger
from dspex_actors.runtime._fanout import GRACE, start_program
from dspex_actors.runtime._messages import Cancel, Failed
from dspex_actors.runtime._program import ProgramActor, Runtime

__all__ = [
    "DRAIN_POLL",
    "SystemClosed",
    "cancel_program",
    "off_loop",
    "release_spawner",
    "retain_spawner",
    "run_in_program_async",
]

T = TypeVar("T")

DRAIN_POLL = 0.02
"""Seconds between looks at the programs supervisor while a shutdown drains it."""


class SystemClosed(RuntimeError):
    """The actor system is shutting down or shut down: nothing new may run in it.

    A ``RuntimeError`` (what a closed system always raised), so existing handlers
    still catch it; a service maps it to 503.
    """


async def run_in_program_async(
    runtime: Runtime,
    programs: str,
    module: Any,
    inputs: dict[str, Any],
    *,
    timeout: float,
) -> Any:
    """Run ``module(**inputs)`` in a new program actor under ``programs`` and await the result.

    Runs on the event loop's thread; never blocks it (the start is the same
    in-caller start as the synchronous path: a thread from the pool, no I/O).
    Waits at most ``timeout`` seconds plus a grace for the program to report its
    own deadline.

    Raises:
        LMError: the request failed (typed, as the synchronous call raises it).
        DeadlineExceeded: no answer within the deadline (the program is killed).
        asyncio.CancelledError: the awaiting task was cancelled (the program is
            told :class:`Cancel` and killed, with its workers).
        Exception: a bug in the module's ``forward``, as raised.
    """
    deadline = time.monotonic() + timeout
    reply = ProgramActor._create_future()  # pykka's hook: a concurrent.futures.Future inside
    started = _SPAWNER.submit(
        lambda: start_program(runtime, programs, module, inputs, deadline=deadline, reply=reply),
        reply.future,
    )
    waiter = asyncio.timeout(timeout + GRACE)
    try:
        async with waiter:
            result = await asyncio.wrap_future(reply.future)
    except TimeoutError:
        if not waiter.expired():
            raise  # a TimeoutError the module raised: the caller's, as raised
        _once_started(started, _kill)
        raise DeadlineExceeded(f"no answer within {timeout} s") from None
    except asyncio.CancelledError:
        _once_started(started, cancel_program)
        raise
    if isinstance(result, Failed):
        raise result.error
    return result


class _Spawner:
    """Starts program actors for awaiting callers, off their event loops.

    One daemon thread takes start requests from a queue, in order. It runs while a
    system is running (:meth:`retain` at start, :meth:`release` at shutdown, both
    off any loop), so no loop ever waits for it to start; with no system left it
    ends after :data:`SPAWNER_IDLE` seconds without work, so nothing is left
    running. A start that fails (the system is shutting down) fails the request's
    answer with that error.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Any, Any] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._users = 0

    def retain(self) -> None:
        """A system started: keep the thread (start it now if need be)."""
        with self._lock:
            self._users += 1
            self._ensure_thread()

    def release(self) -> None:
        """A system stopped: the thread may end once idle."""
        with self._lock:
            self._users = max(self._users - 1, 0)
        self._queue.put(None)  # wake it to notice

    def submit(
        self, start: Callable[[], pykka.ActorRef[Any]], answer: concurrent.futures.Future[Any]
    ) -> concurrent.futures.Future[pykka.ActorRef[Any]]:
        """Queue ``start``; the returned future gets the ref (never blocks, any thread)."""
        started: concurrent.futures.Future[pykka.ActorRef[Any]] = concurrent.futures.Future()
        self._queue.put((start, started, answer))
        with self._lock:
            self._ensure_thread()
        return started

    def _ensure_thread(self) -> None:
        if self._thread is None:  # lock held
            self._thread = threading.Thread(target=self._run, name="dx:spawner", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=SPAWNER_IDLE)
            except queue.Empty:
                item = None
            if item is None:
                with self._lock:
                    if self._users == 0 and self._queue.empty():
                        self._thread = None
                        return
                continue
            start, started, answer = item
            try:
                started.set_result(start())
            except BaseException as exc:  # the system is down: the caller hears it
                started.set_exception(exc)
                if not answer.done():
                    with contextlib.suppress(concurrent.futures.InvalidStateError):
                        answer.set_exception(exc)


SPAWNER_IDLE = 0.5
"""Seconds the spawner thread waits for work before it looks whether it may end."""

_SPAWNER = _Spawner()
retain_spawner = _SPAWNER.retain
release_spawner = _SPAWNER.release


def _kill(ref: pykka.ActorRef[Any]) -> None:
    sv.kill(ref, reason="killed")


def _once_started(
    started: concurrent.futures.Future[pykka.ActorRef[Any]],
    then: Callable[[pykka.ActorRef[Any]], None],
) -> None:
    """Call ``then(ref)`` once the program has started (now, if it has); never blocks."""

    def done(future: concurrent.futures.Future[pykka.ActorRef[Any]]) -> None:
        if not future.cancelled() and future.exception() is None:
            then(future.result())

    started.add_done_callback(done)


def cancel_program(ref: pykka.ActorRef[Any]) -> None:
    """Tell a program actor to give up and end it now, with its I/O workers (any thread).

    Never blocks: ``Cancel`` is a tell, and the kill marks the actor dead and tells
    its links (the workers), which end with it. A program already gone is fine.
    """
    try:
        ref.tell(Cancel())
    except pykka.ActorDeadError:
        return
    sv.kill(ref, reason="shutdown", quiet=True)  # a cancel is routine, not a warning
    logger.debug("request.cancelled", program=ref.actor_urn)


async def off_loop(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``func(*args, **kwargs)`` on a one-shot daemon thread and await its result.

    For the few blocking calls a service makes at its edges (starting and
    stopping a system), so the loop stays free. Cancelling the await does not
    stop ``func``: it runs to its end on its thread, and the result is dropped.

    Raises:
        Exception: what ``func`` raised, as raised.
    """
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    name = getattr(func, "__qualname__", "call")
    threading.Thread(target=work, name=f"dx:off-loop {name}", daemon=True).start()
    return await asyncio.wrap_future(future)


async def drain(programs: str, grace: float) -> int:
    """Wait (polling, without blocking the loop) until ``programs`` has no child, or ``grace`` s.

    Then tell every program still running to give up (:class:`Cancel`; each
    answers its caller with ``Cancelled`` at its next wait) and return how many
    there were.
    """
    end = time.monotonic() + max(grace, 0.0)
    while True:
        try:
            children = [row.ref for row in sv.which_children(programs) if row.ref is not None]
        except sv.NoProc:
            return 0
        if not children:
            return 0
        if time.monotonic() >= end:
            break
        await asyncio.sleep(min(DRAIN_POLL, max(end - time.monotonic(), 0.0)))
    for ref in children:
        try:
            ref.tell(Cancel())
        except pykka.ActorDeadError:
            pass
    logger.info("shutdown.cancelled_in_flight", programs=len(children), grace_s=grace)
    return len(children)
