"""ReAct agents, ours vs DSPy 3.4.1's, side by side on one rule-based server.

An agent of 5 tool steps (each tool call sleeps 50 ms), then finish and the extract:
7 LM calls and 5 tool calls per agent; 32 agents at once. Ours: ``agent.batch`` with
``max_concurrency=32``; DSPy: ``dspy.Evaluate(num_threads=32)``. Both with the
defaults a user gets (each question is distinct, so no cache hits on either side).

Run under a venv holding both (``pip install dspy==3.4.1`` and this project):

    python benchmarks/bench_react.py [--agents 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="bench-react-dspy-"))

import dspex_actors as dx
from dspex_actors.testing import RuleBasedLMServer

QUESTION = "step, step, step, step, step for case {i}"


def step(x: str) -> str:
    """Do one step of work."""
    time.sleep(0.05)
    return f"done {x[-6:]}"


def questions(n: int, round_: int, tag: str) -> list[dict[str, str]]:
    return [{"question": QUESTION.format(i=f"{tag}-{round_}-{i}")} for i in range(n)]


def run_ours(server: RuleBasedLMServer, n: int, rounds: int) -> list[float]:
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="sk-bench")
    times = []
    with dx.start(lm=lm, configure_logs=False, name="bench-react"):
        agent = dx.ReAct("question -> answer", tools=[step], max_iters=8)
        for r in range(rounds):
            items = questions(n, r, "ours")
            started = time.perf_counter()
            results = agent.batch(items, max_concurrency=n)
            times.append(time.perf_counter() - started)
            assert all(len(p.trajectory) == 24 for p in results), "expected 5 steps + finish"
    return times


def run_dspy(server: RuleBasedLMServer, n: int, rounds: int) -> list[float]:
    import dspy

    lm = dspy.LM("openai/rule-based", api_base=server.api_base, api_key="sk-bench")
    dspy.configure(lm=lm)
    agent = dspy.ReAct("question -> answer", tools=[step], max_iters=8)
    steps: list[int] = []

    def metric(example: Any, pred: Any, trace: Any = None) -> bool:
        steps.append(len(pred.trajectory))
        return True

    times = []
    for r in range(rounds):
        devset = [dspy.Example(**q).with_inputs("question") for q in questions(n, r, "dspy")]
        evaluate = dspy.Evaluate(
            devset=devset, metric=metric, num_threads=n, display_progress=False
        )
        started = time.perf_counter()
        evaluate(agent)
        times.append(time.perf_counter() - started)
    assert steps and all(s == 24 for s in steps), f"DSPy trajectories: {set(steps)}"
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with RuleBasedLMServer() as server:
        ours = run_ours(server, args.agents, args.rounds)
        theirs = run_dspy(server, args.agents, args.rounds)
    o, d = statistics.median(ours), statistics.median(theirs)
    print(f"{args.agents} agents x 5 tool steps (50 ms each), median of {args.rounds} rounds")
    ours_rounds = [round(t, 3) for t in ours]
    dspy_rounds = [round(t, 3) for t in theirs]
    print(f"  dspex_actors ReAct (batch, 32):   {o:.3f} s   rounds {ours_rounds}")
    print(f"  DSPy 3.4.1 ReAct (Evaluate, 32):  {d:.3f} s   rounds {dspy_rounds}")
    print(f"  speed-up (DSPy / ours): {d / o:.2f}x  (target >= 1.3x)")


if __name__ == "__main__":
    main()
