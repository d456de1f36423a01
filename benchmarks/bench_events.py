"""Per-call overhead of the event bus: events off, on with no subscriber, one recording subscriber.

Usage: ``python -m benchmarks.bench_events [--calls 300] [--rounds 5] [--before PATH]
[--callgrind] [--cg-calls 20,120]``.

Against one rule-based LM server in a child process (``bench_runtime``'s ``Server``),
with the defaults a user gets except ``cache=False`` (so every call does LM work):
sequential ``Predict`` calls with distinct questions. "events off" is the same system
with its runtime's bus removed and its supervisors' observers cleared (what the request
path costs without any emit point doing work). Three measures, each as overhead over a
bare ``requests.post`` of the same payload:

- **wall**: median call time (``perf_counter``), rounds interleaving the variants;
- **CPU**: this process's CPU time (``time.process_time``: the calling thread, the
  program, I/O worker, LM and subscription actors' threads) per call, over each
  round's batch, median over rounds. Waiting for the server costs no CPU, so other
  agents' load moves this far less than the wall clock;
- **instructions** (``--callgrind``): each variant in its own ``valgrind
  --tool=callgrind`` child (all threads; the server is not under valgrind), run twice
  with the same warm-up and two call counts; (Ir(n2) - Ir(n1)) / (n2 - n1) is the
  instructions per call, with start-up and warm-up cancelled. Instruction counts do
  not depend on what else the machine does.

With ``--before PATH`` (a checkout of the code before the bus, commit a527174), a child
process measures ``bare`` and ``before`` there in the same run (and, with
``--callgrind``, a callgrind child runs ``before`` from PATH too).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import dspex_actors as dx
import supervisors as sv
from benchmarks.bench_runtime import Server, pooled_session

VARIANTS = ["bare", "events off", "events on, no subscriber", "one recording subscriber"]
NO_SUB = VARIANTS[2]
ONE_SUB = VARIANTS[3]
CG_WARMUP = 20
"""Calls every callgrind child makes before the counted ones (pools, caches, imports)."""


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


class Caller:
    """The variants' systems (one per variant but ``bare``) and one call of each.

    Main thread only. ``recorded`` is what the recording subscriber received.
    """

    def __init__(self, api_base: str, variants: list[str]) -> None:
        lm = dx.LM("openai/rule-based", api_base=api_base, api_key="sk-bench")
        self.session = pooled_session(4)
        self.chat_url = api_base + "/chat/completions"
        self.systems: dict[str, Any] = {}
        self.recorded: list[Any] = []
        for variant in variants:
            if variant == "bare":
                continue
            system = dx.start(lm=lm, cache=False, name=f"bench-{variant}")
            if variant == "events off":
                _events_off(system)
            if variant == ONE_SUB:
                system.events.subscribe((), self.recorded.append, max_queue=1_000_000)
            self.systems[variant] = system

    def once(self, variant: str, question: str) -> None:
        if variant == "bare":
            body = {"model": "rule-based", "messages": [{"role": "user", "content": question}]}
            self.session.post(self.chat_url, json=body, timeout=30).raise_for_status()
        else:
            self.systems[variant].run(dx.Predict("question -> answer"), {"question": question})

    def shutdown(self) -> None:
        for system in self.systems.values():
            system.shutdown()


def measure(api_base: str, calls: int, rounds: int, variants: list[str]) -> dict[str, Any]:
    """Median wall seconds per call, and median over rounds of CPU seconds per call."""
    caller = Caller(api_base, variants)
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    try:
        for v in variants:  # warm-up: pools, connections, imports (not counted)
            for q in _questions(f"warm-{v}", 20):
                caller.once(v, q)
        for r in range(rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for variant in order:
                cpu_started = time.process_time()
                for q in _questions(f"{variant}-{r}", calls):
                    started = time.perf_counter()
                    caller.once(variant, q)
                    times[variant].append(time.perf_counter() - started)
                cpu[variant].append((time.process_time() - cpu_started) / calls)
    finally:
        caller.shutdown()
    return {
        "wall": {v: statistics.median(t) for v, t in times.items()},
        "cpu": {v: statistics.median(t) for v, t in cpu.items()},
        "events_recorded": len(caller.recorded),
    }


# ---------------------------------------------------------------------- callgrind


def cg_child(api_base: str, variant: str, calls: int) -> int:
    """A callgrind child: ``CG_WARMUP`` calls, then ``calls`` more, then exit."""
    caller = Caller(api_base, ["bare"] if variant == "bare" else [variant])
    try:
        for q in _questions("warm", CG_WARMUP):
            caller.once(variant, q)
        for q in _questions("counted", calls):
            caller.once(variant, q)
    finally:
        caller.shutdown()
    return 0


def _callgrind_ir(api_base: str, variant: str, calls: int, before: str | None) -> int:
    """Instructions (Ir, all threads) of one callgrind child's whole run."""
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    cwd = os.getcwd()
    if before is not None:  # run the old tree's package; cwd must not shadow it
        env["PYTHONPATH"] = before
        cwd = tempfile.gettempdir()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                os.path.abspath(__file__),
                "--cg-child",
                api_base,
                variant,
                str(calls),
            ],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=3600,
            check=True,
        )
        with open(out) as f:
            match = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.MULTILINE)
    assert match is not None, f"no totals in the callgrind output of {variant!r}"
    return int(match.group(1))


def measure_callgrind(
    api_base: str, variants: dict[str, str | None], counts: tuple[int, int]
) -> dict[str, float]:
    """Instructions per call of each variant (name -> old tree or ``None``): two call counts."""
    n1, n2 = counts
    jobs = [(v, n) for v in variants for n in (n1, n2)]

    def run(job: tuple[str, int]) -> int:
        name, calls = job
        tree = variants[name]
        return _callgrind_ir(api_base, "before" if tree else name, calls, tree)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # counts do not depend on load
        got = dict(zip(jobs, pool.map(run, jobs), strict=True))
    per_call: dict[str, float] = {}
    for variant in variants:
        low, high = got[variant, n1], got[variant, n2]
        per_call[variant] = (high - low) / (n2 - n1)
        print(f"  [callgrind] {variant}: Ir {low:,} ({n1} calls), {high:,} ({n2} calls)")
    return per_call


# --------------------------------------------------------------------------- main


def _run_before(before: str, api_base: str, calls: int, rounds: int) -> dict[str, Any]:
    """``measure`` of ``bare`` and ``before`` in a child process running ``before``'s tree."""
    env = {**os.environ, "PYTHONPATH": before}
    out = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            api_base,
            "--calls",
            str(calls),
            "--rounds",
            str(rounds),
        ],
        env=env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _table(title: str, unit: str, scale: float, values: dict[str, float]) -> None:
    """One measure's rows: value, overhead over bare, ratio to events off's overhead."""
    bare = values["bare"]
    off = values["events off"] - bare
    print(f"{title} ({unit} per call)")
    for variant, value in values.items():
        line = f"  {variant:28s} {value * scale:12.3f}"
        if variant != "bare":
            overhead = value - bare
            line += f"   overhead {overhead * scale:11.3f}   vs events off {overhead / off:5.3f}x"
        print(line)


def _before_line(label: str, unit: str, scale: float, ours: dict[str, float], bef: Any) -> None:
    b_over = bef["before"] - bef["bare"]
    no_sub = ours[NO_SUB] - ours["bare"]
    print(
        f"  {label}: overhead {b_over * scale:.3f} {unit}; "
        f"events off / before {(ours['events off'] - ours['bare']) / b_over:.3f}x, "
        f"events on, no subscriber / before {no_sub / b_over:.3f}x"
    )


def _label(tree: str) -> str:
    """``before <short commit>`` of a checkout (its folder's name if git cannot tell)."""
    out = subprocess.run(
        ["git", "-C", tree, "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return f"before {out.stdout.strip() or os.path.basename(tree)}"


def _report(args: argparse.Namespace, ours: dict[str, Any], befores: dict[str, Any]) -> None:
    print(f"calls per variant: {args.calls} x {args.rounds} rounds, interleaved")
    for key, title in (("wall", "wall clock, medians"), ("cpu", "CPU time of the process")):
        _table(
            f"{title}, {'median per call' if key == 'wall' else 'median over rounds'}",
            "ms",
            1000,
            ours[key],
        )
        for label, bef in befores.items():
            _before_line(f"{label} ({key}, own process)", "ms", 1000, ours[key], bef[key])
    print(f"  (one recording subscriber received {ours['events_recorded']} events)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", action="append", default=[], help="a checkout without the bus")
    parser.add_argument("--callgrind", action="store_true", help="also count instructions")
    parser.add_argument("--cg-calls", default="20,120", help="callgrind's two call counts")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # api_base: measure 'before' here
    parser.add_argument("--cg-child", nargs=3, help=argparse.SUPPRESS)  # api_base variant n
    args = parser.parse_args(argv)
    if args.cg_child:
        return cg_child(args.cg_child[0], args.cg_child[1], int(args.cg_child[2]))
    if args.child:
        print(json.dumps(measure(args.child, args.calls, args.rounds, ["bare", "before"])))
        return 0
    if args.callgrind and shutil.which("valgrind") is None:
        parser.error("--callgrind needs valgrind on PATH")
    n1, n2 = (int(n) for n in args.cg_calls.split(","))
    trees = {_label(tree): os.path.abspath(tree) for tree in args.before}
    with Server("process", 0.0) as server:
        ours = measure(server.api_base, args.calls, args.rounds, VARIANTS)
        befores = {
            label: _run_before(tree, server.api_base, args.calls, args.rounds)
            for label, tree in trees.items()
        }
        _report(args, ours, befores)
        if args.callgrind:
            cg_variants: dict[str, str | None] = dict.fromkeys(VARIANTS) | dict(trees)
            instr = measure_callgrind(server.api_base, cg_variants, (n1, n2))
            _table(
                f"instructions (callgrind, calls {n1} -> {n2})",
                "Ir",
                1,
                {v: instr[v] for v in VARIANTS},
            )
            for label in trees:
                _before_line(
                    f"{label} (instructions)",
                    "Ir",
                    1,
                    instr,
                    {"bare": instr["bare"], "before": instr[label]},
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
