"""Side-by-side: MIPROv2, ours (``parallel_trials=4``) versus DSPy 3.4.1's, on one loopback server.

Run from the repository root (DSPy comes with the optional 'bench' extra)::

    .venv/bin/python benchmarks/bench_mipro.py [--train 50] [--val 100] [--latency 0.05]

One ``RuleBasedLMServer`` (``follow_demos=False``, ``--latency`` seconds per request)
serves both libraries; DSPy's LM has ``cache=False`` and its caches are off, and our
system runs with ``cache=False``, so every LM call is a real HTTP request. The task
is one where the instruction matters: the server answers with a bare answer (what the
metric wants) only when the instruction asks for one, and the proposer, played by the
same server, proposes such instructions among others.

Both run with the defaults a user gets for ``auto="light"`` (seed 9, 4+4 demos,
minibatches of 35): DSPy's ``MIPROv2(metric, auto="light", num_threads=16)`` and ours
``dx.MIPROv2(metric, auto="light", parallel_trials=4)`` (``max_concurrency=16``, the
default). Reported per side: compile wall time, the LM requests the compile made
(the server's count), and the final score (the compiled program on the valset, with
each library's own ``Evaluate``; those requests are not counted). Targets (issue 14):
ours >= 3x faster, the same or a better score, no more LM calls than DSPy.

The script is a report, not a test: it exits 0 when a target is missed (and says so),
non-zero only when the benchmark itself failed. It stops everything it starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dspex_actors as dx
from benchmarks.bench_teleprompt import (
    exact,
    import_dspy,
    quiet_stderr,
    rows,
    silence_logs,
)
from dspex_actors.testing._rule_server import RuleBasedLMServer

SPEED_TARGET = 3.0
"""Ours must be at least this many times faster than DSPy's MIPROv2."""


def ours(
    server: RuleBasedLMServer, train: list[tuple[str, str]], val: list[tuple[str, str]]
) -> dict[str, Any]:
    trainset = [dx.Example(question=q, answer=a).with_inputs("question") for q, a in train]
    valset = [dx.Example(question=q, answer=a).with_inputs("question") for q, a in val]
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="sk-bench")
    with dx.start(lm=lm, cache=False, name=f"bench-mipro-{uuid.uuid4().hex[:6]}") as system:
        dx.Predict("question -> answer")(question="What is the capital of France?")  # warm-up
        opt = dx.MIPROv2(metric=exact, auto="light", parallel_trials=4)
        before = server.request_count
        started = time.perf_counter()
        job = system.compile(
            opt, student=dx.Predict("question -> answer"), trainset=trainset, valset=valset
        )
        program = job.result(timeout=1800, display_progress=False)
        seconds = time.perf_counter() - started
        calls = server.request_count - before
        evaluate = dx.Evaluate(devset=valset, metric=exact, display_progress=False)
        score = evaluate(program).score
        status = job.status()
    return {
        "seconds": seconds,
        "calls": calls,
        "score": score,
        "trials": status.num_trials,
        "instruction": program.predictors()[0].signature.instructions,
        "demos": len(program.predictors()[0].demos),
    }


def theirs(
    dspy: Any, server: RuleBasedLMServer, train: list[tuple[str, str]], val: list[tuple[str, str]]
) -> dict[str, Any]:
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    lm = dspy.LM("openai/rule-based", api_base=server.api_base, api_key="sk-bench", cache=False)
    dspy.configure(lm=lm)
    trainset = [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in train]
    valset = [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in val]
    with quiet_stderr():
        dspy.Predict("question -> answer")(question="What is the capital of France?")  # warm-up
        tp = dspy.MIPROv2(metric=exact, auto="light", num_threads=16)
        before = server.request_count
        started = time.perf_counter()
        program = tp.compile(dspy.Predict("question -> answer"), trainset=trainset, valset=valset)
        seconds = time.perf_counter() - started
        calls = server.request_count - before
        evaluate = dspy.Evaluate(devset=valset, metric=exact, num_threads=16)
        score = float(evaluate(program).score)
    predictor = program.predictors()[0]
    return {
        "seconds": seconds,
        "calls": calls,
        "score": score,
        "instruction": predictor.signature.instructions,
        "demos": len(predictor.demos),
    }


def report(label: str, row: dict[str, Any]) -> None:
    print(
        f"  {label:<30} {row['seconds']:8.2f} s  {row['calls']:5d} LM calls  "
        f"score {row['score']:5.1f}  demos {row['demos']}  instruction {row['instruction']!r}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=50)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args(argv)
    silence_logs()
    examples = rows(args.train + args.val)
    train, val = examples[: args.train], examples[args.train :]
    print(
        f"MIPROv2 auto='light': train {len(train)}, val {len(val)}, "
        f"server latency {args.latency * 1000:.0f} ms, cache off on both sides"
    )
    with RuleBasedLMServer(latency=args.latency, follow_demos=False) as server:
        mine = ours(server, train, val)
        report(f"ours (parallel_trials=4, {mine['trials']} trials)", mine)
        dspy = import_dspy()
        if dspy is None:
            print("  dspy not installed: skipped (pip install 'dspex-actors[bench]')")
            return 0
        other = theirs(dspy, server, train, val)
        report(f"dspy {dspy.__version__} (num_threads=16)", other)
    speed = other["seconds"] / mine["seconds"]
    calls = mine["calls"] / other["calls"] if other["calls"] else float("inf")
    print(
        f"  wall time: ours {speed:.2f}x faster (target >= {SPEED_TARGET:.0f}x: "
        f"{'met' if speed >= SPEED_TARGET else 'MISSED'})"
    )
    print(f"  LM calls: ours/dspy = {calls:.2f} (target <= 1: {'met' if calls <= 1 else 'MISSED'})")
    better = mine["score"] >= other["score"]
    print(
        f"  score: ours {mine['score']:.1f} vs dspy {other['score']:.1f} "
        f"(target same or better: {'met' if better else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
