"""Side-by-side: BootstrapFewShot and Evaluate, ours versus DSPy's, on one loopback server.

Run from the repository root::

    .venv/bin/python benchmarks/bench_teleprompt.py
    # with DSPy installed elsewhere (the optional 'bench' extra):
    PYTHONPATH=. /path/to/venv-with-dspy/bin/python benchmarks/bench_teleprompt.py

One ``RuleBasedLMServer`` (``--latency`` seconds per request, default 0.05) serves
both libraries; DSPy's LM is created with ``cache=False`` and its memory and disk
caches are switched off, and our system runs with ``cache=False``, so every
teacher run and every evaluated example is a real HTTP request on both sides.

What is measured (wall time, after a warm-up request on each side):

* **bootstrap**: ``BootstrapFewShot(metric=exact, max_bootstrapped_demos=16,
  max_labeled_demos=16)`` on a trainset where every third example fails the metric
  (an unknown country), so about 24 teacher runs are needed. Ours with
  ``max_concurrency=16``, ours with ``max_concurrency=1`` (it must produce the same
  demos: checked), and DSPy's (serial by design). Target: ours at 16 >= 4x faster
  than DSPy's serial bootstrap. DSPy's demos are compared with ours too.
* **evaluate**: the compiled program on a devset (``--dev``, default 200), ours
  ``Evaluate(max_concurrency=16)`` versus ``dspy.Evaluate(num_threads=16)``;
  scores must agree.

Without ``dspy`` importable the DSPy rows print ``dspy not installed: skipped``.
The script is a report, not a test: it exits 0 when a target is missed (and says
so), non-zero only when the benchmark itself failed (different demos or scores
count as failures). It stops everything it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import structlog

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dspex_actors as dx
from dspex_actors.optimize import BootstrapFewShot, Evaluate
from dspex_actors.testing._rule_server import DEFAULT_KNOWLEDGE, RuleBasedLMServer

BOOTSTRAP_TARGET = 4.0
"""Ours (16 concurrent teacher runs) must be at least this many times faster than DSPy's."""

CAPITALS = [
    (key.removeprefix("capital of "), answer)
    for key, answer in DEFAULT_KNOWLEDGE.items()
    if key.startswith("capital of ")
]
UNKNOWN = ["Atlantis", "Narnia", "Oz", "Lilliput", "Utopia", "Gondor", "Wakanda", "Genovia"]


def rows(n: int, *, failing_every: int = 0) -> list[tuple[str, str]]:
    """``n`` (question, answer) pairs; every ``failing_every``-th has an unknown country."""
    out = []
    for i in range(n):
        if failing_every and i % failing_every == failing_every - 1:
            country, answer = UNKNOWN[i % len(UNKNOWN)], "Unknown City"
        else:
            country, answer = CAPITALS[i % len(CAPITALS)]
        out.append((f"What is the capital of {country}? (item {i})", answer))
    return out


def exact(example: Any, prediction: Any, trace: Any = None) -> bool:
    return bool(prediction.answer == example.answer)


def silence_logs() -> None:
    """Keep the report readable: structlog at CRITICAL (must run before ``dx.start``)."""
    structlog.reset_defaults()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    for name in ("LiteLLM", "litellm", "dspy", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Swallow DSPy's tqdm bars and prints while it is being timed."""
    saved_err, saved_out = sys.stderr, sys.stdout
    sys.stderr, sys.stdout = io.StringIO(), io.StringIO()
    try:
        yield
    finally:
        sys.stderr, sys.stdout = saved_err, saved_out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def demo_dicts(demos: list[Any]) -> list[dict[str, Any]]:
    return [dict(d.toDict()) for d in demos]


# ---------------------------------------------------------------------- ours


def our_bootstrap(
    system: dx.ActorSystem, trainset: list[dx.Example], concurrency: int
) -> tuple[float, dx.Module, int]:
    """Wall time, compiled program and LM requests the job started."""
    tp = BootstrapFewShot(
        metric=exact, max_bootstrapped_demos=16, max_labeled_demos=16, max_concurrency=concurrency
    )
    started = time.perf_counter()
    job = system.compile(tp, student=dx.Predict("question -> answer"), trainset=trainset)
    program = job.result(timeout=600)
    return time.perf_counter() - started, program, job.status().requests


def our_evaluate(
    system: dx.ActorSystem, program: dx.Module, devset: list[dx.Example], threads: int
) -> tuple[float, Any]:
    evaluate = Evaluate(devset=devset, metric=exact, max_concurrency=threads, system=system)
    return timed(lambda: evaluate(program))


# ---------------------------------------------------------------------- DSPy


def import_dspy() -> Any:
    try:
        with quiet_stderr():
            return importlib.import_module("dspy")
    except ImportError:
        return None


def dspy_setup(dspy: Any, api_base: str) -> None:
    with contextlib.suppress(Exception):
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    lm = dspy.LM("openai/rule-based", api_base=api_base, api_key="x", cache=False)
    dspy.configure(lm=lm)


def dspy_bootstrap(dspy: Any, trainset: list[Any]) -> tuple[float, Any]:
    tp = dspy.BootstrapFewShot(metric=exact, max_bootstrapped_demos=16, max_labeled_demos=16)
    with quiet_stderr():
        return timed(lambda: tp.compile(dspy.Predict("question -> answer"), trainset=trainset))


def dspy_evaluate(dspy: Any, program: Any, devset: list[Any], threads: int) -> tuple[float, Any]:
    evaluate = dspy.Evaluate(devset=devset, metric=exact, num_threads=threads)
    with quiet_stderr():
        return timed(lambda: evaluate(program))


# ---------------------------------------------------------------------- report


def line(label: str, seconds: float, requests: int, extra: str = "") -> None:
    rate = requests / seconds if seconds > 0 else float("inf")
    print(
        f"  {label:<34} {seconds * 1000:9.1f} ms  {requests:5d} requests  {rate:7.1f} req/s"
        f"  {extra}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="server seconds per request")
    parser.add_argument("--train", type=int, default=48, help="trainset size")
    parser.add_argument("--dev", type=int, default=200, help="devset size")
    parser.add_argument("--threads", type=int, default=16, help="concurrency (ours and DSPy's)")
    args = parser.parse_args(argv)

    silence_logs()
    train_rows = rows(args.train, failing_every=3)
    dev_rows = rows(args.dev)
    ok = True
    results: dict[str, float] = {}

    with RuleBasedLMServer(latency=args.latency) as server:
        lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="sk-bench")
        print(
            f"bench_teleprompt: server latency {args.latency * 1000:.0f} ms, trainset "
            f"{args.train} (1/3 fail the metric), devset {args.dev}, concurrency {args.threads}"
        )
        with dx.start(lm=lm, name=f"bench-{uuid.uuid4().hex[:6]}", cache=False) as system:
            trainset = [
                dx.Example(question=q, answer=a).with_inputs("question") for q, a in train_rows
            ]
            devset = [dx.Example(question=q, answer=a).with_inputs("question") for q, a in dev_rows]
            dx.Predict("question -> answer")(question="What is the capital of France?")  # warm-up

            print("\nBootstrapFewShot(max_bootstrapped_demos=16, max_labeled_demos=16)")
            # Our request counts are the job's own (requests it started): a speculative
            # request cancelled at the end may reach the server after the job returned.
            seconds, ours, requests = our_bootstrap(system, trainset, args.threads)
            line(f"ours, max_concurrency={args.threads}", seconds, requests)
            results["ours_bootstrap"] = seconds
            seconds, serial, requests = our_bootstrap(system, trainset, 1)
            line("ours, max_concurrency=1", seconds, requests)
            results["ours_serial"] = seconds
            same = ours.dump_state() == serial.dump_state()
            ok &= same
            print(f"  check: concurrent and serial demos identical: {'yes' if same else 'NO'}")

            dspy = import_dspy()
            dspy_program = None
            if dspy is None:
                print("  dspy serial bootstrap: dspy not installed: skipped")
            else:
                dspy_setup(dspy, server.api_base)
                d_train = [
                    dspy.Example(question=q, answer=a).with_inputs("question")
                    for q, a in train_rows
                ]
                with quiet_stderr():
                    dspy.Predict("question -> answer")(question="What is the capital of France?")
                time.sleep(0.2)  # let cancelled speculative requests of ours reach the server
                server.reset_stats()
                seconds, dspy_program = dspy_bootstrap(dspy, d_train)
                line(f"dspy {dspy.__version__} (serial)", seconds, server.request_count)
                results["dspy_bootstrap"] = seconds
                agree = demo_dicts(ours.predictors()[0].demos) == demo_dicts(dspy_program.demos)
                ok &= agree
                print(f"  check: our demos identical to DSPy's: {'yes' if agree else 'NO'}")

            print(f"\nEvaluate on {args.dev} examples ({args.threads} concurrent)")
            time.sleep(0.2)
            server.reset_stats()
            seconds, ours_eval = our_evaluate(system, ours, devset, args.threads)
            line("ours Evaluate", seconds, server.request_count, f"score {ours_eval.score}")
            results["ours_evaluate"] = seconds
            if dspy is None or dspy_program is None:
                print("  dspy.Evaluate: dspy not installed: skipped")
            else:
                d_dev = [
                    dspy.Example(question=q, answer=a).with_inputs("question") for q, a in dev_rows
                ]
                server.reset_stats()
                seconds, theirs = dspy_evaluate(dspy, dspy_program, d_dev, args.threads)
                line("dspy.Evaluate", seconds, server.request_count, f"score {theirs.score}")
                results["dspy_evaluate"] = seconds
                agree = abs(float(theirs.score) - ours_eval.score) < 1e-9
                ok &= agree
                print(f"  check: same score: {'yes' if agree else 'NO'}")

    print("\nRatios (higher = ours faster)")
    print(
        f"  bootstrap, ours {args.threads} vs ours serial:  "
        f"{results['ours_serial'] / results['ours_bootstrap']:.2f}x"
    )
    if "dspy_bootstrap" in results:
        ratio = results["dspy_bootstrap"] / results["ours_bootstrap"]
        met = ratio >= BOOTSTRAP_TARGET
        print(
            f"  bootstrap, ours {args.threads} vs dspy serial:  {ratio:.2f}x  "
            f"(target >= {BOOTSTRAP_TARGET:.0f}x: {'met' if met else 'NOT met'})"
        )
        print(
            f"  bootstrap, ours serial vs dspy serial: "
            f"{results['dspy_bootstrap'] / results['ours_serial']:.2f}x"
        )
    else:
        print("  bootstrap vs dspy: dspy not installed: skipped")
    if "dspy_evaluate" in results:
        print(
            f"  evaluate, ours vs dspy.Evaluate:      "
            f"{results['dspy_evaluate'] / results['ours_evaluate']:.2f}x"
        )
    leftover = [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("dspex:", "sv:")) and not t.name.startswith("sv:pool")
    ]
    if leftover:
        print(f"threads left running: {leftover}")
        ok = False
    if not ok:
        print("FAILED: a check above did not hold")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
