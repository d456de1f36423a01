"""The actor shape of one request, without any LM work: for profiling ``supervisors``.

Each request is what ``dspex_actors`` does per call, with trivial handlers: a
temporary program actor started in the caller's thread under a
``DynamicSupervisor`` (``start_child(..., in_caller=True, first_message=...)``),
which spawns one I/O worker linked and monitored from birth with its work in its
mailbox, waits for the worker's hand-over by selective receive, demonitors,
answers and stops; the worker unlinks, drops its monitor and hands over as its
last act (``exit_then``). ``--in-flight N`` runs them through ``sv.fan_out``.

Meant for ``valgrind --tool=callgrind`` (instructions of a run with N requests
minus a run with M, over N - M) or plain CPU timing (printed).

Threading: single-threaded driver; everything it starts is stopped before exit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import logging
import resource

import pykka
import structlog
from pykka.messages import _ActorStop

import supervisors as sv


class Run:
    """The program's one request."""


class Perform:
    """The worker's one job."""


class Done:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class Worker(sv.Actor):
    log_crashes = False
    reuse_threads = True
    register_in_pykka = False

    def __init__(self, program: pykka.ActorRef[Any], value: Any) -> None:
        super().__init__()
        self._program = program
        self._value = value

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, Perform):
            return None
        self.unlink(self._program)
        self.drop_monitors_of(self._program)
        program, done = self._program, Done(self._value)

        def hand_over() -> None:
            try:
                program.tell(done)
            except pykka.ActorDeadError:
                pass

        self.exit_then(hand_over)
        return None


class Program(sv.Actor):
    trap_exits = True
    reuse_threads = True
    register_in_pykka = False

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, Run):
            return None
        with sv.spawn_options(link=self, monitor=self, first_message=Perform()) as options:
            ref = Worker.start(self.actor_ref, self.value)
        mref = options.monitor_ref
        assert mref is not None

        def match(m: Any) -> bool:
            return isinstance(m, Done) or (isinstance(m, sv.Down) and m.ref == mref)

        answer = self.receive(match, timeout=5.0)
        if isinstance(answer, Done):
            self.demonitor(mref)
        assert sv.actor_of(ref) is None or not ref.is_alive() or True
        self.actor_ref.tell(_ActorStop())
        return answer.value if isinstance(answer, Done) else None


def start_program(programs: str, value: Any, reply: Any) -> pykka.ActorRef[Any]:
    spec = sv.ChildSpec(
        id="program", start=Program.start, args=(value,), restart="temporary", shutdown=1.0
    )
    return sv.start_child(programs, spec, in_caller=True, first_message=(Run(), reply))


def run_sequential(programs: str, n: int) -> None:
    for i in range(n):
        reply = sv.Reply()
        start_program(programs, i, reply)
        assert reply.get(5.0) == i


def run_fanned(programs: str, n: int, in_flight: int) -> None:
    with sv.fan_out(
        range(n),
        lambda i, slot: start_program(programs, i, slot),
        max_concurrency=in_flight,
        timeout=10.0,
    ) as fan:
        for settled in fan:
            assert isinstance(settled.outcome, sv.Ok) and settled.outcome.value == settled.item


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=1)
    args = parser.parse_args()
    # As dx.start() sets logging up: filtered at INFO, loggers not cached.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    sup = sv.DynamicSupervisor.start(name="programs")

    def run(n: int) -> None:
        if args.in_flight > 1:
            run_fanned("programs", n, args.in_flight)
        else:
            run_sequential("programs", n)

    try:
        run(args.warmup)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        c0, t0 = time.process_time(), time.perf_counter()
        run(args.requests)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        switches = r1.ru_nvcsw - r0.ru_nvcsw + r1.ru_nivcsw - r0.ru_nivcsw
        print(f"switches/request={switches / max(args.requests, 1):.1f}")
        print(
            f"requests={args.requests} cpu/request={cpu / max(args.requests, 1) * 1e6:.1f} us "
            f"wall/request={wall / max(args.requests, 1) * 1e6:.1f} us"
        )
    finally:
        sv.stop(sup)
        sv.shutdown_idle_threads()
    return 0


if __name__ == "__main__":
    sys.exit(main())
