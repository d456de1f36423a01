"""Chaos: 8 concurrent agents, 30% of tool calls fail, 20% of LM requests fault.

Every agent ends with a prediction whose tool steps are results or execution-error
observations, or with a typed ``dx.LMError``; nothing is left running afterwards.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import dspex_actors as dx
import supervisors as sv
from dspex_actors.runtime._tool_worker import current_tool_worker


def test_concurrent_agents_under_tool_and_lm_faults_end_well_or_typed(
    make_lm_server: Any, start_system: Any
) -> None:
    server = make_lm_server(seed=7)
    server.set_fault_rates({"500": 0.1, "429": 0.05, "drop": 0.05}, seed=7)
    system = start_system(server, cache=False)
    rng = random.Random(11)
    lock = threading.Lock()

    def fault() -> str:
        with lock:
            return rng.choice(["ok"] * 7 + ["raise", "kill", "hang"])

    def lookup(key: str) -> str:
        """Look a key up (faulty)."""
        kind = fault()
        if kind == "raise":
            raise RuntimeError("lookup failed")
        if kind == "kill":
            worker = current_tool_worker()
            assert worker is not None
            sv.kill(worker, "killed", quiet=True)
        if kind == "hang":
            time.sleep(0.6)
        return f"value of {key[:8]}"

    tool = dx.Tool(lookup, timeout=0.3, max_retries=1)
    agent = dx.ReAct("question -> answer", tools=[tool], max_iters=6)
    questions = [{"question": "lookup, lookup and lookup " + str(i)} for i in range(8)]
    threads_before = threading.active_count()
    results = agent.batch(questions, max_concurrency=8, return_exceptions=True)
    assert len(results) == 8
    finished = 0
    for result in results:
        if isinstance(result, BaseException):
            assert isinstance(result, dx.LMError), repr(result)
            continue
        finished += 1
        trajectory = result.trajectory
        for key, value in trajectory.items():
            if key.startswith("observation_") and trajectory[f"tool_name_{key[12:]}"] == "lookup":
                assert value.startswith(("value of ", "Execution error in lookup: ")), value
    assert finished >= 1
    assert sv.count_children(system._programs_name).active == 0
    # Hung tools return within 0.6 s; then their threads end (not pooled).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and threading.active_count() > threads_before + 2:
        time.sleep(0.05)
    alive = [t.name for t in threading.enumerate() if "ToolWorker" in t.name]
    assert alive == []
