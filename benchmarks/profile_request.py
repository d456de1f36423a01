"""Client CPU per request of ``Predict.batch``, for profiling the request path.

Runs ``--requests`` unique questions through ``dx.Predict.batch`` with ``--in-flight``
at a time on a system started with the defaults (cache on, default logging), after
a warm-up batch, and prints the process CPU per request. Two transports:

- ``fake`` (default): the HTTP attempt is replaced, in the program module, by a
  sleep of ``--latency`` seconds and the parsing of a canned 200 body (the same
  bytes the rule server sends): everything but the socket work is real;
- ``http``: a rule server in a child process at ``--latency``.

Meant to run under ``valgrind --tool=callgrind``: the instruction count of a run
with N requests minus that of a run with M requests, over N - M, is the
instruction cost of one request (start-up and warm-up cancel out)::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p python \
        benchmarks/profile_request.py --requests 200
    valgrind ... --requests 1200      # (Ir(1200) - Ir(200)) / 1000

``--profile yappi`` prints the top functions (all threads) of the timed batch.

Threading: single-threaded driver; the system's threads are stopped before exit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import dspex_actors as dx  # noqa: E402
from dspex_actors.lm import Completion, RequestPlan  # noqa: E402
from dspex_actors.runtime import _program  # noqa: E402

MODEL = "openai/rule-based/echo-1"


def canned_body(question: str) -> bytes:
    """A chat completion body like the rule server's for ``question``."""
    content = f"[[ ## answer ## ]]\n{question}\n\n[[ ## completed ## ]]"
    return json.dumps(
        {
            "id": "chatcmpl-rule-1",
            "object": "chat.completion",
            "created": 0,
            "model": "rule-based/echo-1",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48},
        }
    ).encode()


def install_fake(latency: float) -> None:
    """Replace the program module's HTTP attempt with a sleep and a canned body's parse."""
    from dspex_actors.lm._wire import completion_from_body

    raw = canned_body("an answer")

    def fake_execute(session: Any, plan: RequestPlan) -> Completion:
        if latency > 0:
            time.sleep(latency)
        return completion_from_body(raw, 200, None, plan, latency)

    _program.execute_plan = fake_execute  # type: ignore[assignment]


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    """A rule server in a child process; returns it and its ``/v1`` base URL."""
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-W",
            "ignore::RuntimeWarning",
            "-m",
            "dspex_actors.testing._rule_server",
            "--port",
            "0",
            "--latency",
            repr(latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    match = re.search(r" at (http://\S+)", proc.stdout.readline())
    if match is None:
        proc.kill()
        raise RuntimeError("rule server did not print its URL")
    return proc, match.group(1) + "/v1"


def print_yappi(top: int) -> None:
    """Stop yappi and print its ``top`` functions by own CPU time (all threads)."""
    import yappi

    yappi.stop()
    stats = yappi.get_func_stats()
    stats.sort("tsub")
    for line in stats[:top]:
        print(f"{line.full_name[-80:]:80} {line.ncall:>10} {line.tsub:8.4f} {line.ttot:8.4f}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--transport", choices=("fake", "http"), default="fake")
    parser.add_argument("--profile", choices=("none", "yappi"), default="none")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=1, help="timed batches (CPU of each)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    proc = None
    api_base = "http://127.0.0.1:9/v1"
    if args.transport == "http":
        proc, api_base = start_server(args.latency)
    else:
        install_fake(args.latency)
    lm = dx.LM(MODEL, api_base=api_base, api_key="x", pool_size=args.in_flight)
    system = dx.start(lm=lm, name="profile")
    predict = dx.Predict("question -> answer")
    predict.system = system
    counter = iter(range(10**9))

    def batch(n: int) -> None:
        inputs = [{"question": f"What is {next(counter)} plus 7?"} for _ in range(n)]
        results = predict.batch(inputs, max_concurrency=args.in_flight)
        bad = [r for r in results if isinstance(r, BaseException)]
        if bad:
            raise RuntimeError(f"{len(bad)} failed, first: {bad[0]!r}")

    try:
        batch(args.warmup)
        if args.profile == "yappi":
            import yappi

            yappi.set_clock_type("cpu")
            yappi.start(builtins=True)
        for _ in range(args.repeat):
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            c0, t0 = time.process_time(), time.perf_counter()
            if args.requests:
                batch(args.requests)
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            n = max(args.requests, 1)
            switches = (r1.ru_nvcsw - r0.ru_nvcsw + r1.ru_nivcsw - r0.ru_nivcsw) / n
            print(
                f"requests={args.requests} cpu/request={cpu / n * 1e6:.0f} us wall={wall:.2f} s "
                f"switches/request={switches:.1f}"
            )
        if args.profile == "yappi":
            print_yappi(args.top)
    finally:
        system.shutdown()
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
