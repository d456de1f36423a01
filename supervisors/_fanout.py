"""The fan-out engine: :func:`fan_out` runs one actor per item, at most N at once.

Demand-driven, as a GenStage consumer: the consumer pulls results (``for``,
:meth:`FanOut.get`) and the engine starts the next item only when one of the N
slots is free. A slot is held from the item's start until the consumer has taken
its result, so a finished result that waits (a slow consumer, or an earlier item
still running in ordered mode) holds its slot: a slow consumer slows the
producers and at most N results exist at once.

The engine is generic: ``launch(item, slot)`` starts an actor whose answer goes
to ``slot`` (``set`` / ``set_exception``, as a pykka future: pass it as an ask's
``reply_to``) and returns the actor's ref, so that the engine can kill it. No
thread is started per item: slots push finished results into one queue, and the
consumer's thread launches, waits (always with a timeout) and kills. Each item
has a deadline from its start (``timeout``): a late item's actor is killed with
reason ``"timeout"`` and its result is ``Exit("timeout")`` (Elixir's
``Task.async_stream(on_timeout: :kill_task)``). :meth:`FanOut.cancel`, leaving a
``with`` block, :meth:`FanOut.close` and a ``KeyboardInterrupt`` while the
consumer waits kill every item still running.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from pykka import ActorDeadError, ActorRef

from supervisors._errors import Timeout
from supervisors._lifecycle import kill
from supervisors._messages import Exit, Ok
from supervisors._timer import TimerHandle, call_at

try:  # The C functions: signal.signal/getsignal add IntEnum conversions that raise
    # and catch two or three exceptions per call (~3 us), paid per launched item.
    import _signal as _raw_signal  # type: ignore[import-not-found]
except ImportError:  # not CPython
    _raw_signal = signal

__all__ = ["FanOut", "Settled", "Slot", "fan_out"]

T = TypeVar("T")

Outcome = Ok[Any] | Exit

LINGER = 1.0
"""Seconds the end of a fan-out waits for actors that answered to finish ending."""

_SLICE = 1.0
"""Longest single wait of a blocking pull with no deadline pending."""


@dataclass(frozen=True, slots=True)
class Settled(Generic[T]):
    """One finished item of a :class:`FanOut`: its position in the input, the item, its outcome.

    ``outcome`` is ``Ok(value)`` (the actor's answer), or ``Exit(reason)``: the
    exception the actor raised, ``"timeout"`` (past its deadline; killed), or the
    exception ``launch`` raised.
    """

    index: int
    item: T
    outcome: Outcome

    @property
    def ok(self) -> bool:
        """Whether the item succeeded (``outcome`` is ``Ok``)."""
        return isinstance(self.outcome, Ok)


class Slot(Generic[T]):
    """Where one item's answer goes: pass it as the ``reply_to`` of the item's ask.

    ``set(value)`` / ``set_exception(exc_info)`` as a pykka future (a second
    answer, or an answer after the engine gave up on the item, raises
    ``queue.Full``, which actor loops ignore); :meth:`settle` takes an outcome and
    never raises. Any thread.
    """

    __slots__ = ("_fan", "deadline", "index", "item", "ref", "settled")

    def __init__(self, fan: FanOut[T], index: int, item: T, deadline: float | None) -> None:
        self._fan = fan
        self.index = index
        self.item = item
        self.deadline = deadline
        self.ref: ActorRef[Any] | None = None
        self.settled = False

    def set(self, value: Any = None) -> None:
        if not self._fan._settle(self, Ok(value)):
            raise queue.Full

    def set_exception(self, exc_info: Any = None) -> None:
        error = (exc_info or sys.exc_info())[1]
        reason = error if error is not None else ActorDeadError("no reply")
        if not self._fan._settle(self, Exit(reason)):
            raise queue.Full

    def settle(self, outcome: Outcome) -> bool:
        """Answer with ``Ok(value)`` or ``Exit(reason)``; ``False`` if already answered."""
        return self._fan._settle(self, outcome)

    def __repr__(self) -> str:
        return f"<Slot {self.index} {'settled' if self.settled else 'running'}>"


Launch = Callable[[T, Slot[T]], "ActorRef[Any] | None"]


class FanOut(Generic[T]):
    """A running fan-out (see the module docstring); made by :func:`fan_out`.

    Iterate it for :class:`Settled` results, or pull one at a time with
    :meth:`get` (``get(0)`` never blocks: for a consumer that is an actor, woken
    by ``notify``). A context manager: leaving the block cancels what still runs.

    Threading: one consumer thread iterates, calls :meth:`get`, :meth:`fill` and
    :meth:`extend`; :meth:`cancel` and the counters may be used from any thread.
    """

    def __init__(
        self,
        launch: Launch[T],
        *,
        max_concurrency: int,
        timeout: float | None = None,
        ordered: bool = True,
        on_timeout: Literal["kill", "raise"] = "kill",
        notify: Callable[[], None] | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency!r}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive or None, got {timeout!r}")
        if on_timeout not in ("kill", "raise"):
            raise ValueError(f"on_timeout must be 'kill' or 'raise', got {on_timeout!r}")
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.ordered = ordered
        self._launch = launch
        self._on_timeout = on_timeout
        self._notify = notify
        self._lock = threading.Lock()
        self._sources: deque[Iterator[T]] = deque()
        self._sink: queue.SimpleQueue[tuple[Slot[T], Outcome]] = queue.SimpleQueue()
        self._running: dict[int, Slot[T]] = {}
        self._order: deque[Slot[T]] = deque()  # started, in deadline order (settled: skipped)
        self._ready: dict[int, tuple[Settled[T], ActorRef[Any] | None]] = {}
        self._in_sink = 0
        self._next_index = 0
        self._next_out = 0
        self._cancelled = False
        self._leftover: list[Settled[T]] = []
        self._lingering: deque[ActorRef[Any]] = deque()
        self._timer: TimerHandle | None = None

    # ---------------------------------------------------------------- counters

    @property
    def in_flight(self) -> int:
        """Items started whose actor has not answered yet."""
        return len(self._running)

    @property
    def buffered(self) -> int:
        """Items that finished but whose result the consumer has not taken yet."""
        return self._in_sink + len(self._ready)

    @property
    def free(self) -> int:
        """Slots not held (``max_concurrency - in_flight - buffered``)."""
        with self._lock:
            return max(0, self.max_concurrency - self._held())

    @property
    def cancelled(self) -> bool:
        """Whether the fan-out was cancelled or closed."""
        return self._cancelled

    @property
    def exhausted(self) -> bool:
        """Cancelled, or nothing left: no item waiting to start, running or to be taken."""
        with self._lock:
            return self._cancelled or (not self._sources and self._held() == 0)

    def _held(self) -> int:
        return len(self._running) + self._in_sink + len(self._ready)

    # ---------------------------------------------------------------- consumer

    def extend(self, items: Iterable[T]) -> None:
        """Queue more items (pulled lazily, after those already queued). Consumer only."""
        with self._lock:
            if not self._cancelled:
                self._sources.append(iter(items))

    def __iter__(self) -> Iterator[Settled[T]]:
        return self

    def __next__(self) -> Settled[T]:
        result = self.get(timeout=None)
        if result is None:
            raise StopIteration
        return result

    def get(self, timeout: float | None = 0.0) -> Settled[T] | None:
        """The next result, waiting at most ``timeout`` seconds (``None``: until one comes).

        Starts items into free slots, kills items past their deadline, and returns
        the next :class:`Settled` (in input order when ``ordered``), or ``None``
        when nothing came within ``timeout`` or nothing is left (see
        :attr:`exhausted`). After a cancel it returns ``None``.

        Raises:
            Timeout: ``on_timeout="raise"`` and an item passed its deadline (every
                item still running is killed first).
            BaseException: what the items iterable raised, or a
                ``KeyboardInterrupt`` while waiting; either cancels the fan-out first.
        """
        end = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                result = self._take()
                if result is not None:
                    return result
                if self.exhausted:
                    self._finish()
                    return None
                wait = self._wait_time(end)
                if wait is None:
                    self._arm()
                    return None
                self._receive(wait)
        except BaseException:
            self._abort()
            raise

    def fill(self) -> int:
        """Start items into the free slots now; return how many started. Consumer only."""
        started = 0
        while True:
            with self._lock:
                if self._cancelled or self._held() >= self.max_concurrency:
                    return started
                if not self._sources:
                    return started
                source = self._sources[0]
            try:
                item = next(source)
            except StopIteration:
                with self._lock:
                    if self._sources and self._sources[0] is source:
                        self._sources.popleft()
                continue
            self._start(item)
            started += 1
            if self._notify is not None:
                self._arm()

    def _start(self, item: T) -> None:
        """Launch one item; a Ctrl-C meanwhile is raised once its actor is known (killable)."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with self._lock:
            slot = Slot(self, self._next_index, item, deadline)
            self._next_index += 1
            self._running[slot.index] = slot
            if deadline is not None:
                self._order.append(slot)
        hold = _HoldInterrupts()
        try:
            try:
                ref = self._launch(item, slot)
            except Exception as exc:
                self._settle(slot, Exit(exc))
                return
            with self._lock:
                slot.ref = ref
                orphan = self._cancelled and ref is not None
            if orphan:
                assert ref is not None
                _kill(ref, "shutdown", quiet=True)  # cancelled from another thread meanwhile
        finally:
            hold.release()

    def _take(self) -> Settled[T] | None:
        """Move answers from the sink, expire late items, pop one result, refill the slots.

        The slot of the result handed to the consumer is refilled at once, so the
        next item runs while the consumer works on this one.
        """
        self._drain_sink()
        self._expire(time.monotonic())
        result = self._pop_ready()
        if result is None:
            self.fill()  # items that fail to launch, or answer at once, are ready now
            self._drain_sink()
            result = self._pop_ready()
        self.fill()
        if result is not None:
            self._arm()
        return result

    def _drain_sink(self) -> None:
        sink = self._sink
        while not sink.empty():  # no queue.Empty raised (and caught) on every call
            try:
                slot, outcome = sink.get_nowait()
            except queue.Empty:  # a cancel() in another thread took it meanwhile
                return
            self._accept(slot, outcome)

    def _accept(self, slot: Slot[T], outcome: Outcome) -> None:
        with self._lock:
            self._in_sink -= 1
            if self._cancelled:
                self._leftover.append(Settled(slot.index, slot.item, outcome))
                return
            self._ready[slot.index] = (Settled(slot.index, slot.item, outcome), slot.ref)

    def _pop_ready(self) -> Settled[T] | None:
        with self._lock:
            if not self._ready:
                return None
            key = self._next_out if self.ordered else next(iter(self._ready))
            entry = self._ready.pop(key, None)
            if entry is None:
                return None
            self._next_out += self.ordered
        result, ref = entry
        lingering = self._lingering
        while lingering and lingering[0].actor_stopped.is_set():
            lingering.popleft()
        if ref is not None and not ref.actor_stopped.is_set():
            lingering.append(ref)  # answered, still ending: waited for at the end
        return result

    def _wait_time(self, end: float | None) -> float | None:
        """Seconds to wait for an answer now; ``None`` when ``end`` has passed."""
        now = time.monotonic()
        if end is not None and now >= end:
            return None
        wait = _SLICE if end is None else end - now
        earliest = self._earliest()
        if earliest is not None:
            wait = min(wait, max(0.0, earliest - now))
        return wait

    def _earliest(self) -> float | None:
        """The earliest deadline of an item still running (every item has the same timeout,
        so deadlines grow in start order and settled items are dropped from the front)."""
        with self._lock:
            order = self._order
            while order and order[0].settled:
                order.popleft()
            return order[0].deadline if order else None

    def _receive(self, wait: float) -> None:
        try:
            slot, outcome = self._sink.get(timeout=wait)
        except queue.Empty:
            return
        self._accept(slot, outcome)

    def _expire(self, now: float) -> None:
        """Settle the items past their deadline as ``Exit("timeout")`` and kill their actors."""
        late: list[Slot[T]] = []
        with self._lock:
            order = self._order
            while order and (order[0].settled or (order[0].deadline or 0.0) <= now):
                slot = order.popleft()
                if not slot.settled:
                    late.append(slot)
            for slot in late:
                slot.settled = True
                del self._running[slot.index]
                self._ready[slot.index] = (Settled(slot.index, slot.item, Exit("timeout")), None)
        for slot in late:
            if slot.ref is not None:
                _kill(slot.ref, "timeout", quiet=False)
        if late and self._on_timeout == "raise":
            self._abort()
            raise Timeout(f"an item of a fan-out did not finish within {self.timeout} s")

    def _settle(self, slot: Slot[T], outcome: Outcome) -> bool:
        """Record ``slot``'s answer once (any thread); ``False`` if it was settled already."""
        with self._lock:
            if slot.settled:
                return False
            slot.settled = True
            self._running.pop(slot.index, None)
            self._in_sink += 1
            self._sink.put((slot, outcome))
        if self._notify is not None:
            self._notify()
        return True

    def _arm(self) -> None:
        """With ``notify``: have the timer call it at the earliest deadline still pending."""
        if self._notify is None:
            return
        earliest = self._earliest()
        timer = self._timer
        if timer is not None and not timer.cancelled and timer.when == earliest:
            return
        if timer is not None:
            timer.cancel()
        self._timer = None
        if earliest is not None:
            self._timer = call_at(earliest, self._notify)

    # ------------------------------------------------------------------ ending

    def cancel(self) -> list[Settled[T]]:
        """Kill every item still running and end the fan-out; any thread, idempotent.

        Items not started yet are dropped. Returns the results that had finished
        but were not taken yet (each returned once over all calls, also after the
        fan-out ended itself on an exception): finished work the consumer may
        still want to keep.
        """
        self._cancel_all()
        with self._lock:
            leftover, self._leftover = self._leftover, []
        return leftover

    def close(self) -> None:
        """Cancel (dropping unconsumed results) and wait a moment for the actors to end.

        Waits at most :data:`LINGER` seconds in all for actors that already answered
        and are ending. Consumer's thread.
        """
        self.cancel()
        self._finish()

    def _abort(self) -> None:
        """The consumer's wait ended in an exception: cancel, keeping the finished results."""
        self._cancel_all()
        self._finish()

    def _cancel_all(self) -> None:
        """Kill what runs; move every result not taken yet to ``_leftover``."""
        with self._lock:
            self._cancelled = True
            self._sources.clear()
            doomed = list(self._running.values())
            for slot in doomed:
                slot.settled = True
            self._running.clear()
            self._order.clear()
            ready = [entry[0] for entry in self._ready.values()]
            self._ready.clear()
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        for slot in doomed:
            if slot.ref is not None:
                _kill(slot.ref, "shutdown", quiet=True)
        while True:
            try:
                slot, outcome = self._sink.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._in_sink -= 1
            ready.append(Settled(slot.index, slot.item, outcome))
        if self.ordered:
            ready.sort(key=lambda r: r.index)
        with self._lock:
            self._leftover.extend(ready)

    def _finish(self) -> None:
        """The end: no more wake-ups; wait for the actors that answered to be gone."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        deadline = time.monotonic() + LINGER
        lingering, self._lingering = self._lingering, deque()
        for ref in lingering:
            ref.actor_stopped.wait(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> FanOut[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "running"
        return (
            f"<FanOut {state} in_flight={self.in_flight} buffered={self.buffered} "
            f"max_concurrency={self.max_concurrency}>"
        )


_SIGINT = int(signal.SIGINT)


class _HoldInterrupts:
    """Holds a Ctrl-C back while the consumer launches an item, then raises it.

    An interrupt that lands inside ``launch`` (after the actor started, before its
    ref came back) would leave an actor nobody can kill. Only in the main thread
    with Python's default SIGINT handler (elsewhere an interrupt is not ours to
    move); :meth:`release` restores that handler.
    """

    __slots__ = ("_held", "_installed")

    def __init__(self) -> None:
        self._held = False
        self._installed = (
            threading.current_thread() is threading.main_thread()
            and _raw_signal.getsignal(_SIGINT) is signal.default_int_handler
        )
        if self._installed:
            _raw_signal.signal(_SIGINT, self._hold)

    def _hold(self, signum: int, frame: object) -> None:
        self._held = True

    def release(self) -> None:
        """Restore the default handler; raise ``KeyboardInterrupt`` if one came meanwhile."""
        if self._installed:
            self._installed = False
            _raw_signal.signal(_SIGINT, signal.default_int_handler)
            if self._held:
                raise KeyboardInterrupt


def _kill(ref: ActorRef[Any], reason: str, *, quiet: bool) -> None:
    try:
        kill(ref, reason, quiet=quiet)
    except TypeError:  # a plain pykka actor: ask it to stop instead
        try:
            ref.stop(block=False)
        except ActorDeadError:
            pass


def fan_out(
    items: Iterable[T],
    launch: Launch[T],
    *,
    max_concurrency: int,
    timeout: float | None = None,
    ordered: bool = True,
    on_timeout: Literal["kill", "raise"] = "kill",
    notify: Callable[[], None] | None = None,
) -> FanOut[T]:
    """Run ``launch(item, slot)`` for each item, at most ``max_concurrency`` unfinished.

    ``launch`` starts an actor that answers into ``slot`` and returns its ref (or
    ``None`` if there is nothing to kill); it runs in the consumer's thread. An
    exception from ``launch`` is that item's ``Exit(exception)``. Items are pulled
    from ``items`` lazily, one per free slot.

    ``timeout``: seconds each item gets from its start (``None``: no deadline);
    past it, ``on_timeout="kill"`` kills the item's actor (reason ``"timeout"``)
    and its result is ``Exit("timeout")``; ``"raise"`` kills every item still
    running and raises :class:`Timeout`. ``ordered``: results in input order (a
    finished result waits, holding its slot, for the earlier ones), else as they
    finish. ``notify``: called (from the answering actor's thread, or the timer
    thread at a deadline) when the consumer should call ``get(0)``; for consumers
    that are actors and cannot block. See :class:`FanOut`.

    Raises:
        ValueError: ``max_concurrency < 1``, a ``timeout`` that is not positive, or
            an unknown ``on_timeout``.
    """
    fan: FanOut[T] = FanOut(
        launch,
        max_concurrency=max_concurrency,
        timeout=timeout,
        ordered=ordered,
        on_timeout=on_timeout,
        notify=notify,
    )
    fan.extend(items)
    return fan
