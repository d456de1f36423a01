"""Task supervisors: one-off functions run as supervised, unlinked actors.

As Elixir's ``Task.Supervisor``: :func:`async_nolink` runs a function in a new
temporary child of a :class:`TaskSupervisor`, not linked to the caller. The caller
gets a :class:`Task` handle (``await_``, ``yield_``, ``shutdown``); an ``owner``
actor, if given, receives ``TaskResult(ref, value)`` on success or
``Down(ref, actor, reason)`` on a crash, as ordinary messages. :func:`async_stream`
maps a function over an iterable with bounded concurrency (on :func:`fan_out`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, Self

from pykka import ActorDeadError, ActorRef

from supervisors._actor import Actor, actor_of
from supervisors._dynamic import DynamicSupervisor
from supervisors._errors import TaskFailed, Timeout
from supervisors._fanout import FanOut, Slot, fan_out
from supervisors._messages import Down, Exit, MonitorRef, Ok, TaskResult, is_normal
from supervisors._spec import ChildSpec
from supervisors._supervisor import start_child

__all__ = ["Task", "TaskSupervisor", "async_nolink", "async_stream"]

Outcome = Ok[Any] | Exit


class TaskSupervisor(DynamicSupervisor):
    """A dynamic supervisor for tasks (Elixir's ``Task.Supervisor``).

    Tasks are temporary children: never restarted. Stopping the task supervisor
    stops every running task (each gets 5 s, then is killed).
    """

    kind = "task_supervisor"

    @classmethod
    def start(  # type: ignore[override]
        cls,
        *,
        name: str | None = None,
        max_children: int | None = None,
    ) -> ActorRef[Self]:
        """Start a task supervisor; ``name`` registers it."""
        return super().start(max_children=max_children, name=name)


class Task:
    """Handle of a task started by :func:`async_nolink`.

    ``ref`` is the task's monitor reference, the one used in the ``TaskResult`` and
    ``Down`` messages its owner receives; ``actor`` is the task actor's ref.
    Thread-safe; any thread may wait on it.
    """

    def __init__(
        self,
        owner: ActorRef[Any] | None = None,
        listener: Callable[[Task, Outcome], None] | None = None,
    ) -> None:
        self.ref = MonitorRef()
        self.owner = owner
        self.actor: ActorRef[Any] | None = None
        self._listener = listener
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._outcome: Outcome | None = None
        self._awaited = False

    def __repr__(self) -> str:
        state = "running" if self._outcome is None else repr(self._outcome)
        return f"<Task {self.ref!r} {state}>"

    def _complete(self, outcome: Outcome) -> bool:
        with self._lock:
            if self._outcome is not None:
                return False
            self._outcome = outcome
        self._done.set()
        if self._listener is not None:
            self._listener(self, outcome)
        return True

    def _on_down(self, down: Down) -> None:
        """Watcher on the task actor: runs in the thread where the task ended."""
        reason = down.reason
        first = self._complete(Exit(reason))
        if first and self.owner is not None and not is_normal(reason):
            try:
                self.owner.tell(Down(self.ref, down.actor, reason))
            except ActorDeadError:
                pass

    def await_(self, timeout: float = 5.0) -> Any:
        """Wait for the task's value and return it; a task may be awaited once.

        Raises:
            pykka.Timeout: not finished within ``timeout`` s (the task keeps running).
            TaskFailed: the task crashed or was killed; ``reason`` holds the exit
                reason and, for a crash, the exception is the ``__cause__``.
            RuntimeError: awaited twice.
        """
        with self._lock:
            if self._awaited:
                raise RuntimeError(f"{self!r} was already awaited")
            self._awaited = True
        if not self._done.wait(timeout):
            raise Timeout(f"task did not finish within {timeout} s")
        outcome = self._outcome
        if isinstance(outcome, Ok):
            return outcome.value
        assert isinstance(outcome, Exit)
        cause = outcome.reason if isinstance(outcome.reason, BaseException) else None
        raise TaskFailed(outcome.reason) from cause

    def yield_(self, timeout: float = 5.0) -> Outcome | None:
        """Wait up to ``timeout`` s; return ``Ok(value)``, ``Exit(reason)`` or ``None``.

        Repeatable, unlike :meth:`await_`.
        """
        self._done.wait(timeout)
        return self._outcome

    def shutdown(self) -> Outcome | None:
        """Stop the task now; return its outcome if it had already finished, else ``None``.

        A running task is killed with reason ``"shutdown"`` (its thread is
        abandoned and exits when the function returns; the result is dropped).
        """
        if self._outcome is not None:
            return self._outcome
        won = self._complete(Exit("shutdown"))
        if self.actor is not None:
            actor = actor_of(self.actor)
            if actor is not None:
                actor._kill("shutdown")
        return None if won else self._outcome


class _Run:
    """Message that makes a task actor run its function (sent after the watcher is set)."""


_RUN = _Run()


class _TaskActor(Actor):
    """Runs one function once, reports the outcome, and exits normally."""

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], task: Task
    ):
        super().__init__()
        self._fn, self._args, self._kwargs, self._task = fn, args, kwargs, task

    def on_receive(self, message: Any) -> Any:
        if message is _RUN:
            value = self._fn(*self._args, **self._kwargs)
            if self._task._complete(Ok(value)) and self._task.owner is not None:
                try:
                    self._task.owner.tell(TaskResult(self._task.ref, value))
                except ActorDeadError:
                    pass
            self.exit("normal")
        return None

    def describe(self) -> str | None:
        return f"running {getattr(self._fn, '__qualname__', repr(self._fn))}"


def _start_task(
    ts: ActorRef[Any] | str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    task: Task,
) -> Task:
    if not callable(fn):
        raise TypeError(f"a task needs a callable, got {fn!r}")
    spec = ChildSpec(
        id="task",
        start=_TaskActor.start,
        args=(fn, args, kwargs, task),
        restart="temporary",
        shutdown=5.0,
    )
    ref = start_child(ts, spec)
    task.actor = ref
    actor = actor_of(ref)
    if actor is None or not actor._sv_add_watcher(task.ref, task._on_down):
        task._on_down(Down(task.ref, ref, "noproc"))
        return task
    ref.tell(_RUN)
    return task


def async_nolink(
    ts: ActorRef[Any] | str,
    fn: Callable[..., Any],
    *args: Any,
    owner: ActorRef[Any] | None = None,
    **kwargs: Any,
) -> Task:
    """Run ``fn(*args, **kwargs)`` as a temporary child of task supervisor ``ts``.

    Not linked to the caller: a crash of the task never kills the caller. If
    ``owner`` (an actor ref) is given it receives ``TaskResult(task.ref, value)``
    or, on a crash, ``Down(task.ref, task.actor, reason)`` as messages.

    Raises:
        NoProc: ``ts`` is dead or unregistered.
        SupervisorError: ``ts`` is at ``max_children``.
    """
    return _start_task(ts, fn, args, kwargs, Task(owner))


def async_stream(
    ts: ActorRef[Any] | str,
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    max_concurrency: int = 4,
    timeout: float = 5.0,
    ordered: bool = True,
    on_timeout: Literal["kill_task", "exit"] = "kill_task",
) -> Iterator[Outcome]:
    """Map ``fn`` over ``items`` in tasks under ``ts``, at most ``max_concurrency`` at once.

    Yields ``Ok(value)`` or ``Exit(reason)`` per item, in input order when
    ``ordered`` (default), else as they finish. Items are pulled from ``items``
    lazily. Each task gets ``timeout`` seconds from its start; then with
    ``on_timeout="kill_task"`` (default) it is killed and ``Exit("timeout")``
    yielded, with ``"exit"`` every running task is killed and
    :class:`pykka.Timeout` raised. Closing the generator early kills the tasks
    still running: nothing outlives the stream. Runs on :func:`fan_out`: a
    finished result not yet consumed holds its place among the
    ``max_concurrency``.

    Raises (when iterated): what starting a task raises (``NoProc``: ``ts`` is
    gone; ``SupervisorError``: ``ts`` is full).
    """
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency!r}")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    if on_timeout not in ("kill_task", "exit"):
        raise ValueError(f"on_timeout must be 'kill_task' or 'exit', got {on_timeout!r}")

    def launch(item: Any, slot: Slot[Any]) -> ActorRef[Any] | None:
        def listener(_task: Task, outcome: Outcome) -> None:
            slot.settle(outcome)  # False once the stream gave up on it (timeout, cancel)

        task = Task(listener=listener)
        try:
            _start_task(ts, fn, (item,), {}, task)
        except Exception as exc:
            raise _StartFailed(exc) from exc
        return task.actor

    fan = fan_out(
        items,
        launch,
        max_concurrency=max_concurrency,
        timeout=timeout,
        ordered=ordered,
        on_timeout="kill" if on_timeout == "kill_task" else "raise",
    )
    return _stream(fan)


class _StartFailed(Exception):
    """A task of :func:`async_stream` could not be started: ``error`` is raised to the consumer."""

    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error


def _stream(fan: FanOut[Any]) -> Iterator[Outcome]:
    with fan:
        for settled in fan:
            outcome = settled.outcome
            if isinstance(outcome, Exit) and isinstance(outcome.reason, _StartFailed):
                raise outcome.reason.error
            yield outcome
