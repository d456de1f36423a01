"""Per-call cost of ``dx.Predict(...)(...)`` with the defaults a user gets, vs bare requests.

Usage: ``python -m benchmarks.profile_default [--callgrind] [--cg-calls 20,120]
[--profile N] [--rusage N]``.

Against a rule server in a child process (``bench_runtime.Server``, 0 ms latency),
``dx.start(lm=lm)`` with its defaults (in-memory cache on, unique questions so every
call misses; the default structlog set-up at INFO, its stderr sent to /dev/null by
the child), sequential calls. ``--callgrind``: each variant (``ours``, ``bare``) in
its own ``valgrind --tool=callgrind`` child at two call counts, after the same
warm-up; (Ir(n2) - Ir(n1)) / (n2 - n1) is instructions per call. ``--profile N``:
yappi (CPU clock, all threads) over N calls of ``ours``, by own time. ``--rusage N``:
both variants in this process, 3 interleaved rounds of N calls each; per call, the
process's user and system CPU and its voluntary context switches (``getrusage``, all
threads), the round with the median user CPU. Callgrind runs the threads one at a
time, so it counts the instructions but not what handing a request from thread to
thread costs (wake-ups, cold caches); ``--rusage`` shows that part.

Threading: single-threaded driver; the system is shut down before exit.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile

import dspex_actors as dx
from benchmarks.bench_runtime import Server, pooled_session

WARMUP = 20


def _calls(api_base: str, variant: str, n: int, prefix: str, system: dx.ActorSystem | None) -> None:
    if variant == "bare":
        session = pooled_session(4)
        url = api_base + "/chat/completions"
        for i in range(n):
            q = f"What is {i} + 1? ({prefix})"
            body = {"model": "rule-based", "messages": [{"role": "user", "content": q}]}
            session.post(url, json=body, timeout=30).raise_for_status()
        return
    program = dx.Predict("question -> answer")
    for i in range(n):
        program(question=f"What is {i} + 1? ({prefix})")


def child(api_base: str, variant: str, n: int) -> None:
    """Warm-up, then ``n`` counted calls of ``variant``, then shut down."""
    system = None
    if variant == "ours":
        lm = dx.LM("openai/rule-based/echo-1", api_base=api_base, api_key="sk-bench")
        system = dx.start(lm=lm, name="profile-default")
    try:
        _calls(api_base, variant, WARMUP, "warm", system)
        _calls(api_base, variant, n, "counted", system)
    finally:
        if system is not None:
            system.shutdown()


def callgrind_ir(api_base: str, variant: str, n: int) -> int:
    """Instructions (all threads) of one callgrind child's whole run."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "benchmarks.profile_default",
                "--child",
                api_base,
                variant,
                str(n),
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=3600,
            check=True,
        )
        with open(out) as f:
            match = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.MULTILINE)
    assert match is not None, f"no totals in the callgrind output of {variant!r}"
    return int(match.group(1))


def rusage(api_base: str, n: int) -> None:
    """Print ``--rusage``'s per-call CPU and context switches of ``ours`` and ``bare``."""
    lm = dx.LM("openai/rule-based/echo-1", api_base=api_base, api_key="sk-bench")
    system = dx.start(lm=lm, name="profile-default")
    rows: dict[str, list[tuple[float, float, float]]] = {"ours": [], "bare": []}
    try:
        for variant in rows:
            _calls(api_base, variant, WARMUP, "warm", system)
        for r in range(3):
            for variant, got in rows.items():
                a = resource.getrusage(resource.RUSAGE_SELF)
                _calls(api_base, variant, n, f"{variant}-{r}", system)
                b = resource.getrusage(resource.RUSAGE_SELF)
                got.append(
                    (
                        (b.ru_utime - a.ru_utime) / n,
                        (b.ru_stime - a.ru_stime) / n,
                        (b.ru_nvcsw - a.ru_nvcsw) / n,
                    )
                )
    finally:
        system.shutdown()
    for variant, got in rows.items():
        user, sys_, switches = sorted(got)[1]
        print(
            f"{variant}: user {user * 1e6:,.0f} us, system {sys_ * 1e6:,.0f} us, "
            f"{switches:.1f} voluntary context switches per call",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("URL", "VARIANT", "N"))
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--cg-calls", default="20,120")
    parser.add_argument("--variants", default="ours,bare")
    parser.add_argument("--profile", type=int, default=0)
    parser.add_argument("--rusage", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the default log sink; process exits
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    with Server("process", 0.0) as server:
        if args.rusage:
            rusage(server.api_base, args.rusage)
        if args.profile:
            lm = dx.LM("openai/rule-based/echo-1", api_base=server.api_base, api_key="sk-bench")
            system = dx.start(lm=lm, name="profile-default")
            try:
                _calls(server.api_base, "ours", WARMUP, "warm", system)
                import yappi

                yappi.set_clock_type("cpu")
                yappi.start()
                _calls(server.api_base, "ours", args.profile, "counted", system)
                yappi.stop()
            finally:
                system.shutdown()
            stats = yappi.get_func_stats()
            stats.sort("tsub")
            stats.print_all(
                columns={0: ("name", 90), 1: ("ncall", 8), 2: ("tsub", 8), 3: ("ttot", 8)}
            )
        if args.callgrind:
            n1, n2 = (int(x) for x in args.cg_calls.split(","))
            for variant in args.variants.split(","):
                low = callgrind_ir(server.api_base, variant, n1)
                high = callgrind_ir(server.api_base, variant, n2)
                print(
                    f"{variant}: {(high - low) / (n2 - n1):,.0f} instructions/call "
                    f"(Ir {low:,} @ {n1}, {high:,} @ {n2})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
