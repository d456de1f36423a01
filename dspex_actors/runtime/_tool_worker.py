"""Tool calls as I/O tasks of the program actor: one short-lived :class:`ToolWorker` each.

A tool call is owned by the program actor exactly like an LM call: the program
spawns a worker (linked, so a killed program takes it down; monitored, so its crash
arrives as a ``Down``), waits for its result, a ``Down`` or a cancellation, and
bounds the wait by the tool's ``timeout`` and the request's deadline. A worker past
its timeout is killed: its thread (not pooled) finishes the user function it is
stuck in, hands its result to no one, and ends.
"""

from __future__ import annotations

import itertools
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

import supervisors as sv
from dspex_actors.primitives import DeadlineExceeded, logger

if TYPE_CHECKING:
    from dspex_actors.runtime._program import ProgramActor

__all__ = [
    "ToolFailure",
    "ToolRaised",
    "ToolWorker",
    "call_tool",
    "current_tool_worker",
    "format_error_for_lm",
]

_call_ids = itertools.count(1)
_local = threading.local()


def current_tool_worker() -> ToolWorker | None:
    """The tool worker whose tool is running in this thread, if any."""
    worker: ToolWorker | None = getattr(_local, "worker", None)
    return worker


@dataclass(frozen=True, slots=True)
class _RunTool:
    """Program -> tool worker (tell, its first message): run the call now."""


@dataclass(frozen=True, slots=True)
class _ToolDone:
    """Tool worker -> program (tell): the result of call ``call_id``."""

    call_id: int
    result: Any


@dataclass(frozen=True, slots=True)
class ToolFailure:
    """Why a tool call gave no result: ``kind`` is ``"error"`` (the tool raised or its
    worker died), ``"timeout"`` (killed after ``timeout`` seconds); ``attempts`` made."""

    kind: str
    error: BaseException | None
    detail: str
    attempts: int


class ToolRaised(Exception):
    """The crash reason of a tool worker whose tool raised: the tool's exception and
    its traceback text from the tool's own frames (DSPy's ``format_error_for_lm``
    with 5 frames), made in the worker's thread."""

    def __init__(self, error: Exception) -> None:
        tb = error.__traceback__
        tb = tb.tb_next if tb is not None else None  # from the tool's frames on
        lines = traceback.format_exception(type(error), error, tb, limit=5)
        self.error = error
        self.text = "\n" + "".join(lines).strip()
        super().__init__(f"{type(error).__name__}: {error}")


class ToolWorker(sv.Actor):
    """Runs one tool call for one program actor, then exits.

    On success it sends the result straight to the program (after it has ended, as
    :class:`~dspex_actors.runtime._program.IOWorker` does); when the tool raises, the
    worker crashes with that exception and the program receives it as a ``Down``.
    Its threads are not pooled: a killed worker's thread ends when the tool returns.
    """

    log_crashes = False
    reuse_threads = False
    register_in_pykka = False

    def __init__(
        self, call: Callable[[], Any], program: pykka.ActorRef[Any], call_id: int, label: str
    ) -> None:
        super().__init__()
        self._call = call
        self._program = program
        self._call_id = call_id
        self._label = label

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, _RunTool):
            return None
        _local.worker = self
        try:
            result = self._call()
        except Exception as exc:  # the worker crashes; the program gets the Down
            raise ToolRaised(exc) from exc
        finally:
            _local.worker = None
        self.unlink(self._program)
        self.drop_monitors_of(self._program)
        program, done = self._program, _ToolDone(self._call_id, result)

        def hand_over() -> None:
            try:
                program.tell(done)
            except pykka.ActorDeadError:
                pass  # the program gave up (timeout, deadline, cancel) meanwhile

        self.exit_then(hand_over)
        return None

    def describe(self) -> str | None:
        return f"tool {self._label}"


def call_tool(
    program: ProgramActor,
    call: Callable[[], Any],
    *,
    label: str,
    timeout: float | None,
    max_retries: int,
) -> Any:
    """Run ``call()`` in a fresh worker owned by ``program``; its result or a :class:`ToolFailure`.

    Actor thread of ``program`` only. A crashed call is retried up to ``max_retries``
    times; a call past ``timeout`` seconds (or the request's deadline) is killed and
    not retried.

    Raises:
        Cancelled: the caller cancelled the request (the worker is killed first).
        DeadlineExceeded: the request's deadline passed while the tool ran.
    """
    attempts = 0
    while True:
        attempts += 1
        outcome = _one_call(program, call, label=label, timeout=timeout, attempts=attempts)
        if not isinstance(outcome, ToolFailure):
            return outcome
        if outcome.kind != "error" or attempts > max_retries:
            return outcome
        logger.debug("tool.retry", tool=label, attempt=attempts, error=outcome.detail)


def _one_call(
    program: ProgramActor,
    call: Callable[[], Any],
    *,
    label: str,
    timeout: float | None,
    attempts: int,
) -> Any:
    from dspex_actors.runtime._program import Cancelled

    call_id = next(_call_ids)
    remaining = program.remaining()
    if remaining <= 0:
        raise DeadlineExceeded("request deadline passed before a tool call", attempts=1)
    wait = remaining if timeout is None else min(timeout, remaining)
    with sv.spawn_options(link=program, monitor=program, first_message=_RunTool()) as options:
        ref = ToolWorker.start(call, program.actor_ref, call_id, label)
    worker = sv.actor_of(ref)
    mref = options.monitor_ref
    assert worker is not None and mref is not None
    program._workers[worker.actor_urn] = worker

    def match(message: Any) -> bool:
        return (
            (isinstance(message, _ToolDone) and message.call_id == call_id)
            or (isinstance(message, sv.Down) and message.ref == mref)
            or program._is_cancel(message)
        )

    try:
        message = program.receive(match, timeout=max(wait, 0.0))
    except pykka.Timeout:
        sv.kill(worker, "killed", quiet=True)
        program.demonitor(mref)
        program._workers.pop(worker.actor_urn, None)
        if timeout is None or timeout >= remaining:
            raise DeadlineExceeded(
                f"request deadline passed while tool {label} ran", attempts=1
            ) from None
        logger.debug("tool.timeout", tool=label, timeout_s=timeout)
        return ToolFailure("timeout", None, f"timed out after {timeout:g} s", attempts)
    program._workers.pop(worker.actor_urn, None)
    if program._is_cancel(message):
        sv.kill(worker, "shutdown", quiet=True)
        raise Cancelled("the caller cancelled the request", attempts=1)
    if isinstance(message, _ToolDone):
        program.demonitor(mref, flush=False)
        return message.result
    reason = message.reason
    logger.debug("tool.crashed", tool=label, reason=sv.describe_reason(reason))
    if isinstance(reason, ToolRaised):
        return ToolFailure("error", reason.error, reason.text, attempts)
    return ToolFailure(
        "error", None, f"tool worker ended without a result: {sv.describe_reason(reason)}", attempts
    )


def format_error_for_lm(error: BaseException, traceback_frames: int = 0) -> str:
    """An exception as DSPy 3.4.1 feeds it back to an LM (``format_error_for_lm``):
    ``str(error)``, or a newline and a traceback of at most ``traceback_frames`` frames."""
    if traceback_frames <= 0:
        return str(error)
    lines = traceback.format_exception(
        type(error), error, error.__traceback__, limit=traceback_frames
    )
    return "\n" + "".join(lines).strip()
