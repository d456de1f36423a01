"""``Evaluate.acall`` and ``Job.aresult``: evaluation and compile jobs awaited from asyncio.

``Evaluate.acall`` drives the same fan-out as ``Evaluate.__call__`` from the event
loop: the fan-out's ``notify`` (called from an answering program actor's thread,
or the timer thread at a deadline) schedules a wake-up on the loop through
``call_soon_threadsafe``; the loop then takes results with the non-blocking
``get(0)``. No thread waits; the results file and the progress display are
written on the loop as results arrive (a line each), the resume file is read
off the loop. Cancelling the awaiting task kills the requests in flight and
closes the file (what finished is kept in it).

``Job.aresult`` looks at the job every :data:`JOB_POLL` seconds with
``asyncio.sleep``: a compile job runs for seconds or minutes, so a poll costs
nothing and needs no hook in the job actor.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from dspex_actors.runtime import off_loop

if TYPE_CHECKING:
    from dspex_actors.runtime import ActorSystem

__all__ = ["JOB_POLL", "evaluate_async", "job_result_async"]

JOB_POLL = 0.05
"""Seconds between looks at a compile job while ``aresult`` awaits it."""


async def evaluate_async(evaluate: Any, program: Any, resume: bool, system: ActorSystem) -> Any:
    """``await evaluate.acall(program)`` (an ``Evaluate``, checked): see :meth:`Evaluate.acall`."""
    limit = system.request_timeout(evaluate.timeout)
    tally = await off_loop(evaluate._start, program, resume)  # reads the results file
    todo = [index for index in range(len(evaluate.devset)) if index not in tally.rows]
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def notify() -> None:  # an actor's or the timer's thread
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    try:
        requests = system.fan_out(
            todo,
            lambda index: evaluate._call(program, index),
            max_concurrency=evaluate.max_concurrency,
            timeout=limit,
            ordered=False,
            notify=notify,
        )
    except BaseException:  # the system is shut down
        tally.close()
        raise
    try:
        await _collect(evaluate, requests, tally, limit, wake)
    finally:
        evaluate._stop(requests, tally, limit)  # kills what still runs (a cancel)
    evaluate._notice(tally)
    return evaluate._result(tally)


async def _collect(
    evaluate: Any, requests: Any, tally: Any, limit: float, wake: asyncio.Event
) -> None:
    """Take each result as it comes, until all are done or ``max_errors``; loop thread."""
    while True:
        wake.clear()  # before get(0): a notify after this point wakes the wait below
        settled = requests.get(0)
        if settled is None:
            if requests.exhausted:
                return
            await wake.wait()
            continue
        tally.add(evaluate._row(settled, limit))
        if evaluate.max_errors is not None and tally.run_errors >= evaluate.max_errors:
            tally.stopped = True
            return


async def job_result_async(job: Any, timeout: float | None) -> Any:
    """``await job.aresult(timeout)``: see :meth:`Job.aresult`."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not job.done():
        job._check_lost()
        if job.done():
            break
        wait = JOB_POLL
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"compile job {job.id} still running after {timeout} s")
            wait = min(wait, remaining)
        await asyncio.sleep(wait)
    return job.result(timeout=0.0, display_progress=False)
