"""Side-by-side micro-benchmarks: ``supervisors`` versus raw pykka, in one run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_supervisors.py           # about 45 s
    .venv/bin/python benchmarks/bench_supervisors.py --quick   # about 12 s

What is measured (every timed row is interleaved with its raw-pykka baseline in
alternating rounds, A B B A ..., after a discarded warm-up round, so a noisy
neighbour on a 2-core machine hits both sides alike):

* **ask**: one ``ask`` round trip to an echo actor. Raw ``pykka.ThreadingActor``
  ``ref.ask(msg)`` versus an ``sv.Actor`` asked through its ref (actor-loop cost)
  and through ``sv.named("x").ask(msg)`` (adds name resolution). Target: NamedRef
  ask <= 1.2x raw ask.
* **spawn**: start one actor and stop it. Raw ``start()`` + ``ref.stop()`` versus
  ``sv.Actor.start()`` + ``sv.stop(ref)``, and versus the full OTP round trip:
  start, have a watcher actor ``monitor()`` it, ``sv.stop(ref)``, wait until the
  watcher received the ``Down``.
* **restart**: a permanent, named child of an ``sv.Supervisor`` is told a message
  that raises; time until its replacement answers an ask through the name
  (``ask``, on ``ActorDeadError``/``NoProc`` ``sv.wait_for_name`` and ask again).
  Baseline: raw pykka ``start()`` + first ``ask``. Target: <= 3x. Measured with
  structlog silenced, and again with logging on (written to ``/dev/null`` so the
  report stays readable; a terminal costs more).
* **RSS per actor**: N actors started under a ``DynamicSupervisor`` versus N raw
  pykka actors, each in a fresh interpreter (a child process of this script), so
  memory freed by one measurement cannot be reused by the next.

The script is a report, not a test: it exits 0 when a target is missed (and
says so), non-zero only when the benchmark itself failed. It stops everything it
starts and checks that no thread is left.

Threading: single-threaded driver; the actors run in their own threads.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import pykka
import structlog

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import supervisors as sv

MSG = "ping"

# ------------------------------------------------------------------------ actors


class RawEcho(pykka.ThreadingActor):
    """Raw pykka echo actor: the baseline."""

    def on_receive(self, message: Any) -> Any:
        return message


class SvEcho(sv.Actor):
    """Our echo actor; ``"crash"`` (told) makes it raise, which crashes it."""

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash requested by the benchmark")
        return message


@dataclass(frozen=True)
class Watch:
    """Ask the :class:`Watcher` to monitor ``ref``."""

    ref: pykka.ActorRef[Any]


class Watcher(sv.Actor):
    """Monitors actors on request and forwards each ``Down`` to a queue."""

    def __init__(self, downs: queue.SimpleQueue[sv.Down]) -> None:
        super().__init__()
        self.downs = downs

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Watch):
            return self.monitor(message.ref)
        if isinstance(message, sv.Down):
            self.downs.put(message)
        return None


# ------------------------------------------------------------------------ logging

_devnull: TextIO | None = None


def _null_stream() -> TextIO:
    global _devnull
    if _devnull is None:
        _devnull = open(os.devnull, "w")  # noqa: SIM115 - closed at exit
    return _devnull


def log_silenced() -> None:
    """Drop every structlog event the package emits.

    Filtered at CRITICAL, not WARNING: crashes are logged at ERROR, so at WARNING
    each restart would still render a traceback. The package logs nothing critical.
    """
    structlog.reset_defaults()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def log_warning_to_null() -> None:
    """structlog filtered at WARNING, console-rendered to /dev/null (crash reports still render)."""
    structlog.reset_defaults()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(_null_stream()),
    )


def log_default_to_null() -> None:
    """structlog's default configuration (every level, ConsoleRenderer), to /dev/null."""
    structlog.reset_defaults()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(_null_stream()))


# ------------------------------------------------------------------------ stats


@dataclass
class Row:
    """One measured variant: a label, samples in ns (or bytes for RSS), and its unit."""

    label: str
    unit: str = "us"
    samples: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)
    """The median of each round's batch, in round order (for paired ratios)."""

    def median(self) -> float:
        return statistics.median(self.samples)

    def p90(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


def fmt(value: float, unit: str) -> str:
    if unit == "us":
        return f"{value / 1000:,.1f} us"
    if unit == "KiB":
        return f"{value / 1024:,.1f} KiB"
    return f"{value:,.1f}"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect, then keep the cyclic GC out of a timed batch (both sides alike)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def paired_ratio(row: Row, baseline: Row) -> float:
    """Median over rounds of (row's round median / baseline's round median).

    Each round runs every variant back to back, so pairing by round cancels load
    that comes and goes between rounds (other processes on a shared machine).
    """
    return statistics.median(a / b for a, b in zip(row.rounds, baseline.rounds, strict=True))


def interleave(
    variants: list[tuple[Row, Callable[[], int], int]], rounds: int, warmup: int
) -> None:
    """Run each variant's batch (its third item: operations per round), alternating order.

    Each callable performs one operation and returns its own elapsed ns (so setup
    and teardown can stay outside the timed part). Round 0 order A B C, round 1
    C B A, and so on. ``warmup`` operations per variant run first and are dropped.
    """
    for _row, once, _batch in variants:
        for _ in range(warmup):
            once()
    for r in range(rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for row, once, batch in order:
            with gc_paused():
                samples = [float(once()) for _ in range(batch)]
            row.samples.extend(samples)
            row.rounds.append(statistics.median(samples))


# ------------------------------------------------------------------------ benches


def bench_ask(rounds: int, batch: int) -> list[Row]:
    raw_ref = RawEcho.start()
    root = sv.Supervisor.start([sv.ChildSpec(id="x", start=SvEcho.start, name="x")])
    sv_ref = sv.whereis("x")
    assert sv_ref is not None
    named = sv.named("x")
    perf = time.perf_counter_ns

    def raw() -> int:
        t0 = perf()
        raw_ref.ask(MSG)
        return perf() - t0

    def raw_timeout() -> int:
        t0 = perf()
        raw_ref.ask(MSG, timeout=5.0)
        return perf() - t0

    def direct() -> int:
        t0 = perf()
        sv_ref.ask(MSG)
        return perf() - t0

    def by_name() -> int:
        t0 = perf()
        named.ask(MSG)
        return perf() - t0

    rows = [
        Row("raw pykka ref.ask(msg)"),
        Row("raw pykka ref.ask(msg, timeout=5)"),
        Row("sv.Actor ref.ask(msg)"),
        Row('sv.named("x").ask(msg)  [timeout=5 default]'),
    ]
    try:
        interleave(
            [
                (row, once, batch)
                for row, once in zip(rows, [raw, raw_timeout, direct, by_name], strict=True)
            ],
            rounds,
            warmup=500,
        )
    finally:
        raw_ref.stop()
        sv.stop(root)
    return rows


def bench_spawn(rounds: int, batch: int) -> list[Row]:
    downs: queue.SimpleQueue[sv.Down] = queue.SimpleQueue()
    watcher = Watcher.start(downs)
    perf = time.perf_counter_ns

    def raw() -> int:
        t0 = perf()
        ref = RawEcho.start()
        ref.stop()
        return perf() - t0

    def ours() -> int:
        t0 = perf()
        ref = SvEcho.start()
        sv.stop(ref)
        return perf() - t0

    def ours_monitored() -> int:
        t0 = perf()
        ref = SvEcho.start()
        watcher.ask(Watch(ref), timeout=5.0)
        sv.stop(ref)
        down = downs.get(timeout=5.0)
        elapsed = perf() - t0
        assert down.actor is ref, down
        assert down.reason == "normal", down
        return elapsed

    rows = [
        Row("raw pykka start() + ref.stop()"),
        Row("sv.Actor start() + sv.stop(ref)"),
        Row("sv.Actor start + monitor + sv.stop + Down"),
    ]
    try:
        interleave(
            [
                (row, once, batch)
                for row, once in zip(rows, [raw, ours, ours_monitored], strict=True)
            ],
            rounds,
            warmup=50,
        )
    finally:
        sv.stop(watcher)
    return rows


def _restart_once(named: sv.NamedRef) -> int:
    old = named.resolve()
    t0 = time.perf_counter_ns()
    named.tell("crash")
    while True:
        try:
            named.ask(MSG, timeout=5.0)
        except pykka.ActorDeadError:  # also NoProc: the name is unbound mid-restart
            sv.wait_for_name(named.name, timeout=5.0)
            continue
        elapsed = time.perf_counter_ns() - t0
        assert named.resolve() is not old, "the ask was answered by the crashed instance"
        return elapsed


def bench_restart(rounds: int, batch: int, logged_batch: int) -> list[Row]:
    root = sv.Supervisor.start(
        [sv.ChildSpec(id="w", start=SvEcho.start, name="w")],
        max_restarts=1_000_000,
        max_seconds=1.0,
    )
    named = sv.named("w")
    perf = time.perf_counter_ns

    def raw() -> int:
        t0 = perf()
        ref = RawEcho.start()
        ref.ask(MSG)
        elapsed = perf() - t0
        ref.stop()
        return elapsed

    def silenced() -> int:
        return _restart_once(named)

    def warning_level() -> int:
        log_warning_to_null()
        try:
            return _restart_once(named)
        finally:
            log_silenced()

    def default_logging() -> int:
        log_default_to_null()
        try:
            return _restart_once(named)
        finally:
            log_silenced()

    raw_row = Row("raw pykka start() + first ask")
    quiet_row = Row("sv restart -> replacement answers by name")
    warn_row = Row("  same, structlog at WARNING (to /dev/null)")
    default_row = Row("  same, structlog defaults (to /dev/null)")
    try:
        # Logging rows get fewer iterations: each crash renders a traceback.
        interleave(
            [
                (raw_row, raw, batch),
                (quiet_row, silenced, batch),
                (warn_row, warning_level, logged_batch),
                (default_row, default_logging, logged_batch),
            ],
            rounds,
            warmup=10,
        )
    finally:
        log_silenced()
        sv.stop(root)
    return [raw_row, quiet_row, warn_row, default_row]


# ------------------------------------------------------------------------ RSS


def vm_rss_bytes() -> int:
    """This process's resident set size, from /proc/self/status (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line in /proc/self/status")


def rss_child(kind: str, n: int) -> int:
    """Child-process mode: print the RSS growth per live actor, in bytes, for ``kind``."""
    log_silenced()
    if kind == "ours":
        pool = sv.DynamicSupervisor.start()
        spec = sv.ChildSpec(id="w", start=SvEcho.start)
        for ref in [sv.start_child(pool, spec) for _ in range(20)]:  # warm-up
            sv.terminate_child(pool, ref)
        gc.collect()
        before = vm_rss_bytes()
        refs = [sv.start_child(pool, spec) for _ in range(n)]
        for ref in refs:
            ref.ask(MSG)
        gc.collect()
        after = vm_rss_bytes()
        sv.stop(pool)
    else:
        for ref in [RawEcho.start() for _ in range(20)]:  # warm-up
            ref.stop()
        gc.collect()
        before = vm_rss_bytes()
        refs = [RawEcho.start() for _ in range(n)]
        for ref in refs:
            ref.ask(MSG)
        gc.collect()
        after = vm_rss_bytes()
        for ref in refs:
            ref.stop(block=False)
        for ref in refs:
            ref.actor_stopped.wait(10)
    leftover = join_other_threads(10.0)
    if leftover:
        print(f"leftover threads in RSS child: {leftover}", file=sys.stderr)
        return 1
    print((after - before) / n)
    return 0


def bench_rss(rounds: int, n: int) -> list[Row]:
    rows = {
        "raw": Row(f"raw pykka actor (N={n})", "KiB"),
        "ours": Row(f"sv child of DynamicSupervisor (N={n})", "KiB"),
    }
    for r in range(rounds):
        for kind in ("raw", "ours") if r % 2 == 0 else ("ours", "raw"):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--rss-child", kind, str(n)],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            value = float(out.stdout.strip().splitlines()[-1])
            rows[kind].samples.append(value)
            rows[kind].rounds.append(value)
    return [rows["raw"], rows["ours"]]


# ------------------------------------------------------------------------ report


def join_other_threads(timeout: float) -> list[str]:
    """Wait (bounded) for every thread but this one to end; return the names still alive."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threading.enumerate() if t is not threading.current_thread()]


def load_average() -> str:
    """The 1/5/15-minute load averages (other work on the machine skews every row)."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def print_table(title: str, rows: list[Row], baseline: Row) -> None:
    print(f"\n{title}")
    print(
        f"  {'variant':<46} {'n':>6} {'median':>12} {'p90':>12} {'x raw':>8} {'x raw paired':>13}"
    )
    for row in rows:
        print(
            f"  {row.label:<46} {len(row.samples):>6} {fmt(row.median(), row.unit):>12} "
            f"{fmt(row.p90(), row.unit):>12} {row.median() / baseline.median():>7.2f}x "
            f"{paired_ratio(row, baseline):>12.2f}x"
        )


def verdict(what: str, row: Row, baseline: Row, target: float) -> str:
    """One target line; met only if both the pooled and the paired ratio are within it."""
    pooled = row.median() / baseline.median()
    paired = paired_ratio(row, baseline)
    if pooled <= target and paired <= target:
        state = "target met"
    elif pooled > target and paired > target:
        state = "target MISSED"
    else:
        state = "target MISSED by one of the two ratios (borderline)"
    return f"  {what}: {pooled:.2f}x pooled, {paired:.2f}x paired (target <= {target:g}x): {state}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller run, under 15 s")
    parser.add_argument("--rss-child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        return rss_child(args.rss_child[0], int(args.rss_child[1]))

    log_silenced()
    quick: bool = args.quick
    started = time.monotonic()
    print(
        f"bench_supervisors ({'quick' if quick else 'full'}): python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cpus, switch interval {sys.getswitchinterval() * 1e3:g} ms"
    )
    print(f"load average at start: {load_average()}")
    print("times are per operation; rounds interleaved (ABBA) after a warm-up; GC paused per batch")

    ask = bench_ask(rounds=12 if quick else 40, batch=500 if quick else 1000)
    print_table("ask round trip to an echo actor", ask, ask[0])

    spawn = bench_spawn(rounds=16 if quick else 60, batch=30 if quick else 60)
    print_table("spawn + stop of one actor", spawn, spawn[0])

    restart = bench_restart(
        rounds=16 if quick else 60, batch=30 if quick else 60, logged_batch=2 if quick else 5
    )
    print_table("restart: crash -> replacement answers through the name", restart, restart[0])

    rss = bench_rss(rounds=2 if quick else 4, n=200 if quick else 1000)
    print_table("RSS growth per live actor (each sample a fresh process)", rss, rss[0])

    print(
        "\nx raw = pooled median / raw pooled median; x raw paired = median over rounds of\n"
        "(round median / raw round median), which cancels load that varies between rounds."
    )
    print("targets (measured in this run)")
    print(verdict("NamedRef ask / raw ask", ask[3], ask[0], 1.2))
    print(verdict("restart latency / raw start + first ask", restart[1], restart[0], 3.0))
    print(
        "  (info, no target) restart with default logging / raw start + first ask: "
        f"{restart[3].median() / restart[0].median():.2f}x pooled, "
        f"{paired_ratio(restart[3], restart[0]):.2f}x paired"
    )

    sv_threads = [t.name for t in threading.enumerate() if t.name.startswith("sv:")]
    leftover = join_other_threads(5.0)
    print(
        f"\nshutdown: {len(sv_threads)} sv threads at the end, "
        f"{len(leftover)} threads left after joining: {leftover or 'none'}"
    )
    print(f"load average at end: {load_average()}; wall time {time.monotonic() - started:.1f} s")
    if _devnull is not None:
        _devnull.close()
    return 1 if leftover else 0


if __name__ == "__main__":
    sys.exit(main())
