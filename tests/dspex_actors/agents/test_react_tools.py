"""ReAct's tool calls as I/O tasks of the program actor, against the rule-based server
playing an agent (it calls the tools named in the question, then finishes)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import dspex_actors as dx
import supervisors as sv
from dspex_actors.runtime import Cancel, run_in_program
from dspex_actors.runtime._tool_worker import ToolWorker, current_tool_worker
from dspex_actors.testing import RuleBasedLMServer


def search(query: str, k: int = 3) -> list[str]:
    """Search the corpus."""
    return [f"owls hunt at night ({query[:10]})"][:k]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def programs_running(system: dx.ActorSystem) -> int:
    return sv.count_children(system._programs_name).active


def test_the_agent_calls_the_named_tool_and_answers_from_its_observation(
    system: dx.ActorSystem,
) -> None:
    agent = dx.ReAct("question -> answer", tools=[search, add], max_iters=8)
    pred = agent(question='Use add {"a": 2, "b": 40} please')
    assert pred.trajectory["tool_name_0"] == "add"
    assert pred.trajectory["tool_args_0"] == {"a": 2, "b": 40}
    assert pred.trajectory["observation_0"] == 42
    assert pred.trajectory["tool_name_1"] == "finish"
    assert pred.trajectory["observation_1"] == "Completed."
    assert sorted(pred.trajectory) == sorted(
        f"{key}_{i}"
        for i in range(2)
        for key in ("thought", "tool_name", "tool_args", "observation")
    )
    assert pred.answer == "42"
    assert isinstance(pred.reasoning, str)


def test_a_tool_that_raises_is_observed_as_dspys_execution_error_and_the_loop_goes_on(
    system: dx.ActorSystem,
) -> None:
    def boom(x: str) -> str:
        """Always fails."""
        raise RuntimeError("the disk is on fire")

    agent = dx.ReAct("question -> answer", tools=[boom, add])
    pred = agent(question='call boom then add {"a": 1, "b": 1}')
    observation = pred.trajectory["observation_0"]
    assert observation.startswith("Execution error in boom: \nTraceback (most recent call last):")
    assert observation.endswith("RuntimeError: the disk is on fire")
    assert 'raise RuntimeError("the disk is on fire")' in observation
    assert pred.trajectory["observation_1"] == 2  # the loop went on
    assert pred.answer == "2"


def test_a_tool_past_its_timeout_is_killed_and_its_thread_ends_once_the_tool_returns(
    system: dx.ActorSystem,
) -> None:
    release = threading.Event()
    seen: dict[str, Any] = {}

    def hang(x: str) -> str:
        """Hangs until released."""
        seen["thread"] = threading.current_thread()
        seen["worker"] = current_tool_worker()
        release.wait(30)
        seen["returned"] = True
        return "late"

    agent = dx.ReAct("question -> answer", tools=[dx.Tool(hang, timeout=0.3), add])
    started = time.monotonic()
    pred = agent(question='hang, then add {"a": 2, "b": 2}')
    assert time.monotonic() - started < 10
    assert pred.trajectory["observation_0"] == (
        "Execution error in hang: TimeoutError: hang timed out after 0.3 s"
    )
    assert pred.trajectory["observation_1"] == 4
    worker = seen["worker"]
    assert isinstance(worker, ToolWorker)
    assert not worker.actor_ref.is_alive()  # killed, though its thread is still in the tool
    assert seen["thread"].is_alive()
    release.set()
    seen["thread"].join(timeout=10)
    assert seen["returned"] is True
    assert not seen["thread"].is_alive()
    assert programs_running(system) == 0


def test_a_tool_whose_worker_is_killed_is_retried_up_to_max_retries(
    system: dx.ActorSystem,
) -> None:
    calls: list[int] = []

    def flaky(x: str) -> str:
        """Its worker dies on the first call."""
        calls.append(1)
        if len(calls) == 1:
            worker = current_tool_worker()
            assert worker is not None
            sv.kill(worker, "killed", quiet=True)
        return f"ok after {len(calls)} call(s)"

    agent = dx.ReAct("question -> answer", tools=[dx.Tool(flaky, max_retries=1)])
    pred = agent(question="flaky please")
    assert pred.trajectory["observation_0"] == "ok after 2 call(s)"

    calls.clear()
    agent = dx.ReAct("question -> answer", tools=[dx.Tool(flaky, max_retries=0)])
    pred = agent(question="flaky please")
    assert pred.trajectory["observation_0"] == (
        "Execution error in flaky: tool worker ended without a result: killed"
    )
    assert len(calls) == 1


def test_a_raising_tool_is_retried_then_observed_as_an_error(system: dx.ActorSystem) -> None:
    calls: list[int] = []

    def fails(x: str) -> str:
        """Always fails."""
        calls.append(1)
        raise ValueError(f"failure {len(calls)}")

    agent = dx.ReAct("question -> answer", tools=[dx.Tool(fails, max_retries=2)])
    pred = agent(question="fails")
    assert len(calls) == 3
    assert pred.trajectory["observation_0"].endswith("ValueError: failure 3")


def test_a_bad_argument_is_a_validation_error_and_the_tool_does_not_run(
    system: dx.ActorSystem,
) -> None:
    ran: list[Any] = []

    def count(n: int) -> int:
        """Count to n."""
        ran.append(n)
        return n

    agent = dx.ReAct("question -> answer", tools=[count])
    pred = agent(question='count {"n": "seven"} then count {"m": 1} then count {}')
    assert pred.trajectory["observation_0"] == (
        "Execution error in count: Arg n is invalid: 'seven' is not of type 'integer'"
    )
    assert pred.trajectory["observation_1"] == (
        "Execution error in count: Arg m is not in the tool's args."
    )
    assert pred.trajectory["observation_2"] == "Execution error in count: Arg n is required."
    assert ran == []


def test_a_huge_observation_is_cut_from_the_trajectory_on_a_context_window_error(
    make_lm_server: Any, start_system: Any
) -> None:
    server: RuleBasedLMServer = make_lm_server()
    server.context_window = 40_000
    start_system(server, cache=False)

    def dump(x: str) -> str:
        """Returns a lot."""
        return "x" * 25_000

    agent = dx.ReAct("question -> answer", tools=[dump, add])
    pred = agent(question='dump, dump again, then add {"a": 3, "b": 4}')
    # Two huge observations overflow the window: the oldest tool call is dropped
    # (in place, as DSPy does) and the loop goes on.
    assert server.stats()["context_window"] == 1
    assert "observation_0" not in pred.trajectory
    assert pred.trajectory["observation_1"] == "x" * 25_000
    assert pred.trajectory["observation_2"] == 7
    assert pred.answer == "7"

    # One huge observation alone cannot be cut: the agent ends with the typed error.
    server.context_window = 20_000
    with pytest.raises(dx.ContextWindowExceeded) as info:
        agent(question="dump")
    assert isinstance(info.value, dx.LMBadRequest)


def test_cancelling_the_request_kills_the_running_tool(system: dx.ActorSystem) -> None:
    release = threading.Event()
    seen: dict[str, Any] = {}
    entered = threading.Event()

    def hang(x: str) -> str:
        """Hangs until released."""
        seen["worker"] = current_tool_worker()
        seen["thread"] = threading.current_thread()
        entered.set()
        release.wait(30)
        return "late"

    agent = dx.ReAct("question -> answer", tools=[hang])
    refs: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_in_program(
                system.runtime,
                system._programs_name,
                agent,
                {"question": "hang"},
                timeout=30,
                on_started=refs.append,
            )
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    assert entered.wait(10)
    refs[0].tell(Cancel())
    caller.join(timeout=10)
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], dx.DeadlineExceeded)
    assert "cancelled" in str(errors[0])
    assert not seen["worker"].actor_ref.is_alive()
    release.set()
    seen["thread"].join(timeout=10)
    assert not seen["thread"].is_alive()
    assert programs_running(system) == 0


def test_the_request_deadline_bounds_a_tool_without_timeout(system: dx.ActorSystem) -> None:
    release = threading.Event()
    seen: dict[str, Any] = {}

    def hang(x: str) -> str:
        """Hangs until released."""
        seen["worker"] = current_tool_worker()
        release.wait(30)
        return "late"

    agent = dx.ReAct("question -> answer", tools=[hang])
    started = time.monotonic()
    with pytest.raises(dx.DeadlineExceeded):
        system.run(agent, {"question": "hang"}, timeout=0.5)
    assert time.monotonic() - started < 10
    assert not seen["worker"].actor_ref.is_alive()
    release.set()


def test_an_async_def_tool_runs_in_its_worker(system: dx.ActorSystem) -> None:
    import asyncio

    async def fetch(url: str) -> str:
        """Fetch a page."""
        await asyncio.sleep(0.01)
        return f"page of {url[:4]}"

    agent = dx.ReAct("question -> answer", tools=[fetch])
    pred = agent(question="fetch it")
    assert pred.trajectory["observation_0"] == "page of fetc"


def test_an_agent_awaited_with_acall_awaits_its_async_tools_and_never_blocks_the_loop(
    system: dx.ActorSystem,
) -> None:
    import asyncio

    async def fetch(url: str) -> str:
        """Fetch a page."""
        await asyncio.sleep(0.01)
        return f"page of {url[:4]}"

    agent = dx.ReAct("question -> answer", tools=[fetch, add])

    async def main() -> tuple[list[Any], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        beat = asyncio.ensure_future(ticker())
        preds = await asyncio.gather(
            agent.acall(question="fetch it"),
            agent.acall(question='Use add {"a": 2, "b": 40} please'),
        )
        beat.cancel()
        return list(preds), ticks

    (fetched, added), ticks = asyncio.run(main())
    assert fetched.trajectory["tool_name_0"] == "fetch"
    assert fetched.trajectory["observation_0"] == "page of fetc"
    assert added.trajectory["observation_0"] == 42
    assert added.answer == "42"
    assert ticks > 0  # the loop kept running while the agents did
    assert programs_running(system) == 0
