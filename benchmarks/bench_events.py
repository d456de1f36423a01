"""Per-call overhead of the event bus: events off, on with no subscriber, one recording subscriber.

Usage: ``python -m benchmarks.bench_events [--calls 300] [--rounds 5]``.

In one run, against one rule-based LM server in a child process (``bench_runtime``'s
``Server``), with the defaults a user gets except ``cache=False`` (so every call does
LM work) and logs at the default INFO: rounds interleave the variants, each a batch
of sequential ``Predict`` calls with distinct questions. Overhead = median call time
minus the median of a bare ``requests.post`` of the same payload. "events off" is
the same system with its runtime's bus removed and its supervisors' observers
cleared (what the request path costs without any emit point doing work).
With ``--before PATH`` (a checkout of the code before the bus), a child process
measures ``bare`` and ``before`` there, in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import dspex_actors as dx
import supervisors as sv
from benchmarks.bench_runtime import Server, pooled_session


def _questions(prefix: str, n: int) -> list[str]:
    return [f"What is {i} + {len(prefix)}? ({prefix})" for i in range(n)]


def _events_off(system: Any) -> None:
    system.runtime = dataclasses.replace(system.runtime, events=None)

    def clear(node: sv.TreeNode) -> None:
        actor = sv.actor_of(node.ref) if node.ref is not None else None
        if actor is not None and hasattr(actor, "observer"):
            actor.observer = None
        for child in node.children:
            clear(child)

    clear(system.tree())


def measure(api_base: str, calls: int, rounds: int, variants: list[str]) -> dict[str, Any]:
    """Median seconds per call of each variant, interleaved over ``rounds``."""
    lm = dx.LM("openai/rule-based", api_base=api_base, api_key="sk-bench")
    session = pooled_session(4)
    chat_url = api_base + "/chat/completions"
    times: dict[str, list[float]] = {v: [] for v in variants}
    systems: dict[str, Any] = {}
    for variant in variants:
        if variant == "bare":
            continue
        system = dx.start(lm=lm, cache=False, name=f"bench-{variant}", configure_logs=False)
        if variant == "events off":
            _events_off(system)
        systems[variant] = system
    recorder: list[Any] = []
    if "one recording subscriber" in systems:
        systems["one recording subscriber"].events.subscribe(
            (), recorder.append, max_queue=1_000_000
        )

    def once(variant: str, question: str) -> float:
        started = time.perf_counter()
        if variant == "bare":
            body = {"model": "rule-based", "messages": [{"role": "user", "content": question}]}
            session.post(chat_url, json=body, timeout=10).raise_for_status()
        else:
            system = systems[variant]
            system.run(dx.Predict("question -> answer"), {"question": question})
        return time.perf_counter() - started

    try:
        for r in range(rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for variant in order:
                for q in _questions(f"{variant}-{r}", calls):
                    times[variant].append(once(variant, q))
    finally:
        for system in systems.values():
            system.shutdown()
    return {v: statistics.median(t) for v, t in times.items()} | {"events_recorded": len(recorder)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", help="path of a checkout without the bus")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # api_base: measure 'before' here
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.calls, args.rounds, ["bare", "before"])))
        return 0
    variants = ["bare", "events off", "events on, no subscriber", "one recording subscriber"]
    with Server("process", 0.0) as server:
        ours = measure(server.api_base, args.calls, args.rounds, variants)
        before = None
        if args.before:
            env = {**os.environ, "PYTHONPATH": args.before}
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    server.api_base,
                    "--calls",
                    str(args.calls),
                    "--rounds",
                    str(args.rounds),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
                check=True,
            )
            before = json.loads(out.stdout.strip().splitlines()[-1])
    bare = ours["bare"]
    print(f"calls per variant: {args.calls * args.rounds} (medians, ms per call)")
    off = ours["events off"] - bare
    for variant in variants:
        line = f"  {variant:28s} {ours[variant] * 1000:8.3f}"
        if variant != "bare":
            overhead = ours[variant] - bare
            line += f"   overhead {overhead * 1000:7.3f}   vs events off {overhead / off:5.2f}x"
        print(line)
    print(f"  (one recording subscriber received {ours['events_recorded']} events)")
    if before is not None:
        b_over = before["before"] - before["bare"]
        print(
            f"  before the bus (own process): call {before['before'] * 1000:.3f} ms, "
            f"bare {before['bare'] * 1000:.3f} ms, overhead {b_over * 1000:.3f} ms; "
            f"events on, no subscriber / before: {(ours[variants[2]] - bare) / b_over:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
