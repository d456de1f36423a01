"""The :class:`Actor` base class: a pykka ``ThreadingActor`` with OTP process semantics.

A crash is an exit with a reason; death is seen by monitors and links; the
registered name is released first; no ask is left hanging; any thread can kill.
``docs/supervisors.md`` maps each difference from pykka.
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Self

import pykka
from pykka import ActorDeadError, ActorRef, ActorRegistry, Timeout
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from supervisors import _registry
from supervisors._errors import NoProc, StartError
from supervisors._flag import Flag
from supervisors._inbox import Inbox, Wake, dead_error, fail
from supervisors._log import describe_reason, logger, safe_repr
from supervisors._messages import Down, ExitSignal, MonitorRef, Reason, Reject, is_normal
from supervisors._threads import run_pooled

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Actor", "actor_of", "pending_spawn_options", "spawn_options"]

ExcInfo = tuple[type[BaseException], BaseException, "TracebackType | None"]

# ------------------------------------------------------------------------- URNs

# A private generator (user code may call random.seed()), seeded from os.urandom,
# reseeded in a forked child. A urandom syscall per actor (uuid.uuid4()) costs
# about 3x more; URNs are identifiers, not secrets. See docs/supervisors.md.
_rng = random.Random()
os.register_at_fork(after_in_child=_rng.seed)
_getrandbits = _rng.getrandbits
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def _new_urn() -> str:
    """A random (version 4) UUID URN, ``urn:uuid:...``, as pykka's ``uuid.uuid4().urn``."""
    h = f"{(_getrandbits(128) & _V4_CLEAR) | _V4_SET:032x}"
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# ------------------------------------------------------------------- spawn options
# Supervisors use these to register a child's name and link it to themselves before
# the child's thread runs; they travel in a thread-local, as ChildSpec.start is any callable.


@dataclass
class SpawnOptions:
    """What the next ``Actor.start`` in this thread applies before its thread runs."""

    name: str | None = None
    link: Actor | None = None
    restarts: int = 0
    monitor: Actor | None = None
    first_envelope: Any = None
    consumed: bool = False
    actor: Actor | None = None  # the actor that took these options
    monitor_ref: MonitorRef | None = None  # set when ``monitor`` was given


_spawn_local = threading.local()


class spawn_options:
    """Context manager: options for the next :meth:`Actor.start` in this thread.

    Supervisors use it to register a child's name and link it to themselves
    *before* the child's thread runs, so no crash can slip between start and link.
    Only the first ``Actor.start`` call in the block takes the options.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        link: Actor | None = None,
        restarts: int = 0,
        monitor: Actor | None = None,
        first_message: Any = None,
        first_reply_to: pykka.Future[Any] | None = None,
    ):
        envelope = None
        if first_message is not None:
            envelope = Envelope(first_message, reply_to=first_reply_to)
        self.options = SpawnOptions(
            name=name, link=link, restarts=restarts, monitor=monitor, first_envelope=envelope
        )
        self._previous: SpawnOptions | None = None

    def __enter__(self) -> SpawnOptions:
        self._previous = getattr(_spawn_local, "options", None)
        _spawn_local.options = self.options
        return self.options

    def __exit__(self, *exc: object) -> None:
        _spawn_local.options = self._previous


def pending_spawn_options() -> SpawnOptions | None:
    """The options the next ``Actor.start`` in this thread will take, if any."""
    options: SpawnOptions | None = getattr(_spawn_local, "options", None)
    if options is None or options.consumed:
        return None
    return options


def take_spawn_options() -> SpawnOptions | None:
    """Take the pending options (``Actor.start`` does this once per block)."""
    options = pending_spawn_options()
    if options is not None:
        options.consumed = True
    return options


# ------------------------------------------------------------------------ watchers


class _ActorWatcher:
    """Delivers notifications to an actor as ordinary messages."""

    __slots__ = ("ref",)

    def __init__(self, ref: ActorRef[Any]) -> None:
        self.ref = ref

    def __call__(self, message: Any) -> None:
        try:
            self.ref.tell(message)
        except ActorDeadError:
            pass


_NO_REPLY: Any = object()
"""No reply given to :meth:`Actor.reply_and_exit`: the ending ask gets ``ActorDeadError``."""


class _SelfExit(BaseException):
    """Raised by :meth:`Actor.exit` to leave the handler and end the actor with a reason."""

    def __init__(self, reason: Reason, reply: Any = _NO_REPLY) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reply = reply


class _Killed(BaseException):
    """Unwinds the thread of an actor that was killed while inside ``receive``."""


def actor_of(ref: ActorRef[Any]) -> Actor | None:
    """Return the :class:`Actor` behind ``ref``, or ``None`` if it is gone or not ours."""
    actor = ref._actor_weakref()
    # Actor is an ABC (as pykka.Actor is): isinstance() would run ABCMeta's Python
    # __instancecheck__; the MRO says the same for real subclasses, in C.
    return actor if actor is not None and Actor in type(actor).__mro__ else None


@dataclass(slots=True)
class _Ending:
    """Why the running phase of an actor's loop ended, and whom to answer after the end."""

    reason: Reason = "normal"
    crashed: bool = False
    exc_info: ExcInfo | None = None
    crash_envelope: Envelope[Any] | None = None  # answered after the actor is gone
    stop_envelope: Envelope[Any] | None = None
    killed: bool = False
    reply: Any = _NO_REPLY  # what crash_envelope's asker gets (reply_and_exit)


_KILLED = _Ending(killed=True)


# --------------------------------------------------------------------------- actor


class Actor(pykka.ThreadingActor):
    """A pykka ``ThreadingActor`` that behaves like an OTP process.

    Subclass it as you would ``pykka.ThreadingActor`` (``on_start``, ``on_receive``,
    ``on_stop``, ``on_failure``, proxy methods). Differences:

    * ``start()`` blocks until ``on_start`` has finished (bounded by
      :attr:`start_timeout`) and raises :class:`StartError` if it failed.
    * Any exception escaping a handler, for ``tell`` *and* ``ask``, crashes the
      actor: the asker receives the exception, then the actor ends with the
      exception as its exit reason, ``on_failure`` runs (``on_stop`` does not),
      monitors get :class:`Down` and links get :class:`ExitSignal`.
    * ``self.monitor(ref)``, ``self.demonitor(mref)``, ``self.link(ref)``,
      ``self.unlink(ref)``; set ``trap_exits = True`` to receive linked exits as
      messages instead of dying with them.
    * ``self.receive(match, timeout)`` waits, inside a handler, for a specific
      message (selective receive); other messages keep their order.
    * ``self.exit(reason)`` ends the actor now with ``reason``.
    * Threads are daemon threads: an abandoned (killed) actor never keeps the
      interpreter alive.

    Threading: hooks and handlers run in the actor's own thread; ``__init__`` runs
    in the thread that called ``start()``.
    """

    trap_exits: ClassVar[bool] = False
    """If ``True``, exits of linked actors arrive as :class:`ExitSignal` messages."""

    use_daemon_thread: ClassVar[bool] = True

    log_crashes: ClassVar[bool] = True
    """If ``False``, a crash is not logged as ``actor_crashed`` (for actors whose
    crashes are expected and reported by their owner, such as I/O workers)."""

    actor_inbox: Inbox

    register_in_pykka: ClassVar[bool] = True
    """If ``False``, the actor is not added to ``pykka.ActorRegistry`` (for internal,
    supervised, short-lived actors: the registry is one global list under one lock)."""

    reuse_threads: ClassVar[bool] = False
    """If ``True``, the actor runs on a pooled thread that is reused after it ends
    (see ``supervisors._threads``): for short-lived actors, where starting an OS
    thread would cost more than the actor's work."""

    start_timeout: ClassVar[float] = 30.0
    """Seconds ``start()`` waits for ``on_start``; past it the actor is killed and
    :class:`StartError` (reason ``"timeout"``) raised."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # pykka.Actor.__init__, with a cheaper UUID URN (see _new_urn).
        self.actor_urn = _new_urn()
        self.actor_inbox = self._create_actor_inbox()
        self.actor_stopped = Flag()
        self._actor_ref = ActorRef(self)
        self.actor_inbox.owner = (type(self).__name__, self.actor_urn)  # str(self), if needed
        self._sv_lock = threading.Lock()
        self._sv_terminated = False  # marked dead: is_alive() False, name released
        self._sv_exited = False  # ended: monitors, links and supervisor were told
        self._sv_killed = False
        self._sv_exit_reason: Reason | None = None
        self._sv_links: dict[str, Actor] = {}
        self._sv_watchers: dict[MonitorRef, Callable[[Any], None]] = {}
        self._sv_monitoring: dict[MonitorRef, Actor | None] = {}
        self._sv_flushed: set[MonitorRef] = set()
        self._sv_stash: deque[Envelope[Any]] = deque()
        self._sv_current: Envelope[Any] | None = None
        self._sv_ending: _Ending | None = None  # set while the last hook runs
        self._sv_started = Flag()
        self._sv_start_error: BaseException | str | None = None
        self._sv_name: str | None = None
        self._sv_restarts = 0
        self._sv_parent_urn: str | None = None
        self._sv_thread: threading.Thread | None = None
        self._sv_after_exit: Callable[[], None] | None = None
        self._sv_done = Flag()  # the loop returned, or a kill abandoned it

    # ------------------------------------------------------------------ starting

    @staticmethod
    def _create_actor_inbox() -> Inbox:
        return Inbox()

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> ActorRef[Self]:
        """Create the actor, run ``on_start`` in its thread, and return its ref.

        Blocks until ``on_start`` returned (at most :attr:`start_timeout` seconds).
        Arguments go to ``__init__``. Inside a :class:`spawn_options` block the
        actor is also registered under a name and linked to a parent before its
        thread starts.

        Raises:
            StartError: ``on_start`` raised (the exception is ``reason`` and
                ``__cause__``) or timed out; the actor is dead.
            AlreadyStarted: the requested name is bound to a live actor.
        """
        options = take_spawn_options()
        obj = cls(*args, **kwargs)
        ref = obj.actor_ref
        if cls.register_in_pykka:
            ActorRegistry.register(ref)
        if options is not None:
            obj._sv_apply_spawn_options(options)
        obj._start_actor_loop()
        if cls.on_start is not pykka.Actor.on_start:
            obj._sv_await_start()
        # else nothing can fail before the first message: no handshake needed
        return ref

    def _sv_apply_spawn_options(self, options: SpawnOptions) -> None:
        """Name, monitor, first message and link, before the thread runs (caller's thread)."""
        options.actor = self
        self._sv_restarts = options.restarts
        if options.name is not None:
            try:
                _registry.register(options.name, self.actor_ref)
            except BaseException:
                if self.register_in_pykka:
                    ActorRegistry.unregister(self.actor_ref)
                self.actor_stopped.set()
                raise
        if options.monitor is not None:
            mref = MonitorRef()
            self._sv_watchers[mref] = _ActorWatcher(options.monitor.actor_ref)
            options.monitor._sv_monitoring[mref] = self
            options.monitor_ref = mref
        if options.first_envelope is not None:
            self.actor_inbox.put(options.first_envelope)
        if options.link is not None:
            self._sv_parent_urn = options.link.actor_urn
            self._sv_add_link(options.link)
            if not options.link._sv_add_link(self):
                self._sv_links.clear()
                self._sv_terminate("noproc")
                self._sv_done.set()  # its thread never runs
                raise StartError(str(self), "parent_dead")

    def _sv_await_start(self) -> None:
        """Wait for ``on_start`` in the caller's thread; raise :class:`StartError` if it failed."""
        if not self._sv_started.wait(self.start_timeout):
            self._kill("killed")
            raise StartError(str(self), "timeout")
        error = self._sv_start_error
        if error is not None:
            if isinstance(error, BaseException):
                raise StartError(str(self), error) from error
            raise StartError(str(self), error)

    def _start_actor_loop(self) -> None:
        if self.reuse_threads:
            self._sv_thread = run_pooled(self._sv_loop, self._sv_done.set)
            return
        name = self._sv_name or type(self).__name__
        thread = threading.Thread(target=self._actor_loop, name=f"sv:{name}", daemon=True)
        self._sv_thread = thread
        thread.start()

    # --------------------------------------------------------------------- loop
    # As pykka's: setup (on_start), running (handle messages), teardown (hooks,
    # then the exit is announced). Runs in the actor's own thread.

    def _actor_loop(self) -> None:
        try:
            self._sv_loop()
        finally:
            self._sv_done.set()

    def _sv_loop(self) -> None:
        if not self._sv_loop_setup():
            return
        ending = self._sv_loop_running()
        if not ending.killed:
            self._sv_loop_teardown(ending)

    def _sv_loop_setup(self) -> bool:
        """Run ``on_start``; on failure end the actor (``start()`` raises). ``False`` if ended."""
        try:
            self.on_start()
        except _SelfExit as exit_:
            self._sv_start_failed(exit_.reason)
            return False
        except BaseException as exc:
            logger.error(
                "actor_crashed",
                actor=str(self),
                where="on_start",
                reason=describe_reason(exc),
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            self._sv_start_failed(exc)
            return False
        self._sv_started.set()
        return not self._sv_killed

    def _sv_start_failed(self, reason: BaseException | str) -> None:
        self._sv_start_error = reason
        self._sv_links.clear()  # the starter hears it from start(); links stay quiet
        self._sv_terminate(reason)
        self._sv_started.set()

    def _sv_next(self) -> Any:
        if self._sv_stash:
            return self._sv_stash.popleft()
        return self.actor_inbox.get()

    def _sv_loop_running(self) -> _Ending:
        """Handle messages until a stop request, an exit, a crash or a kill."""
        flushed = self._sv_flushed
        while True:
            envelope = self._sv_next()
            if self._sv_killed:
                if envelope is not Wake:
                    fail(envelope, dead_error(str(self)))
                return _KILLED
            if envelope is Wake:
                continue
            message = envelope.message
            if isinstance(message, _ActorStop):
                return _Ending(stop_envelope=envelope)
            if isinstance(message, _StopWith):
                return _Ending(reason=message.reason, stop_envelope=envelope)
            if flushed and isinstance(message, Down) and message.ref in flushed:
                flushed.discard(message.ref)
                continue
            ending = self._sv_handle(envelope)
            if ending is not None:
                return ending

    def _sv_handle(self, envelope: Envelope[Any]) -> _Ending | None:
        """Run the handler for one message and answer it; an ``_Ending`` if the actor ends.

        An asker whose handler crashed the actor is answered in teardown, after the
        actor is gone (as a ``gen_server`` caller hears of a crash).
        """
        self._sv_current = envelope
        ending: _Ending | None
        try:
            result = self._handle_receive(envelope.message)
        except _SelfExit as exit_:
            reason = exit_.reason
            ending = _Ending(reason, not is_normal(reason), None, envelope, reply=exit_.reply)
        except _Killed:
            ending = _KILLED
        except BaseException as exc:
            ending = _Ending(exc, True, (type(exc), exc, exc.__traceback__), envelope)
        else:
            ending = None
        self._sv_current = None
        if self._sv_killed:
            fail(envelope, dead_error(str(self)))
            return _KILLED
        if ending is None:
            if type(result) is Reject:
                self._sv_reject(envelope, result.error)
            elif envelope.reply_to is not None:
                try:
                    envelope.reply_to.set(result)
                except queue.Full:
                    pass
        return ending

    def _sv_reject(self, envelope: Envelope[Any], error: BaseException) -> None:
        """Answer an ask with ``error`` (the handler returned ``Reject``); log a tell's."""
        if envelope.reply_to is None:
            logger.warning("message_rejected", actor=str(self), error=safe_repr(error), ask=False)
            return
        try:
            envelope.reply_to.set_exception(exc_info=(type(error), error, error.__traceback__))
        except queue.Full:
            pass

    def _sv_loop_teardown(self, ending: _Ending) -> None:
        """End the actor: dead to the world, then hooks, then the exit is announced.

        As pykka: ``is_alive()`` is ``False`` and the actor is unregistered (and its
        name released) before ``on_stop`` / ``on_failure`` run. As OTP: monitors,
        links and the supervisor are told, with the final reason, after the hooks.
        """
        if ending.crashed and self.log_crashes:
            logger.error(
                "actor_crashed",
                actor=str(self),
                name=self._sv_name,
                reason=describe_reason(ending.reason),
                exc_info=ending.exc_info,
            )
        self._sv_mark_dead(ending.reason)
        self._sv_ending = ending  # a kill during the hook answers the last asker at once
        reason = self._sv_run_exit_hook(ending)
        self._sv_ending = None
        self._sv_announce_exit(reason)
        self._sv_answer_last(ending)
        after = self._sv_after_exit
        if after is not None and not self._sv_killed:
            try:
                after()
            except Exception as exc:
                logger.error("after_exit_failed", actor=str(self), reason=describe_reason(exc))

    def _sv_run_exit_hook(self, ending: _Ending) -> Reason:
        """Run ``on_failure`` (a crash by exception) or ``on_stop``; return the exit reason.

        A crash by :meth:`exit` with an abnormal reason runs neither. An exception
        in ``on_stop`` becomes the exit reason; one in ``on_failure`` is logged.
        Neither runs once the actor was killed.
        """
        if self._sv_killed:
            return ending.reason
        if ending.crashed:
            if ending.exc_info is not None:
                try:
                    self.on_failure(*ending.exc_info)
                except Exception as exc:
                    logger.error("on_failure_failed", actor=str(self), reason=describe_reason(exc))
            return ending.reason
        try:
            self.on_stop()
        except BaseException as exc:
            logger.error(
                "actor_crashed",
                actor=str(self),
                name=self._sv_name,
                reason=describe_reason(exc),
                where="on_stop",
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            return exc
        return ending.reason

    def _sv_answer_last(self, ending: _Ending) -> None:
        """Answer the asker whose message ended the actor, now that it is gone."""
        crash_envelope, stop_envelope = ending.crash_envelope, ending.stop_envelope
        if crash_envelope is not None:
            if ending.reply is not _NO_REPLY:
                if crash_envelope.reply_to is not None:
                    try:
                        crash_envelope.reply_to.set(ending.reply)
                    except queue.Full:
                        pass
            elif ending.exc_info is None:
                fail(crash_envelope, dead_error(str(self)))
            elif crash_envelope.reply_to is not None:
                try:
                    crash_envelope.reply_to.set_exception(exc_info=ending.exc_info)
                except queue.Full:
                    pass
        if stop_envelope is not None and stop_envelope.reply_to is not None:
            try:
                stop_envelope.reply_to.set(None)
            except queue.Full:
                pass

    # ----------------------------------------------------------------- ending

    def _sv_mark_dead(self, reason: Reason) -> bool:
        """First half of the end: close the inbox, release the name, mark not alive.

        Every pending ask is answered with ``ActorDeadError``. Nobody is notified
        yet (see :meth:`_sv_announce_exit`). Runs once; ``False`` if already done.
        Runs in the actor's thread, or in the killer's thread for :meth:`_kill`.
        """
        with self._sv_lock:  # held throughout, so a racing announce waits for the name
            if self._sv_terminated:
                return False
            self._sv_terminated = True
            self._sv_set_reason(reason)
            drained = self.actor_inbox.close_and_drain()
            drained[:0] = self._sv_stash
            self._sv_stash.clear()
            # The name goes first: whoever hears of the death can rebind it at once.
            if self._sv_name is not None:
                _registry._release(self._sv_name, self.actor_ref)
            if self.register_in_pykka:
                ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
        if drained:
            error = dead_error(str(self))
            for envelope in drained:
                fail(envelope, error)
        return True

    def _sv_announce_exit(self, reason: Reason) -> bool:
        """Second half of the end: tell monitors (``Down``) and links (exit) ``reason``.

        Call after :meth:`_sv_mark_dead` returned (in any thread), so the name is
        free before anyone hears. Runs once; ``False`` if the exit was already
        announced (a kill got there first).
        """
        with self._sv_lock:
            if self._sv_exited:
                return False
            self._sv_exited = True
            if reason is not self._sv_exit_reason:  # a hook changed it (on_stop raised)
                self._sv_set_reason(reason)
            links = list(self._sv_links.values())
            self._sv_links.clear()
            watchers = list(self._sv_watchers.items())
            self._sv_watchers.clear()
            monitoring = list(self._sv_monitoring.items())
            self._sv_monitoring.clear()
        for mref, target in monitoring:
            if target is not None:
                target._sv_remove_watcher(mref)
        ref = self.actor_ref
        for mref, watcher in watchers:
            try:
                watcher(Down(mref, ref, reason))
            except Exception as exc:
                logger.error("monitor_delivery_failed", actor=str(self), error=safe_repr(exc))
        for peer in links:
            peer._sv_on_link_exit(self, reason)
        self._sv_started.set()
        return True

    def _sv_set_reason(self, reason: Reason) -> None:
        self._sv_exit_reason = reason
        # Kept on the ref too: it outlives this object (refs hold a weakref).
        self.actor_ref._sv_exit = (reason, self._sv_name)  # type: ignore[attr-defined]

    def _sv_terminate(self, reason: Reason) -> bool:
        """End the actor at once, both halves, with no hook (start failures, kill)."""
        self._sv_mark_dead(reason)
        return self._sv_announce_exit(reason)

    def _kill(self, reason: Reason = "killed", *, quiet: bool = False) -> bool:
        """End this actor now, from any thread; see :func:`supervisors.kill`.

        The actor is unregistered and marked dead, every pending and later ask is
        answered with ``ActorDeadError``, monitors and links are told ``reason``.
        If its thread is busy in a handler or a hook, the thread is abandoned: it is
        a daemon thread, and it exits at its next message boundary without running
        any more handlers or hooks. Returns ``False`` if the actor had already ended.
        """
        self._sv_killed = True
        current, ending = self._sv_current, self._sv_ending
        ended = self._sv_terminate(reason)
        self._sv_done.set()  # nobody need wait for the abandoned thread
        if ended:
            self._sv_run_on_kill()
            if current is not None:
                fail(current, dead_error(str(self)))
            if ending is not None:
                self._sv_answer_last(ending)
            if not quiet:  # owners that kill their own helpers report it themselves
                logger.warning(
                    "actor_killed",
                    actor=str(self),
                    name=self._sv_name,
                    reason=describe_reason(reason),
                )
        self.actor_inbox.wake()
        return ended

    def on_kill(self) -> None:
        """Called once when this actor is killed (:func:`supervisors.kill`, or a link's
        abnormal exit), in the *killer's* thread, while the actor's own thread may still
        be busy in a handler. For unblocking that abandoned thread: close the socket or
        file it is blocked on, set the event it waits for. Must be quick, must not
        block; an exception is logged (``on_kill_failed``) and ignored. No other hook
        runs on a kill. Does nothing by default.
        """

    def _sv_run_on_kill(self) -> None:
        try:
            self.on_kill()
        except Exception as exc:
            logger.error("on_kill_failed", actor=str(self), error=safe_repr(exc))

    def _sv_wait_exit(self, timeout: float | None) -> bool:
        """Wait until the actor has ended for good (hooks ran, exit announced) or was killed."""
        return self._sv_done.wait(timeout)

    def exit_then(self, action: Callable[[], None], reason: Reason = "normal") -> None:
        """Like :meth:`exit`, then run ``action`` in this thread once the actor has ended.

        For an actor whose last act is to hand a result to someone: the receiver is
        woken only after this actor is gone, instead of competing (for the GIL) with
        its teardown. ``action`` is skipped if the actor is killed first.
        """
        self._sv_after_exit = action
        raise _SelfExit(reason)

    def reply_and_exit(self, reply: Any, reason: Reason = "normal") -> NoReturn:
        """End this actor now with ``reason`` and answer the ask being handled with
        ``reply`` once the actor has ended (OTP's ``{stop, Reason, Reply, State}``).

        As :meth:`exit` (hooks run, then monitors and links are told), except that
        the asker gets ``reply`` instead of ``ActorDeadError``, after the exit was
        announced: it wakes up when there is nothing left for this thread to do, so
        it does not compete (for the GIL) with the teardown. A kill before the end
        answers ``ActorDeadError``; a kill during ``on_stop`` answers ``reply`` at
        once. Call only from the actor's own thread, inside a handler; a told
        message has no one to answer.
        """
        raise _SelfExit(reason, reply)

    @property
    def parent_urn(self) -> str | None:
        """The URN of the actor this one was spawned linked to (its supervisor), or ``None``."""
        return self._sv_parent_urn

    @property
    def restart_count(self) -> int:
        """How many times the supervisor had restarted this child before this instance."""
        return self._sv_restarts

    def drop_monitors_of(self, watcher_ref: ActorRef[Any]) -> None:
        """Drop the monitors ``watcher_ref`` holds on this actor, so it gets no ``Down``.

        For an actor whose owner already has its answer (an I/O worker handing over
        its result): the owner need not be told of the normal exit that follows.
        Safe from any thread.
        """
        self._sv_forget_watcher_of(watcher_ref)

    def _sv_forget_watcher_of(self, watcher_ref: ActorRef[Any]) -> None:
        """Drop the monitors ``watcher_ref`` holds on this actor (it needs no ``Down``)."""
        with self._sv_lock:
            for mref, watcher in list(self._sv_watchers.items()):
                if isinstance(watcher, _ActorWatcher) and watcher.ref is watcher_ref:
                    del self._sv_watchers[mref]

    def exit(self, reason: Reason = "normal") -> None:
        """End this actor now with ``reason``; call only from the actor's own thread.

        Leaves the current handler (by raising a private ``BaseException``), skips
        the rest of the mailbox (pending asks get ``ActorDeadError``), runs
        ``on_stop`` for normal reasons and ``on_failure`` for none, then notifies.
        A non-normal reason is treated as a crash by supervisors.
        """
        raise _SelfExit(reason)

    # ---------------------------------------------------------- links, monitors

    def _sv_add_link(self, peer: Actor) -> bool:
        # Only while alive: a supervisor shutting down its children takes no new one.
        with self._sv_lock:
            if self._sv_terminated:
                return False
            self._sv_links[peer.actor_urn] = peer
            return True

    def _sv_on_link_exit(self, peer: Actor, reason: Reason) -> None:
        with self._sv_lock:
            if self._sv_exited or self._sv_links.pop(peer.actor_urn, None) is None:
                return
        if self.trap_exits:
            try:
                self.actor_ref.tell(ExitSignal(peer.actor_ref, reason))
            except ActorDeadError:
                pass
        elif reason != "normal":
            self._kill(reason)

    def _sv_add_watcher(self, mref: MonitorRef, watcher: Callable[[Any], None]) -> bool:
        # Until the exit is announced: a monitor set while the actor runs its last
        # hook gets the real reason, not "noproc".
        with self._sv_lock:
            if self._sv_exited:
                return False
            self._sv_watchers[mref] = watcher
            return True

    def _sv_remove_watcher(self, mref: MonitorRef) -> bool:
        with self._sv_lock:
            return self._sv_watchers.pop(mref, None) is not None

    def link(self, other: ActorRef[Any]) -> None:
        """Link this actor and ``other``: an abnormal exit of either reaches the other.

        Call from the actor's own thread. If ``other`` is already dead, an actor
        that traps exits receives ``ExitSignal(other, "noproc")``; otherwise
        :class:`NoProc` is raised.
        """
        peer = actor_of(other)
        if peer is None or not peer._sv_add_link(self):
            if self.trap_exits:
                self.actor_ref.tell(ExitSignal(other, "noproc"))
                return
            raise NoProc(other)
        if not self._sv_add_link(peer):
            peer._sv_on_link_exit(self, self._sv_exit_reason or "noproc")

    def unlink(self, other: ActorRef[Any]) -> None:
        """Remove the link with ``other`` (both directions). Unlinking twice is a no-op."""
        peer = actor_of(other)
        with self._sv_lock:
            self._sv_links.pop(other.actor_urn, None)
        if peer is not None:
            with peer._sv_lock:
                peer._sv_links.pop(self.actor_urn, None)

    def monitor(self, other: ActorRef[Any]) -> MonitorRef:
        """Watch ``other``: when it ends, ``Down(ref, other, reason)`` arrives as a message.

        One-way and stackable (each call makes a new monitor). If ``other`` is
        already dead, ``Down`` with reason ``"noproc"`` arrives at once.
        """
        mref = MonitorRef()
        target = actor_of(other)
        watcher = _ActorWatcher(self.actor_ref)
        if target is None or not target._sv_add_watcher(mref, watcher):
            watcher(Down(mref, other, "noproc"))
            return mref
        self._sv_monitoring[mref] = target
        return mref

    def demonitor(self, mref: MonitorRef, *, flush: bool = True) -> bool:
        """Stop the monitor ``mref``. With ``flush``, a ``Down`` already queued is dropped.

        Returns ``True`` if the monitor was still active.
        """
        target = self._sv_monitoring.pop(mref, None)
        active = target._sv_remove_watcher(mref) if target is not None else False
        if flush and not active:
            self._sv_flushed.add(mref)
        return active

    # ------------------------------------------------------------------ receive

    def receive(self, match: Callable[[Any], bool], timeout: float) -> Any:
        """Wait, inside a handler, for the first told message for which ``match`` is true.

        Messages that do not match (and every ``ask``) stay in the mailbox in
        their order and are handled after the current handler returns. Only
        call from the actor's own thread.

        Raises:
            pykka.Timeout: no matching message within ``timeout`` seconds.
        """
        stash = self._sv_stash
        for index, envelope in enumerate(stash):
            if envelope.reply_to is None and match(envelope.message):
                del stash[index]
                return envelope.message
        deadline = time.monotonic() + timeout
        get = self.actor_inbox.get
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"no matching message within {timeout} s")
            try:
                envelope = get(timeout=remaining)
            except queue.Empty:
                continue
            if self._sv_killed:
                raise _Killed
            if envelope is Wake:
                continue
            message = envelope.message
            if (
                envelope.reply_to is None
                and not (isinstance(message, Down) and message.ref in self._sv_flushed)
                and match(message)
            ):
                return message
            stash.append(envelope)

    # -------------------------------------------------------------- introspection

    @property
    def name(self) -> str | None:
        """The registered name, if any."""
        return self._sv_name

    @property
    def exit_reason(self) -> Reason | None:
        """The exit reason once the actor has ended, else ``None``."""
        return self._sv_exit_reason

    def mailbox_size(self) -> int:
        """Messages waiting (including those set aside by :meth:`receive`). Any thread."""
        return self.actor_inbox.qsize() + len(self._sv_stash)

    def describe(self) -> str | None:
        """A one-line status for ``format_tree``; override to show what the actor is doing.

        Called from the *introspecting* thread, not the actor's: read only simple
        attributes, take no locks the actor may hold, never block.
        """
        return None

    def get_state(self) -> dict[str, Any]:
        """The state shown by :func:`supervisors.get_state`; runs in the actor's thread.

        The default is a shallow copy of the public instance attributes.
        """
        hidden = ("actor_urn", "actor_inbox", "actor_stopped")
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in hidden}


class _StopWith:
    """Internal message: stop gracefully (run ``on_stop``) with a given exit reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: Reason) -> None:
        self.reason = reason
