"""Supervisors: :class:`Supervisor` (static children, three strategies) and the shared core.

A supervisor is an :class:`~supervisors.Actor` that traps exits and is linked to
each child. A child's exit arrives as an :class:`ExitSignal` message; the
supervisor applies the child's restart type, its restart intensity and its
strategy, in its own thread, one event at a time. Requests such as
:func:`start_child` are ``ask`` messages to the supervisor; bad requests are
answered with an error raised in the caller's thread, never by crashing the
supervisor.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self, cast

from pykka import ActorDeadError, ActorRef

from supervisors import _registry
from supervisors._actor import (
    Actor,
    SpawnOptions,
    _StopWith,
    actor_of,
    pending_spawn_options,
    spawn_options,
)
from supervisors._errors import NoProc, StartError, SupervisorError
from supervisors._log import describe_reason, logger, safe_repr
from supervisors._messages import ExitSignal, Reason, is_normal
from supervisors._reply import ask as fast_ask
from supervisors._spec import STRATEGIES, ChildCounts, ChildInfo, ChildSpec, Strategy
from supervisors._timer import TimerHandle, call_later

Observer = Callable[[str, str, Any, Any], None]
"""A supervisor's observer: ``(event, supervisor label, child id, detail)``; see
``Supervisor.start(observer=)``."""

__all__ = [
    "Supervisor",
    "count_children",
    "delete_child",
    "restart_child",
    "start_child",
    "terminate_child",
    "which_children",
]

DEFAULT_CALL_TIMEOUT = 60.0
"""Default timeout for requests to a supervisor (they may include starting a child)."""

ChildState = Literal["running", "restarting", "stopped"]


@dataclass(eq=False)
class _Child:
    """A supervisor's record of one child (mutated only in the supervisor's thread)."""

    key: Any
    spec: ChildSpec
    ref: ActorRef[Any] | None = None
    actor: Actor | None = None
    state: ChildState = "stopped"
    restarts: int = 0
    started_at: float = 0.0
    backoff_n: int = 0
    """Consecutive restarts so far, for the spec's backoff (reset after a quiet period)."""
    restart_at: float | None = None
    """When its delayed (backoff) restart is due (monotonic), or ``None``."""
    timer: TimerHandle | None = None


@dataclass(frozen=True)
class _Call:
    op: str
    arg: Any = None


@dataclass(frozen=True)
class _Err:
    error: BaseException


@dataclass(frozen=True)
class _RetryRestart:
    keys: tuple[Any, ...]
    count: bool = True
    """Count this attempt against the intensity (``False``: the restart was counted
    when it was decided, and only its backoff delay has passed)."""


class _SupervisorBase(Actor):
    """The machinery shared by static and dynamic supervisors. Not public."""

    trap_exits = True
    kind = "supervisor"
    strategy: Strategy = "one_for_one"
    forget_stopped = False
    """Dynamic supervisors drop the record of a child that ended for good."""
    progress_level = 20
    """Log level of ``child_started`` reports (dynamic supervisors use debug)."""

    def __init__(
        self, *, max_restarts: int, max_seconds: float, observer: Observer | None = None
    ) -> None:
        super().__init__()
        if observer is not None and not callable(observer):
            raise TypeError(f"observer must be callable, got {observer!r}")
        self.observer = observer
        """Told ``(event, supervisor, child_id, detail)`` for child_started, child_terminated,
        child_restarted and shutdown (in the supervisor's or the caller's thread); it
        must not block or raise (an exception it raises is logged and dropped)."""
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"max_restarts must be a non-negative int, got {max_restarts!r}")
        if (
            isinstance(max_seconds, bool)
            or not isinstance(max_seconds, int | float)
            or max_seconds <= 0
        ):
            raise ValueError(f"max_seconds must be a positive number, got {max_seconds!r}")
        self.max_restarts = max_restarts
        self.max_seconds = float(max_seconds)
        self._children: list[_Child] = []
        self._by_urn: dict[str, _Child] = {}
        self._children_lock = threading.Lock()
        self._restart_times: collections.deque[float] = collections.deque()
        self._rng = random.Random()
        self.total_restarts = 0
        self.gave_up: str | None = None
        """Why this supervisor gave up (reached its restart intensity), or ``None``.

        Set just before it shuts its children down and exits with ``"shutdown"``, so
        whoever watches it can tell an escalation from an ordered stop."""

    # ----------------------------------------------------------------- labels

    def label(self) -> str:
        """The supervisor's name, or its class and short urn: used in reports."""
        return self._sv_name or f"{type(self).__name__}<{self.actor_urn[-8:]}>"

    def _observe(self, event: str, child_id: Any, detail: Any) -> None:
        observer = self.observer
        if observer is None:
            return
        try:
            observer(event, self.label(), child_id, detail)
        except Exception as exc:
            logger.warning("observer_failed", supervisor=self.label(), error=safe_repr(exc))

    # ----------------------------------------------------------- start / stop

    def _start_child_record(
        self, child: _Child, first: tuple[Any, Any] | None = None
    ) -> ActorRef[Any]:
        """Start ``child`` now and return its ref; raise :class:`StartError` on failure (logged).

        The record may already say "stopped" when this returns: a child can end
        (and, if temporary, be forgotten) before its starter reads the record.
        """
        try:
            ref, actor = self._spawn_child(child, first)
        except BaseException as exc:
            child.ref, child.actor, child.state = None, None, "restarting"
            reason = exc.reason if isinstance(exc, StartError) else exc
            logger.error(
                "start_error",
                supervisor=self.label(),
                child_id=child.key,
                reason=describe_reason(reason),
                restart=child.spec.restart,
            )
            if isinstance(exc, StartError):
                raise
            raise StartError(f"child {child.spec.id!r}", exc) from exc
        with self._children_lock:
            child.ref, child.actor, child.state = ref, actor, "running"
            child.started_at, child.restart_at, child.timer = time.monotonic(), None, None
            self._by_urn[ref.actor_urn] = child
        logger.log(
            self.progress_level,
            "child_started",
            supervisor=self.label(),
            child_id=child.key,
            actor=type(actor).__name__,
            name=child.spec.name,
            restart=child.spec.restart,
        )
        if self.observer is not None:
            self._observe("child_started", child.key, type(actor).__name__)
        return ref

    def _spawn_child(
        self, child: _Child, first: tuple[Any, Any] | None
    ) -> tuple[ActorRef[Any], Actor]:
        """Call the spec's start function with this supervisor's spawn options (name, link).

        Raises what the start function raised, or ``TypeError`` if it returned no
        ``supervisors.Actor`` ref (a plain pykka actor it started is stopped).
        """
        spec = child.spec
        message, reply_to = first if first is not None else (None, None)
        with spawn_options(
            name=spec.name,
            link=self,
            restarts=child.restarts,
            first_message=message,
            first_reply_to=reply_to,
        ) as options:
            ref = spec.start(*spec.args, **spec.kwargs)
        actor = actor_of(ref) if isinstance(ref, ActorRef) else None
        if actor is None:
            if isinstance(ref, ActorRef) and ref.is_alive():
                ref.stop(block=False)
            raise TypeError(
                f"child {spec.id!r}: start must return the ActorRef of a supervisors.Actor, "
                f"got {ref!r}"
            )
        self._adopt(spec, options, ref, actor)
        return ref, actor

    def _adopt(
        self, spec: ChildSpec, options: SpawnOptions, ref: ActorRef[Any], actor: Actor
    ) -> None:
        """Give ``actor`` (behind ``ref``) the spec's name and the link if its start did not.

        Raises:
            AlreadyStarted: the name is taken. NoProc: ``actor`` is already dead.
        """
        if options.consumed and options.actor is not actor and options.actor is not None:
            # The start function started a helper actor first: the options (name,
            # link) went to the helper. Give them to the actor it returned.
            helper = options.actor
            if spec.name is not None:
                _registry._release(spec.name, helper.actor_ref)
            self.unlink(helper.actor_ref)
            options.consumed = False
        if not options.consumed:
            # The start function handed back an actor it did not start here.
            if spec.name is not None:
                _registry.register(spec.name, ref)
            if not (actor._sv_add_link(self) and self._sv_add_link(actor)):
                raise NoProc(ref)

    def start_child_here(
        self, spec: ChildSpec, first: tuple[Any, Any] | None = None
    ) -> ActorRef[Any]:
        """Start a child of this dynamic supervisor in the *calling* thread.

        Same guarantees as :func:`start_child` (linked to the supervisor before its
        thread runs, in the child table, shut down with the supervisor) without the
        round trip through the supervisor's mailbox: for per-request actors, where
        that hop would double the cost of starting one. Only for supervisors that
        keep no order among children (dynamic and task supervisors).

        ``first`` is an optional ``(message, reply_to_future)`` put in the child's
        mailbox before its thread starts.

        Raises:
            StartError: the child failed to start, or the supervisor is gone.
            SupervisorError: ``max_children`` reached.
        """
        if self.kind == "supervisor":
            raise SupervisorError("start_child_here is for dynamic supervisors only")
        child = self._new_child(spec)
        try:
            ref = self._start_child_record(child, first)
        except StartError:
            self._remove(child)
            raise
        if not ref.is_alive():
            # It died before it was in the table, so the supervisor may have
            # ignored its exit: forget it here (this is what the exit would do).
            with self._children_lock:
                self._by_urn.pop(ref.actor_urn, None)
            self._remove(child)
        return ref

    def _new_child(self, spec: ChildSpec) -> _Child:
        raise SupervisorError(f"{type(self).__name__} cannot start children from the caller")

    def _detach(self, child: _Child) -> tuple[ActorRef[Any] | None, Actor | None]:
        with self._children_lock:
            ref, actor = child.ref, child.actor
            if ref is not None:
                self._by_urn.pop(ref.actor_urn, None)
            child.ref, child.actor, child.state = None, None, "stopped"
        if actor is not None:
            self.unlink(actor.actor_ref)
        return ref, actor

    def _shutdown_children(self, children: Sequence[_Child], *, parallel: bool = False) -> None:
        """Stop ``children`` in the given order (each by its shutdown spec), or all at once."""
        stopping: list[tuple[_Child, Actor, float | None]] = []
        for child in children:
            if child.ref is None:
                self._cancel_pending(child)
                continue
            _ref, actor = self._detach(child)
            if actor is None:
                continue
            timeout = child.spec.shutdown_timeout()
            if timeout == 0.0:
                actor._kill("killed")
            else:
                try:
                    actor.actor_ref.tell(_StopWith("shutdown"))
                except ActorDeadError:
                    pass
            if parallel:
                stopping.append((child, actor, timeout))
            else:
                self._await_stopped(child, actor, timeout, time.monotonic())
        started = time.monotonic()
        for child, actor, timeout in stopping:
            self._await_stopped(child, actor, timeout, started)

    def _await_stopped(
        self, child: _Child, actor: Actor, timeout: float | None, started: float
    ) -> None:
        # The shutdown time covers the child's on_stop: wait for its exit, not is_alive().
        if timeout is None:
            while not actor._sv_wait_exit(1.0):
                pass
        elif timeout > 0 and not actor._sv_wait_exit(
            max(0.0, started + timeout - time.monotonic())
        ):
            actor._kill("killed")
            logger.error(
                "shutdown_error",
                supervisor=self.label(),
                child_id=child.key,
                reason="killed",
                detail=f"did not stop within {timeout} s",
                restart=child.spec.restart,
            )
        reason = actor.exit_reason
        if reason is not None and reason not in ("shutdown", "killed", "normal"):
            logger.error(
                "shutdown_error",
                supervisor=self.label(),
                child_id=child.key,
                reason=describe_reason(reason),
                restart=child.spec.restart,
            )
        logger.info(
            "child_terminated",
            supervisor=self.label(),
            child_id=child.key,
            reason=describe_reason(reason if reason is not None else "shutdown"),
            restart=child.spec.restart,
        )
        if self.observer is not None:
            self._observe("child_terminated", child.key, describe_reason(reason or "shutdown"))

    def _shutdown_all(self) -> None:
        """Terminate every child (reverse start order); temporary specs are dropped."""
        self._shutdown_children(list(reversed(self._children)))

    def on_stop(self) -> None:
        self._shutdown_all()
        logger.info("supervisor_stopped", supervisor=self.label())

    def on_failure(self, *exc_info: Any) -> None:
        # A supervisor bug: take the subtree down with it rather than leave it unowned.
        self._shutdown_all()

    # --------------------------------------------------------------- restarts

    def _add_restart(self) -> bool:
        """Record a restart; ``False`` if that makes more than max_restarts in max_seconds."""
        now = time.monotonic()
        times = self._restart_times
        times.append(now)
        while times and now - times[0] > self.max_seconds:
            times.popleft()
        self.total_restarts += 1
        return len(times) <= self.max_restarts

    def restarts_in_window(self) -> int:
        """Restarts counted in the current intensity window (any thread; approximate)."""
        now = time.monotonic()
        return sum(1 for t in list(self._restart_times) if now - t <= self.max_seconds)

    def _escalate(self, child: _Child, reason: Reason) -> None:
        self.gave_up = (
            f"child {child.key!r} needed more than {self.max_restarts} restarts in "
            f"{self.max_seconds:g} s; its last exit: {describe_reason(reason)}"
        )
        logger.error(
            "shutdown",
            supervisor=self.label(),
            child_id=child.key,
            reason="reached_max_restart_intensity",
            last_reason=describe_reason(reason),
            restart=child.spec.restart,
            max_restarts=self.max_restarts,
            max_seconds=self.max_seconds,
        )
        self._observe("shutdown", child.key, self.gave_up)
        self._shutdown_all()
        self.exit("shutdown")

    def _restart(self, child: _Child, reason: Reason) -> None:
        """Apply the strategy for the failed ``child`` (already marked not running)."""
        if not self._add_restart():
            self._escalate(child, reason)
            return
        child.restarts += 1
        to_start = self._victims(child)
        delay = self._backoff_delay(child, time.monotonic() - child.started_at)
        if delay is None:
            self._start_in_order(to_start)
        else:
            keys = tuple(c.key for c in to_start)
            self._schedule(to_start, child, delay, _RetryRestart(keys, count=False))

    def _backoff_delay(self, child: _Child, up_for: float) -> float | None:
        """The wait before ``child``'s next restart (its spec's backoff), or ``None``."""
        backoff = child.spec.backoff
        if backoff is None:
            return None
        if up_for >= backoff.reset_after_s:
            child.backoff_n = 0
        delay = backoff.delay(child.backoff_n, self._rng)
        child.backoff_n += 1
        return delay

    def _schedule(
        self, group: list[_Child], child: _Child, delay: float, message: _RetryRestart
    ) -> None:
        """Restart ``group`` in ``delay`` s: a timer tells this supervisor (no sleep here)."""
        due = time.monotonic() + delay
        ref = self.actor_ref

        def wake() -> None:
            try:
                ref.tell(message)
            except ActorDeadError:
                pass  # the supervisor ended meanwhile: nothing to restart

        timer = call_later(delay, wake)
        with self._children_lock:
            for member in group:
                member.state, member.restart_at, member.timer = "restarting", due, timer
        logger.info(
            "child_restart_delayed",
            supervisor=self.label(),
            child_id=child.key,
            delay_s=round(delay, 4),
            attempt=child.backoff_n,
            restart=child.spec.restart,
        )

    def _cancel_pending(self, child: _Child) -> None:
        """Forget ``child``'s delayed restart, if any (it was terminated or started by hand)."""
        timer = child.timer
        child.timer, child.restart_at = None, None
        if timer is not None and not any(c.timer is timer for c in self._children):
            timer.cancel()  # not shared with the rest of a group that still waits
        if child.state == "restarting":
            child.state = "stopped"

    def pending_restarts(self) -> dict[Any, float]:
        """Children waiting out a backoff: key -> seconds until their restart. Any thread."""
        now = time.monotonic()
        with self._children_lock:
            return {
                c.key: max(0.0, c.restart_at - now)
                for c in self._children
                if c.restart_at is not None and c.ref is None
            }

    def _victims(self, child: _Child) -> list[_Child]:
        """Children to (re)start after ``child`` failed; stops the others the strategy names."""
        if self.strategy == "one_for_one":
            child.state = "restarting"
            return [child]
        index = self._children.index(child)
        others = self._children if self.strategy == "one_for_all" else self._children[index + 1 :]
        others = [c for c in others if c is not child]
        self._shutdown_children(list(reversed(others)))
        for other in others:
            if other.spec.restart == "temporary":
                self._remove(other)
        group = [child] + [c for c in others if c.spec.restart != "temporary"]
        ordered = [c for c in self._children if c in group]
        for c in ordered:
            c.state = "restarting"
        return ordered

    def _start_in_order(self, children: list[_Child]) -> None:
        for position, child in enumerate(children):
            if child not in self._children:
                continue
            try:
                self._start_child_record(child)
            except StartError:
                # OTP: try again later; every attempt counts against the intensity.
                # With a backoff, "later" is the next delay, not the next message.
                rest = children[position:]
                retry = _RetryRestart(tuple(c.key for c in rest))
                delay = self._backoff_delay(child, 0.0)
                if delay is None:
                    self.actor_ref.tell(retry)
                else:
                    self._schedule(rest, child, delay, retry)
                return
            logger.info(
                "child_restarted",
                supervisor=self.label(),
                child_id=child.key,
                restarts=child.restarts,
                restart=child.spec.restart,
            )
            self._observe("child_restarted", child.key, child.restarts)

    def _retry_restart(self, message: _RetryRestart) -> None:
        keys = message.keys
        group = [
            c for c in self._children if c.key in keys and c.ref is None and c.state == "restarting"
        ]
        if not group:
            return  # terminated, or started by hand, while it waited
        for child in group:
            child.timer, child.restart_at = None, None
        if message.count and not self._add_restart():
            self._escalate(group[0], "start_error")
            return
        self._start_in_order(group)

    def _sv_on_link_exit(self, peer: Actor, reason: Reason) -> None:
        # Runs in the exiting child's thread. A dynamic supervisor's temporary
        # child that ends normally needs nothing from the supervisor but the
        # removal of its record: do that here instead of waking the supervisor
        # (per-request actors would otherwise cost it a wake-up each).
        if self.forget_stopped and is_normal(reason):
            with self._children_lock:
                child = self._by_urn.get(peer.actor_urn)
                if child is not None and child.spec.restart != "permanent":
                    del self._by_urn[peer.actor_urn]
                    child.ref, child.actor, child.state = None, None, "stopped"
                    if child in self._children:
                        self._children.remove(child)
                    with self._sv_lock:
                        self._sv_links.pop(peer.actor_urn, None)
                    return
        super()._sv_on_link_exit(peer, reason)

    def _remove(self, child: _Child) -> None:
        with self._children_lock:
            if child in self._children:
                self._children.remove(child)

    # --------------------------------------------------------------- messages

    def on_receive(self, message: Any) -> Any:
        # A supervisor must outlive any message it is sent: the system messages it acts
        # on are checked first, and anything else is logged (safely) and dropped.
        if isinstance(message, ExitSignal):
            if not isinstance(message.actor, ActorRef):
                return self._malformed(message, "ExitSignal.actor is not an ActorRef")
            self._on_exit_signal(message)
            return None
        if isinstance(message, _Call):
            handler = (
                getattr(self, f"_call_{message.op}", None) if type(message.op) is str else None
            )
            if handler is None:
                return _Err(
                    SupervisorError(f"{self.label()}: unknown call {safe_repr(message.op)}")
                )
            try:
                return handler(message.arg)
            except (SupervisorError, StartError, ValueError, TypeError, NoProc) as exc:
                return _Err(exc)
        if isinstance(message, _RetryRestart):
            self._retry_restart(message)
            return None
        logger.warning("unexpected_message", supervisor=self.label(), message=safe_repr(message))
        return None

    def _malformed(self, message: Any, why: str) -> None:
        logger.warning(
            "malformed_message", supervisor=self.label(), why=why, message=safe_repr(message)
        )

    def _on_exit_signal(self, signal: ExitSignal) -> None:
        with self._children_lock:
            child = self._by_urn.pop(signal.actor.actor_urn, None)
            if child is not None:
                child.ref, child.actor, child.state = None, None, "stopped"
        if child is None:
            if signal.actor.actor_urn == self._sv_parent_urn:
                # Our parent died: take the subtree down and follow it (OTP).
                self._shutdown_all()
                self.exit(signal.reason)
            return
        reason = signal.reason
        logger.log(
            10 if is_normal(reason) else 40,
            "child_terminated",
            supervisor=self.label(),
            child_id=child.key,
            reason=describe_reason(reason),
            restart=child.spec.restart,
        )
        if self.observer is not None:
            self._observe("child_terminated", child.key, describe_reason(reason))
        restart = child.spec.restart
        if restart == "temporary" or (restart == "transient" and is_normal(reason)):
            if restart == "temporary" or self.forget_stopped:
                self._remove(child)
            return
        self._restart(child, reason)

    # --------------------------------------------------------- introspection

    def snapshot(self) -> list[tuple[Any, ChildSpec, ActorRef[Any] | None, Actor | None, str, int]]:
        """Children as (key, spec, ref, actor, state, restarts), in start order. Any thread."""
        with self._children_lock:
            return [(c.key, c.spec, c.ref, c.actor, c.state, c.restarts) for c in self._children]

    def which(self) -> list[ChildInfo]:
        """Rows for :func:`which_children`. Any thread; never blocks on the supervisor."""
        # A child that died a moment ago, before this supervisor handled its exit,
        # is already shown as not running.
        return [
            ChildInfo(
                key if self.kind == "supervisor" else None,
                ref if ref is not None and ref.is_alive() else None,
                spec.type,
                spec.restart,
            )
            for key, spec, ref, _a, _s, _r in self.snapshot()
        ]

    def describe(self) -> str | None:
        return None


class Supervisor(_SupervisorBase):
    """A supervisor of a fixed, ordered list of children (OTP's ``Supervisor``).

    Start one with :meth:`Supervisor.start`; ``start`` returns once every child's
    ``on_start`` finished, or raises :class:`StartError` after stopping the children
    it had started (reverse order) if one failed.

    Strategies (``strategy=``, default ``"one_for_one"``):

    * ``"one_for_one"`` -- only the failed child is restarted.
    * ``"one_for_all"`` -- the others are stopped in reverse start order, then all
      restart in start order (temporary children are dropped, not restarted).
    * ``"rest_for_one"`` -- the children started after the failed one are stopped in
      reverse order; the failed one and those after it restart in order.

    Restart intensity: more than ``max_restarts`` (default 3) restarts within a
    sliding ``max_seconds`` window (default 5.0) make the supervisor stop all its
    children and exit with reason ``"shutdown"``, which its own parent handles as
    any child exit (a ``permanent`` supervisor child is restarted, a
    ``transient`` one is not). Failed restarts count too.

    Example::

        import supervisors as sv

        class Echo(sv.Actor):
            def on_receive(self, message):
                return message

        root = sv.Supervisor.start([sv.ChildSpec(id="echo", start=Echo.start, name="echo")])
        assert sv.named("echo").ask("hi") == "hi"
        sv.stop(root)
    """

    def __init__(
        self,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        observer: Observer | None = None,
    ) -> None:
        super().__init__(max_restarts=max_restarts, max_seconds=max_seconds, observer=observer)
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {sorted(STRATEGIES)}")
        self.strategy = strategy
        seen: set[Any] = set()
        for spec in children:
            if not isinstance(spec, ChildSpec):
                raise TypeError(f"children must be ChildSpec instances, got {spec!r}")
            if spec.id in seen:
                raise ValueError(f"duplicate child id {spec.id!r}")
            seen.add(spec.id)
            self._children.append(_Child(spec.id, spec))

    @classmethod
    def start(
        cls,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        observer: Observer | None = None,
    ) -> ActorRef[Self]:
        """Start the supervisor and its children, in order; return its ref.

        ``observer(event, supervisor, child_id, detail)``, if given, is told each
        ``child_started`` / ``child_terminated`` / ``child_restarted`` / ``shutdown``.

        Raises:
            ValueError, TypeError: bad strategy, intensity, or duplicate child ids
                (in the caller's thread, before anything starts).
            StartError: a child failed to start; the children already started
                were stopped in reverse order.
            AlreadyStarted: ``name`` is taken.
        """
        with _named(name):
            return super().start(
                list(children),
                strategy=strategy,
                max_restarts=max_restarts,
                max_seconds=max_seconds,
                observer=observer,
            )

    def on_start(self) -> None:
        for child in list(self._children):
            try:
                self._start_child_record(child)
            except StartError:
                child.state = "stopped"
                self._shutdown_all()
                raise

    # ------------------------------------------------------------------ calls

    def _find(self, key: Any) -> _Child:
        for child in self._children:
            if child.key == key:
                return child
        raise SupervisorError(f"{self.label()}: no child with id {key!r}")

    def _call_start_child(self, spec: ChildSpec) -> ActorRef[Any]:
        if any(c.key == spec.id for c in self._children):
            existing = self._find(spec.id)
            what = "already started" if existing.ref is not None else "already present"
            raise SupervisorError(f"{self.label()}: child {spec.id!r} {what}")
        child = _Child(spec.id, spec)
        with self._children_lock:
            self._children.append(child)
        try:
            return self._start_child_record(child)
        except StartError:
            self._remove(child)
            raise

    def _call_terminate_child(self, key: Any) -> None:
        if isinstance(key, ActorRef):
            child = self._by_urn.get(key.actor_urn)
            if child is None:
                raise SupervisorError(f"{self.label()}: {key!r} is not a child")
        else:
            child = self._find(key)
        self._shutdown_children([child])
        if child.spec.restart == "temporary":
            self._remove(child)

    def _call_restart_child(self, key: Any) -> ActorRef[Any]:
        child = self._find(key)
        if child.ref is not None:
            raise SupervisorError(f"{self.label()}: child {key!r} is running")
        self._cancel_pending(child)  # started by hand: its delayed restart is moot
        return self._start_child_record(child)

    def _call_delete_child(self, key: Any) -> None:
        child = self._find(key)
        if child.ref is not None:
            raise SupervisorError(f"{self.label()}: child {key!r} is running")
        self._remove(child)


class _named:
    """Attach ``name`` to the spawn options of the next ``Actor.start`` in this thread.

    Merges with options a parent supervisor set (link, restart count): a child
    supervisor started with ``name=`` inside its parent's spawn keeps both.
    """

    def __init__(self, name: str | None) -> None:
        self.name = name
        self._ctx: spawn_options | None = None

    def __enter__(self) -> None:
        if self.name is None:
            return
        outer = pending_spawn_options()
        if outer is not None:
            if outer.name not in (None, self.name):
                raise ValueError(
                    f"conflicting names for one actor: {outer.name!r} (child spec) "
                    f"and {self.name!r}"
                )
            outer.name = self.name
            return
        self._ctx = spawn_options(name=self.name)
        self._ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)


# ----------------------------------------------------------------------- API


def _supervisor(sup: ActorRef[Any] | str | Any) -> tuple[ActorRef[Any], _SupervisorBase]:
    ref = _registry.resolve(sup)
    actor = actor_of(ref)
    if actor is None or not ref.is_alive():
        raise NoProc(sup)
    if _SupervisorBase not in type(actor).__mro__:  # an ABC: see actor_of
        raise TypeError(f"{sup!r} is not a supervisor")
    return ref, cast("_SupervisorBase", actor)


def _call(sup: ActorRef[Any] | str | Any, op: str, arg: Any, timeout: float) -> Any:
    ref, _ = _supervisor(sup)
    try:
        result = fast_ask(ref, _Call(op, arg), timeout)
    except ActorDeadError:
        raise NoProc(sup) from None
    if isinstance(result, _Err):
        raise result.error
    return result


def start_child(
    sup: ActorRef[Any] | str,
    spec: ChildSpec,
    *,
    timeout: float = DEFAULT_CALL_TIMEOUT,
    in_caller: bool = False,
    first_message: tuple[Any, Any] | None = None,
) -> ActorRef[Any]:
    """Add ``spec`` to supervisor ``sup`` and start it; return the child's ref.

    Returns after the child's ``on_start`` finished. ``sup`` is a ref or a
    registered name. The new child is the last in start order (first to stop).
    With ``in_caller=True`` (dynamic and task supervisors only) the child is
    started in the calling thread instead of the supervisor's, saving a round
    trip (see ``DynamicSupervisor.start_child_here``). ``first_message``, only with
    ``in_caller=True``, is ``(message, reply_to)``: it is queued in the child's
    mailbox before its thread starts, ahead of anything else (``reply_to`` is a
    pykka future or any object with ``set`` / ``set_exception``; ``None`` = a tell).

    Raises:
        StartError: the child failed to start (the spec is not kept).
        SupervisorError: the id is already present, or a dynamic supervisor is full.
        NoProc: ``sup`` is dead or not registered.
    """
    if not isinstance(spec, ChildSpec):
        raise TypeError(f"start_child needs a ChildSpec, got {spec!r}")
    if in_caller:
        _, actor = _supervisor(sup)
        return actor.start_child_here(spec, first=first_message)
    if first_message is not None:
        raise ValueError("first_message needs in_caller=True")
    result: ActorRef[Any] = _call(sup, "start_child", spec, timeout)
    return result


def terminate_child(
    sup: ActorRef[Any] | str, child: Any, *, timeout: float = DEFAULT_CALL_TIMEOUT
) -> None:
    """Stop a child (by id, or by ref) using its shutdown spec; it stays stopped.

    A static supervisor keeps the spec (see :func:`restart_child`,
    :func:`delete_child`) unless the child is temporary; a dynamic supervisor
    forgets it.

    Raises:
        SupervisorError: no such child.
    """
    _call(sup, "terminate_child", child, timeout)


def restart_child(
    sup: ActorRef[Any] | str, child_id: Any, *, timeout: float = DEFAULT_CALL_TIMEOUT
) -> ActorRef[Any]:
    """Start again a child that was terminated with :func:`terminate_child`.

    Raises:
        SupervisorError: no such child, or it is running.
        StartError: it failed to start.
    """
    result: ActorRef[Any] = _call(sup, "restart_child", child_id, timeout)
    return result


def delete_child(
    sup: ActorRef[Any] | str, child_id: Any, *, timeout: float = DEFAULT_CALL_TIMEOUT
) -> None:
    """Forget the spec of a stopped child.

    Raises:
        SupervisorError: no such child, or it is running.
    """
    _call(sup, "delete_child", child_id, timeout)


def which_children(sup: ActorRef[Any] | str) -> list[ChildInfo]:
    """The supervisor's children in start order, as :class:`ChildInfo` rows.

    ``ref`` is ``None`` for a child that is restarting or stopped. Reads a snapshot
    without messaging the supervisor, so it never blocks (even mid-restart).

    Raises:
        NoProc: ``sup`` is dead or not registered.
    """
    _, actor = _supervisor(sup)
    return actor.which()


def count_children(sup: ActorRef[Any] | str) -> ChildCounts:
    """Counts of specs, running children, supervisor children and worker children."""
    rows = which_children(sup)
    return ChildCounts(
        specs=len(rows),
        active=sum(1 for r in rows if r.ref is not None),
        supervisors=sum(1 for r in rows if r.type == "supervisor"),
        workers=sum(1 for r in rows if r.type == "worker"),
    )
