"""The event bus (``system.events``): topic-prefix PubSub with one bounded actor per subscription.

Phoenix.PubSub's shape on threads: :meth:`EventBus.publish` finds the subscriptions
whose prefix matches the topic in a route table (one dict lookup; an empty route
allocates nothing), appends the :class:`Event` to each subscription's bounded buffer
and wakes its actor only when the buffer was empty. Handlers run in the
subscription's actor, never in the publisher's thread; a handler that raises crashes
that actor, its supervisor (``events`` in the system's tree) restarts it, and the
rest of the buffer is delivered. A subscribed ``ActorRef`` that dies is unsubscribed
(monitor). Guarantees and the topic catalogue: ``docs/observability.md``.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pykka

import supervisors as sv
from dspex_actors.primitives._log import logger

__all__ = ["Event", "EventBus", "Handler", "Overflow", "Subscription", "Topic"]

Topic = tuple[str, ...]
Overflow = Literal["drop_oldest", "drop_newest"]
Handler = Callable[["Event"], Any] | pykka.ActorRef[Any]
OVERFLOW_POLICIES = ("drop_oldest", "drop_newest")
FLUSH_TIMEOUT = 5.0
"""Seconds :meth:`EventBus.recording` waits at its end for events still queued."""

_EMPTY: tuple[Subscription, ...] = ()
_NO_DATA: Mapping[str, Any] = {}
_sub_ids = itertools.count(1)


class _SpanLocal(threading.local):
    span: Any = None  # the telemetry Span running in this thread (primitives/_telemetry.py)


_local = _SpanLocal()


@dataclass(frozen=True, slots=True)
class Event:
    """One published event: immutable, safe to share between threads.

    ``time`` is wall-clock seconds (``time.time()``); ``span_id``/``parent_id``/
    ``trace_id`` link the spans of one module call across threads (``None`` for an
    event published outside any span).
    """

    topic: Topic
    time: float
    data: Mapping[str, Any] = field(default_factory=dict)
    span_id: str | None = None
    parent_id: str | None = None
    trace_id: str | None = None


class _Wake:
    """Publisher -> subscription actor (tell): the buffer has events."""


class _Stop:
    """Cancel -> subscription actor (tell): end normally (not restarted)."""


_WAKE = _Wake()
_STOP = _Stop()


class Subscription:
    """A subscription's handle: its buffer, counters and :meth:`cancel`.

    The buffer outlives the subscription actor's restarts (a handler that raised
    loses only the event it raised on). Threading: any thread.
    """

    def __init__(
        self, bus: EventBus, prefix: Topic, handler: Handler, max_queue: int, overflow: Overflow
    ) -> None:
        self.bus = bus
        self.prefix = prefix
        self.handler = handler
        self.max_queue = max_queue
        self.overflow = overflow
        self.id = f"sub-{next(_sub_ids)}"
        self.delivered = 0
        self._dropped = 0
        self._buffer: collections.deque[Event] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._scheduled = False  # a wake-up is queued or the actor is draining
        self._active = True
        self._ref: pykka.ActorRef[Any] | None = None

    @property
    def dropped(self) -> int:
        """Events dropped by the overflow policy (the buffer was full)."""
        return self._dropped

    @property
    def active(self) -> bool:
        """Whether it still receives events (``False`` after :meth:`cancel`)."""
        return self._active

    def _offer(self, event: Event) -> None:
        """Queue ``event`` (publisher's thread; a short lock, never a wait on the handler)."""
        with self._cond:
            buffer = self._buffer
            if len(buffer) >= self.max_queue:
                self._dropped += 1
                if self.overflow == "drop_newest":
                    return
                buffer.popleft()
            buffer.append(event)
            if self._scheduled:
                return
            self._scheduled = True
            ref = self._ref
        if ref is not None:
            try:
                ref.tell(_WAKE)
            except pykka.ActorDeadError:
                pass  # restarting: the new actor drains the buffer in its on_start

    def _take(self) -> Event | None:
        """The next event, or ``None`` (and not scheduled any more). Subscription actor only."""
        with self._cond:
            if self._buffer and self._active:
                return self._buffer.popleft()
            self._scheduled = False
            self._cond.notify_all()
            return None

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until every queued event was handled; ``False`` if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._scheduled and self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def cancel(self) -> None:
        """Stop delivering (idempotent, any thread, also from its own handler); never waits."""
        with self._cond:
            if not self._active:
                return
            self._active = False
            self._buffer.clear()
            self._cond.notify_all()
            ref = self._ref
        self.bus._remove(self)
        if ref is not None:
            try:
                ref.tell(_STOP)
            except pykka.ActorDeadError:
                pass

    def __repr__(self) -> str:
        state = "active" if self._active else "cancelled"
        return f"<Subscription {self.id} {self.prefix!r} {state} dropped={self._dropped}>"


class SubscriptionActor(sv.Actor):
    """Delivers one subscription's events in order; a child of the ``events`` supervisor.

    Runs the handler in its own thread. A handler that raises crashes it (logged as
    ``actor_crashed``; the supervisor restarts it and it goes on with the next
    event). For an ``ActorRef`` handler it tells the ref each event and monitors it:
    when that actor ends, the subscription is cancelled.
    """

    reuse_threads = True
    register_in_pykka = False

    def __init__(self, sub: Subscription) -> None:
        super().__init__()
        self.sub = sub
        self._target_mref: sv.MonitorRef | None = None

    def on_start(self) -> None:
        sub = self.sub
        if isinstance(sub.handler, pykka.ActorRef):
            self._target_mref = self.monitor(sub.handler)
        with sub._cond:
            sub._ref = self.actor_ref
            pending = bool(sub._buffer) and sub._active
            sub._scheduled = pending
            sub._cond.notify_all()
        if pending:
            self.actor_ref.tell(_WAKE)

    def on_receive(self, message: Any) -> Any:
        if message is _WAKE:
            self._drain()
        elif message is _STOP:
            self.exit("normal")
        elif isinstance(message, sv.Down) and message.ref == self._target_mref:
            self.sub.cancel()  # the subscribed actor is gone: so is its subscription
        return None

    def _drain(self) -> None:
        sub = self.sub
        handler = sub.handler
        while True:
            event = sub._take()
            if event is None:
                return
            sub.delivered += 1
            if isinstance(handler, pykka.ActorRef):
                try:
                    handler.tell(event)
                except pykka.ActorDeadError:
                    sub.cancel()
                    return
            else:
                handler(event)

    def describe(self) -> str | None:
        sub = self.sub
        return f"{sub.prefix!r} queued={len(sub._buffer)} dropped={sub.dropped}"


class EventBus:
    """Topic-prefix PubSub for one system (``system.events``). Any thread.

    ``supervisor`` names the dynamic supervisor the subscription actors run under.
    ``record_content`` says whether spans may carry messages, inputs and outputs
    (``dx.start(record_content=True)``; off by default, as OpenTelemetry's).
    """

    def __init__(self, supervisor: str, *, record_content: bool = False) -> None:
        self.supervisor = supervisor
        self.record_content = record_content
        self.active = False
        """Whether any subscription exists (the cheapest check before building a span)."""
        self._subs: list[Subscription] = []
        self._routes: dict[Topic, tuple[Subscription, ...]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ subscribing

    def subscribe(
        self,
        prefix: Topic,
        handler: Handler,
        *,
        max_queue: int = 1000,
        overflow: Overflow = "drop_oldest",
    ) -> Subscription:
        """Deliver every event whose topic starts with ``prefix`` to ``handler``.

        ``handler`` is a callable (called with each :class:`Event` in the
        subscription's own actor) or an ``ActorRef`` (told each event). At most
        ``max_queue`` events wait; beyond that ``overflow`` drops the oldest or the
        newest and counts it in ``sub.dropped``. ``()`` subscribes to everything.

        Raises:
            TypeError / ValueError: a bad prefix, handler, ``max_queue`` or ``overflow``.
            sv.NoProc / sv.StartError: the system's ``events`` supervisor is not running.
        """
        prefix = check_topic(prefix, allow_empty=True)
        if not (isinstance(handler, pykka.ActorRef) or callable(handler)):
            raise TypeError(f"handler must be a callable or an ActorRef, got {handler!r}")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError(f"max_queue must be an int >= 1, got {max_queue!r}")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        sub = Subscription(self, prefix, handler, max_queue, overflow)
        self._spawn(sub)
        with self._lock:
            self._subs.append(sub)
            self._reroute()
        return sub

    def _spawn(self, sub: Subscription) -> None:
        spec = sv.ChildSpec(
            id=sub.id, start=SubscriptionActor.start, args=(sub,), restart="transient"
        )
        sv.start_child(self.supervisor, spec)

    def respawn(self) -> None:
        """Start the actors of live subscriptions again (after the tree was restarted)."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            ref = sub._ref
            if ref is None or not ref.is_alive():
                try:
                    self._spawn(sub)
                except Exception as exc:
                    logger.warning("events.respawn_failed", subscription=sub.id, error=repr(exc))

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
                self._reroute()

    def _reroute(self) -> None:
        """Drop the route cache (under ``_lock``): routes are rebuilt lazily per topic."""
        self._routes = {}
        self.active = bool(self._subs)

    def _route(self, topic: Topic) -> tuple[Subscription, ...]:
        with self._lock:
            subs = tuple(s for s in self._subs if topic[: len(s.prefix)] == s.prefix)
            routes = self._routes
            routes[topic] = subs
        return subs

    def subscriptions(self) -> list[Subscription]:
        """The live subscriptions (a copy)."""
        with self._lock:
            return list(self._subs)

    # ------------------------------------------------------------- publishing

    def wants(self, topic: Topic) -> bool:
        """Whether any subscription would receive ``topic`` (one dict lookup, cached)."""
        if not self.active:
            return False
        subs = self._routes.get(topic)
        if subs is None:
            subs = self._route(topic)
        return bool(subs)

    def publish(self, topic: Topic, data: Mapping[str, Any] | None = None) -> None:
        """Publish a user event; fire-and-forget, O(subscribers), never waits on a handler.

        Inside a module call the event carries the call's span and trace ids.

        Raises:
            TypeError / ValueError: ``topic`` is not a non-empty tuple of strings, or
                ``data`` is not a mapping.
        """
        topic = check_topic(topic, allow_empty=False)
        if data is not None and not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping, got {type(data).__name__}")
        if not self.wants(topic):
            return
        span = _local.span
        if span is None:
            self.emit(topic, data)
        else:
            self.emit(topic, data, span.span_id, span.parent_id, span.trace_id)

    def emit(
        self,
        topic: Topic,
        data: Mapping[str, Any] | None,
        span_id: str | None = None,
        parent_id: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        """Publish without checks (the runtime's own events; topics are constants)."""
        if not self.active:
            return
        subs = self._routes.get(topic)
        if subs is None:
            subs = self._route(topic)
        if not subs:
            return
        event = Event(
            topic,
            time.time(),
            data if data is not None else _NO_DATA,
            span_id,
            parent_id,
            trace_id,
        )
        for sub in subs:
            sub._offer(event)

    @contextlib.contextmanager
    def recording(self, prefix: Topic = (), *, max_queue: int = 100_000) -> Iterator[list[Event]]:
        """Collect the events under ``prefix`` into a list while the block runs.

        At the block's end it waits (up to 5 s) for events still queued, then
        cancels. For tests and REPLs.
        """
        seen: list[Event] = []
        sub = self.subscribe(prefix, seen.append, max_queue=max_queue)
        try:
            yield seen
        finally:
            sub.flush()
            sub.cancel()


def check_topic(topic: Any, *, allow_empty: bool) -> Topic:
    """``topic`` if it is a tuple of non-empty strings (``()`` only if ``allow_empty``)."""
    if not isinstance(topic, tuple) or not all(isinstance(p, str) and p for p in topic):
        raise TypeError(
            f"a topic is a tuple of non-empty strings, e.g. ('app', 'thing'); got {topic!r}"
        )
    if not topic and not allow_empty:
        raise ValueError("a published topic needs at least one part, e.g. ('app', 'thing')")
    return topic
