"""Awaiting programs from asyncio: no thread parked per await, the loop never blocked,
cancellation that reaches the program actor, typed errors as the sync calls raise them.

Each test drives its own event loop with ``asyncio.run`` (no pytest plugin needed).
Timing bounds are generous (the suite shares two cores with other work); the
must-holds are asserted by counts (threads, program actors, warnings), not by time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import dspex_actors as dx
import supervisors as sv
from dspex_actors.testing import RuleBasedLMServer
from tests.dspex_actors.fixture_types import ServerFactory, SystemFactory

WAIT = 30.0
"""Upper bound (seconds) on any condition a test waits for."""


async def _until(condition: Callable[[], bool], what: str, limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def _programs(system: dx.ActorSystem) -> list[Any]:
    return [row.ref for row in sv.which_children(system.programs.name) if row.ref is not None]


class Gate(dx.Module):
    """A module whose forward waits (in its program actor) until the test opens the gate."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = 0
        self._lock = threading.Lock()

    def forward(self, n: int) -> dx.Prediction:
        with self._lock:
            self.entered += 1
        assert self.opened.wait(WAIT), "the gate was never opened"
        return dx.Prediction(n=n)


# -- results and errors ----------------------------------------------------------------


def test_acall_answers_as_a_call_does(system: dx.ActorSystem) -> None:
    qa = dx.Predict("question -> answer")
    sync = qa(question="What is the capital of France?")
    awaited = asyncio.run(qa.acall(question="What is the capital of France?"))
    assert awaited.answer == sync.answer == "The answer is Paris."
    assert awaited.get_lm_usage() == sync.get_lm_usage()
    assert _programs(system) == []


def test_acall_raises_the_typed_lm_error_with_attempts_unwrapped(
    start_system: SystemFactory, lm_server: RuleBasedLMServer
) -> None:
    start_system(cache=False, retry=dx.RetryPolicy(max_attempts=2, base_delay=0.01))
    lm_server.inject("500", "500")
    qa = dx.Predict("question -> answer")
    with pytest.raises(dx.LMServerError) as caught:
        asyncio.run(qa.acall(question="What is 2 + 2?"))
    assert caught.value.attempts == 2
    lm_server.inject("400")
    with pytest.raises(dx.LMBadRequest) as bad:
        asyncio.run(qa.acall(question="What is 2 + 2?"))
    assert bad.value.attempts == 1


def test_acall_rejects_bad_input_before_any_request(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    qa = dx.Predict("question -> answer")
    with pytest.raises(TypeError, match="keyword arguments"):
        asyncio.run(qa.acall("positional"))
    with pytest.raises(dx.InputFieldsError):
        asyncio.run(qa.acall(questoin="typo"))
    assert lm_server.request_count == 0


def test_a_bug_in_forward_reaches_the_awaiting_caller_as_raised(system: dx.ActorSystem) -> None:
    class Broken(dx.Module):
        def forward(self, x: int) -> Any:
            raise ZeroDivisionError(f"bug with {x}")

    with pytest.raises(ZeroDivisionError, match="bug with 3"):
        asyncio.run(Broken().acall(x=3))


def test_a_closed_system_refuses_acall_with_system_closed(system: dx.ActorSystem) -> None:
    system.shutdown()
    with pytest.raises(dx.SystemClosed, match="shut down"):
        asyncio.run(system.arun(dx.Predict("question -> answer"), {"question": "q"}))
    assert isinstance(dx.SystemClosed("x"), RuntimeError)


# -- no thread parked per await --------------------------------------------------------


def test_a_thousand_concurrent_acalls_add_one_thread_each_their_program_actors(
    system: dx.ActorSystem,
) -> None:
    gate = Gate()
    n = 1000

    async def main() -> tuple[int, int, list[str], list[Any]]:
        before = threading.active_count()
        tasks = [asyncio.ensure_future(gate.acall(n=i)) for i in range(n)]
        await _until(lambda: gate.entered == n, "every program to enter forward")
        # The spawner registers each child with its supervisor as it starts it: the last
        # ones may enter forward a moment before the supervisor's table shows them.
        await _until(lambda: len(_programs(system)) >= n, "every program in the table")
        running = len(_programs(system))
        added = threading.active_count() - before
        names = [t.name for t in threading.enumerate()]
        gate.opened.set()
        return running, added, names, await asyncio.gather(*tasks)

    running, added, names, results = asyncio.run(main())
    assert running == n
    # One thread per program actor (its own) and nothing per await: a thread-based
    # await (asyncio.to_thread, DSPy's asyncify) would add n more.
    assert n <= added <= n + 5, added
    assert not [name for name in names if "asyncio" in name or "ThreadPool" in name]
    assert [r.n for r in results] == list(range(n))


# -- the loop is never blocked ---------------------------------------------------------


class _SlowCallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Executing" in message and "took" in message:
            self.messages.append(message)


@pytest.fixture
def slow_callbacks() -> Iterator[_SlowCallbacks]:
    handler = _SlowCallbacks()
    log = logging.getLogger("asyncio")
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


@pytest.fixture
def server_process() -> Iterator[str]:
    """The rule-based server at 100 ms latency in a child process (its threads do not
    share our GIL, as a real LM's do not); yields its ``api_base``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dspex_actors.testing", "--port", "0", "--latency", "0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "... api_base=http://127.0.0.1:PORT/v1"
        assert "api_base=" in line, line
        yield line.rsplit("api_base=", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(10)


def test_two_hundred_acalls_against_a_100ms_server_cause_no_slow_callback(
    server_process: str,
    slow_callbacks: _SlowCallbacks,
) -> None:
    lm = dx.LM("openai/rule-based", api_base=server_process, api_key="sk-test")
    system = dx.start(lm=lm, cache=False, name="no-slow-callback", configure_logs=False)
    qa = dx.Predict("question -> answer")

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = 0.05
        tasks = []
        for i in range(200):
            tasks.append(asyncio.ensure_future(qa.acall(question=f"What is {i} + 1?")))
            if i % 5 == 4:
                # The test's own burst of task creation (costly in debug mode) is not
                # what is measured: yield so it is not one long step of this coroutine.
                await asyncio.sleep(0)
        return list(await asyncio.gather(*tasks))

    # The test process's heap (the whole suite's objects) is not ours: a full collection
    # of it inside a step took 200 ms in one run. Freeze it, as a service does after
    # start-up; what this test allocates is still collected.
    gc.collect()
    gc.freeze()
    try:
        with asyncio.Runner(debug=True) as runner:
            results = runner.run(main())
    finally:
        gc.unfreeze()
        system.shutdown()
    assert [p.answer for p in results] == [f"The answer is {i + 1}." for i in range(200)]
    # Steps of the test's own coroutine (creating tasks; none of our code runs in it:
    # each acall runs in its own task) are not ours; every other slow step is.
    ours = [m for m in slow_callbacks.messages if ".<locals>.main()" not in m]
    assert ours == []


# -- cancellation ----------------------------------------------------------------------


def _workers_of(program: Any) -> list[Any]:
    actor = sv.actor_of(program)
    return list(getattr(actor, "_workers", {}).values()) if actor is not None else []


def test_cancelling_the_awaiting_task_ends_the_program_and_its_worker(
    start_system: SystemFactory, make_lm_server: ServerFactory
) -> None:
    server = make_lm_server(latency=20.0)
    system = start_system(server, cache=False)
    qa = dx.Predict("question -> answer")
    lm_before = sv.whereis(system.lm.name)

    async def main() -> tuple[list[Any], type[BaseException] | None]:
        task = asyncio.ensure_future(qa.acall(question="What is 1 + 1?"))
        await _until(lambda: any(_workers_of(p) for p in _programs(system)), "a worker")
        workers = [w for p in _programs(system) for w in _workers_of(p)]
        task.cancel()
        raised: type[BaseException] | None = None
        try:
            await task
        except BaseException as exc:  # what the cancelled caller gets, and only that
            raised = type(exc)
        await _until(lambda: not _programs(system), "programs to be empty")
        await _until(lambda: not any(w.actor_ref.is_alive() for w in workers), "workers to end")
        return workers, raised

    workers, raised = asyncio.run(main())
    assert raised is asyncio.CancelledError
    assert len(workers) == 1 and not workers[0].actor_ref.is_alive()
    assert sv.whereis(system.lm.name) is lm_before  # the LM client was not touched
    server.latency = 0.0
    assert asyncio.run(qa.acall(question="What is 1 + 1?")).answer == "The answer is 2."


def test_asyncio_timeout_cancels_the_request_too(
    start_system: SystemFactory, make_lm_server: ServerFactory
) -> None:
    system = start_system(make_lm_server(latency=20.0), cache=False)
    qa = dx.Predict("question -> answer")

    async def main() -> float:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await qa.acall(question="What is 1 + 1?")
        waited = time.monotonic() - started
        await _until(lambda: not _programs(system), "programs to be empty")
        return waited

    assert asyncio.run(main()) < 10.0  # the 20 s LM call was abandoned, not awaited
    assert system.lm.is_alive()


def test_cancelling_abatch_cancels_every_item(
    start_system: SystemFactory, make_lm_server: ServerFactory
) -> None:
    system = start_system(make_lm_server(latency=20.0), cache=False)
    qa = dx.Predict("question -> answer")

    async def main() -> None:
        items = [{"question": f"What is {i} + 1?"} for i in range(8)]
        task = asyncio.ensure_future(qa.abatch(items, max_concurrency=4))
        await _until(lambda: len(_programs(system)) == 4, "four programs")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _until(lambda: not _programs(system), "programs to be empty")

    asyncio.run(main())


# -- abatch ----------------------------------------------------------------------------


def test_abatch_keeps_input_order_and_bounds_concurrency(system: dx.ActorSystem) -> None:
    gate = Gate()

    async def main() -> tuple[int, list[Any]]:
        task = asyncio.ensure_future(gate.abatch([{"n": i} for i in range(20)], max_concurrency=3))
        await _until(lambda: gate.entered == 3, "three programs")
        await asyncio.sleep(0.1)
        most = len(_programs(system))
        gate.opened.set()
        return most, await task

    most, results = asyncio.run(main())
    assert most == 3
    assert [r.n for r in results] == list(range(20))


def test_abatch_raises_batch_error_after_all_items_or_returns_exceptions(
    system: dx.ActorSystem,
) -> None:
    class Picky(dx.Module):
        def forward(self, n: int) -> dx.Prediction:
            if n % 2:
                raise ValueError(f"odd {n}")
            return dx.Prediction(n=n)

    with pytest.raises(dx.BatchError) as caught:
        asyncio.run(Picky().abatch([{"n": i} for i in range(4)]))
    assert sorted(caught.value.errors) == [1, 3]
    assert [r.n for r in caught.value.results if not isinstance(r, BaseException)] == [0, 2]
    mixed = asyncio.run(Picky().abatch([{"n": 0}, {"n": 1}], return_exceptions=True))
    assert mixed[0].n == 0 and isinstance(mixed[1], ValueError)
    with pytest.raises(ValueError, match="max_concurrency"):
        asyncio.run(Picky().abatch([{"n": 0}], max_concurrency=0))


# -- Evaluate and compile jobs -------------------------------------------------------


def test_evaluate_acall_scores_as_the_sync_evaluate(system: dx.ActorSystem) -> None:
    devset = [
        dx.Example(question=f"What is {i} + 2?", answer=f"The answer is {i + 2}.").with_inputs(
            "question"
        )
        for i in range(12)
    ]
    devset[3] = dx.Example(question="What is 3 + 2?", answer="wrong").with_inputs("question")
    evaluate = dx.Evaluate(
        devset=devset,
        metric=lambda ex, pred: ex.answer == pred.answer,
        display_progress=False,
        max_concurrency=4,
    )
    qa = dx.Predict("question -> answer")
    sync = evaluate(qa)
    awaited = asyncio.run(evaluate.acall(qa))
    assert awaited.score == sync.score == round(100 * 11 / 12, 2)
    assert [row[2] for row in awaited.results] == [row[2] for row in sync.results]


def test_job_aresult_awaits_the_compiled_program(system: dx.ActorSystem) -> None:
    trainset = [
        dx.Example(question=f"What is {i} + 1?", answer=f"The answer is {i + 1}.").with_inputs(
            "question"
        )
        for i in range(3)
    ]
    job = system.compile(
        dx.LabeledFewShot(k=2), student=dx.Predict("question -> answer"), trainset=trainset
    )
    program = asyncio.run(job.aresult(timeout=WAIT))
    assert len(program.predictors()[0].demos) == 2


# -- starting and stopping from asyncio ----------------------------------------------


class SlowToStop(sv.Actor):
    """A service whose on_stop takes a while: shutdown is a blocking call."""

    def on_stop(self) -> None:
        time.sleep(0.5)


def test_astart_and_ashutdown_leave_the_loop_free(lm_server: RuleBasedLMServer) -> None:
    lm = dx.LM("openai/rule-based", api_base=lm_server.api_base, api_key="sk-test")

    async def main() -> tuple[int, float, str]:
        ticks = 0
        gap = 0.0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks, gap
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                ticks, gap, last = ticks + 1, max(gap, now - last), now

        async with dx.astart(lm=lm, name="astart-test", configure_logs=False) as system:
            system.start_service(SlowToStop, name="astart-test.slow")
            qa = dx.Predict("question -> answer")
            answer = (await qa.acall(question="What is 2 + 3?")).answer
            tick_task = asyncio.ensure_future(ticker())
            await system.ashutdown()
        stop.set()
        await tick_task
        assert system.closed
        return ticks, gap, answer

    ticks, gap, answer = asyncio.run(main())
    assert answer == "The answer is 5."
    assert ticks >= 10  # the loop ran other tasks during the 0.5 s shutdown
    assert gap < 0.4


def test_ashutdown_lets_requests_in_flight_finish_and_refuses_new_ones(
    start_system: SystemFactory, make_lm_server: ServerFactory
) -> None:
    system = start_system(make_lm_server(latency=0.5), cache=False)
    qa = dx.Predict("question -> answer")

    async def main() -> tuple[list[Any], BaseException | None]:
        tasks = [asyncio.ensure_future(qa.acall(question=f"What is {i} + 1?")) for i in range(5)]
        await _until(lambda: len(_programs(system)) == 5, "five programs")
        closing = asyncio.ensure_future(system.ashutdown(grace=WAIT))
        await asyncio.sleep(0.05)
        refused: BaseException | None = None
        try:
            await qa.acall(question="late")
        except dx.SystemClosed as exc:
            refused = exc
        results = list(await asyncio.gather(*tasks))
        await closing
        return results, refused

    results, refused = asyncio.run(main())
    assert [p.answer for p in results] == [f"The answer is {i + 1}." for i in range(5)]
    assert refused is not None and "shutting down" in str(refused)
    assert system.closed


def test_ashutdown_cancels_what_is_still_running_after_the_grace(
    start_system: SystemFactory, make_lm_server: ServerFactory
) -> None:
    system = start_system(make_lm_server(latency=20.0), cache=False)
    qa = dx.Predict("question -> answer")

    async def main() -> tuple[list[Any], float]:
        tasks = [asyncio.ensure_future(qa.acall(question=f"What is {i} + 1?")) for i in range(3)]
        await _until(lambda: len(_programs(system)) == 3, "three programs")
        started = time.monotonic()
        await system.ashutdown(grace=0.2)
        took = time.monotonic() - started
        return list(await asyncio.gather(*tasks, return_exceptions=True)), took

    results, took = asyncio.run(main())
    assert took < 10.0  # not the 20 s the LM would take
    assert all(isinstance(r, dx.DeadlineExceeded | sv.ActorDeadError) for r in results), results
