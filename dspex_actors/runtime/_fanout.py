"""Many program calls at once, through the one fan-out engine (``sv.fan_out``).

:func:`program_stream` runs one call per item, each in its own program actor, at
most N unfinished at once, with the request deadline per item and a kill past it;
:func:`run_many` (``Module.batch``, ``ActorSystem.run_many``) collects such a
stream into a list; :func:`call_result` turns an item's outcome into the call's
result or exception. Everything runs in the caller's thread (or, with
``notify``, in the consumer actor's): no helper thread per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import pykka

import supervisors as sv
from dspex_actors.primitives import DeadlineExceeded, telemetry
from dspex_actors.runtime._messages import Failed, Run
from dspex_actors.runtime._program import Runtime

__all__ = ["GRACE", "call_result", "program_stream", "run_many", "start_program"]

T = TypeVar("T")

Call = tuple[Any, Mapping[str, Any]]
"""What a program call is: the module and its keyword inputs."""

GRACE = 1.0
"""Seconds past a request's deadline before the engine kills its program actor.

The program reports its own deadline (``DeadlineExceeded``, its workers killed);
the kill is for a program stuck in user code."""


def start_program(
    runtime: Runtime,
    programs: str,
    module: Any,
    inputs: dict[str, Any],
    *,
    deadline: float,
    reply: Any,
) -> pykka.ActorRef[Any]:
    """Start a program actor under ``programs`` running ``module(**inputs)``; return its ref.

    The answer goes to ``reply`` (an ``sv.Slot`` or any future-like object): the
    prediction, a ``Failed`` wrapper of an expected ``LMError``, or the exception
    of a bug. Runs in the calling thread.

    Raises:
        sv.StartError, sv.SupervisorError, sv.NoProc: the program could not start.
    """
    # The Run request rides in the new actor's mailbox from birth.
    run = Run(module, inputs, deadline, telemetry.current())
    return sv.start_child(
        programs, runtime.program_spec, in_caller=True, first_message=(run, reply)
    )


def program_stream(
    runtime: Runtime,
    programs: str,
    items: Iterable[T],
    call: Callable[[T], Call],
    *,
    max_concurrency: int,
    timeout: float,
    ordered: bool = False,
    notify: Callable[[], None] | None = None,
) -> sv.FanOut[T]:
    """Fan ``items`` out as program calls: ``call(item)`` gives the module and inputs.

    Each item's request has ``timeout`` seconds; its program actor is killed
    :data:`GRACE` seconds later if it has not answered (its outcome is then
    ``Exit("timeout")``). Turn outcomes into results with :func:`call_result`.
    The stream's rules (bound, back-pressure, cancel) are ``sv.fan_out``'s.
    """

    def launch(item: T, slot: sv.Slot[T]) -> pykka.ActorRef[Any]:
        module, inputs = call(item)
        deadline = time.monotonic() + timeout
        return start_program(runtime, programs, module, dict(inputs), deadline=deadline, reply=slot)

    return sv.fan_out(
        items,
        launch,
        max_concurrency=max_concurrency,
        timeout=timeout + GRACE,
        ordered=ordered,
        notify=notify,
    )


def call_result(outcome: sv.Ok[Any] | sv.Exit, timeout: float) -> Any:
    """One program call's result from its fan-out outcome: the value, or the exception.

    ``LMError`` (typed, with ``attempts``) for a failed request,
    ``DeadlineExceeded`` when the program was killed at its deadline, the bug's
    exception for a crash, ``sv.StartError``/``sv.SupervisorError``/``sv.NoProc``
    when it could not start, ``ActorDeadError`` when it was killed by someone else.
    """
    if isinstance(outcome, sv.Ok):
        value = outcome.value
        return value.error if isinstance(value, Failed) else value
    reason = outcome.reason
    if reason == "timeout":
        return DeadlineExceeded(f"no answer within {timeout} s")
    if isinstance(reason, BaseException):
        return reason
    return pykka.ActorDeadError(f"the program actor ended: {sv.describe_reason(reason)}")


def run_many(
    runtime: Runtime,
    programs: str,
    module: Any,
    inputs: Sequence[dict[str, Any]],
    *,
    max_concurrency: int,
    timeout: float,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """Run ``module`` once per input, at most ``max_concurrency`` program actors at once.

    The caller's thread starts the program actors and collects their answers: no
    helper thread per request. Returns, in input order, each result or the
    exception that ended it (see :func:`call_result`). ``on_result(index,
    result)`` is called in the caller's thread as each finishes (progress bars,
    JSONL files).

    On ``KeyboardInterrupt`` the programs still running are killed and the
    interrupt re-raised.
    """
    results: list[Any] = [None] * len(inputs)
    calls = program_stream(
        runtime,
        programs,
        range(len(inputs)),
        lambda index: (module, inputs[index]),
        max_concurrency=max_concurrency,
        timeout=timeout,
    )
    with calls:
        for settled in calls:
            result = call_result(settled.outcome, timeout)
            results[settled.index] = result
            if on_result is not None:
                on_result(settled.index, result)
    return results
