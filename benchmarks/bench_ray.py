"""Evaluate of 2,000 examples, local (64 in flight) vs RayBackend (2 workers x 128 in flight).

Against the rule-based server with 200 ms latency, on this machine, side by side
in one run. The gain here comes from more requests in flight across processes,
not from more cores (the machine has 2). Prints wall times, the ratio, checks
that both give the same score, and projects N machines from the per-worker
throughput (a projection, not a measurement: one machine is not a cluster).

    .venv/bin/python -m benchmarks.bench_ray [--n 2000] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import dspex_actors as dx
from dspex_actors.distributed._coordinator import GetWorkers
from dspex_actors.testing import RuleBasedLMServer
from dspex_actors.testing._knowledge import DEFAULT_KNOWLEDGE

CAPITALS = [
    (k.removeprefix("capital of "), v)
    for k, v in DEFAULT_KNOWLEDGE.items()
    if k.startswith("capital of ")
]


class QA(dx.Module):
    def __init__(self) -> None:
        self.answer = dx.Predict("question -> answer")

    def forward(self, question: str) -> Any:
        return self.answer(question=question)


def contains(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
    return example.answer in prediction.answer


def devset(n: int) -> list[dx.Example]:
    return [
        dx.Example(
            question=f"What is the capital of {CAPITALS[i % len(CAPITALS)][0]}? (#{i})",
            answer=CAPITALS[i % len(CAPITALS)][1],
        ).with_inputs("question")
        for i in range(n)
    ]


@contextlib.contextmanager
def server_process(latency: float) -> Iterator[str]:
    """The rule-based server in its own process (as a provider's CPU is not ours); its api_base."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "dspex_actors.testing", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--latency", str(latency)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def server_in_process(latency: float) -> Iterator[str]:
    with RuleBasedLMServer(latency=latency) as server:
        yield server.api_base


def worker_cpu(workers: list[Any]) -> float:
    """CPU seconds the workers' processes have used so far."""
    import ray

    infos = ray.get([w.handle.ready.remote() for w in workers], timeout=60)
    return float(sum(info["cpu_s"] for info in infos))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--per-worker", type=int, default=128)
    parser.add_argument("--local", type=int, default=64)
    parser.add_argument(
        "--server-in-process",
        action="store_true",
        help="run the test server in the driver's process (it then shares the driver's GIL)",
    )
    args = parser.parse_args()
    report(args, measure(args))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Both runs, side by side against one server; their times, CPU and results."""
    os.environ.setdefault("DSPEX_BENCH_KEY", f"sk-bench-{uuid.uuid4().hex}")  # before ray.init
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    examples = devset(args.n)
    # Run as a script, this module is __main__, which Ray workers cannot import: use the
    # program and the metric from the importable module (the check refuses __main__).
    shipped = importlib.import_module("benchmarks.bench_ray")
    program, metric = shipped.QA(), shipped.contains
    in_flight = args.workers * args.per_worker
    print(
        f"bench_ray: {args.n} examples, server latency {args.latency * 1000:.0f} ms, "
        f"{os.cpu_count()} cores"
    )
    serve = server_in_process if args.server_in_process else server_process
    where = "in the driver's process" if args.server_in_process else "in its own process"
    print(f"  server {where}")
    with serve(args.latency) as api_base:
        lm = dx.LM("openai/rule-based", api_base=api_base, api_key=os.environ["DSPEX_BENCH_KEY"])
        with dx.start(lm=lm, cache=False, configure_logs=False, name="bench-ray") as system:
            t0, cpu0 = time.perf_counter(), time.process_time()
            local = dx.Evaluate(
                devset=examples, metric=metric, max_concurrency=args.local, display_progress=False
            )(program)
            local_s = time.perf_counter() - t0
            local_cpu = time.process_time() - cpu0
            with dx.RayBackend(
                num_workers=args.workers, max_concurrency_per_worker=args.per_worker
            ) as backend:
                t0 = time.perf_counter()
                backend.coordinator(system)  # workers started (their startup, timed apart)
                startup_s = time.perf_counter() - t0
                workers = backend.coordinator(system).ask(GetWorkers(), timeout=60)
                before = worker_cpu(workers)
                t0, cpu0 = time.perf_counter(), time.process_time()
                remote = dx.Evaluate(
                    devset=examples,
                    metric=metric,
                    max_concurrency=in_flight,
                    backend=backend,
                    display_progress=False,
                )(program)
                ray_s = time.perf_counter() - t0
                ray_cpu = time.process_time() - cpu0
                workers_cpu = worker_cpu(workers) - before
    ray.shutdown()
    return {
        "local": local,
        "local_s": local_s,
        "local_cpu": local_cpu,
        "remote": remote,
        "ray_s": ray_s,
        "ray_cpu": ray_cpu,
        "workers_cpu": workers_cpu,
        "startup_s": startup_s,
    }


def report(args: argparse.Namespace, m: dict[str, Any]) -> None:
    """Print the side-by-side lines, the check, the ratio and the projection."""
    local, local_s, local_cpu = m["local"], m["local_s"], m["local_cpu"]
    remote, ray_s, ray_cpu, workers_cpu = m["remote"], m["ray_s"], m["ray_cpu"], m["workers_cpu"]
    startup_s = m["startup_s"]
    in_flight = args.workers * args.per_worker
    ideal_local = args.n / args.local * args.latency
    ideal_ray = args.n / in_flight * args.latency
    print(
        f"  local, {args.local} in flight            {local_s:8.2f} s  "
        f"{args.n / local_s:7.1f} ex/s  "
        f"(latency bound {ideal_local:.2f} s)  score {local.score}"
    )
    print(
        f"  ray, {args.workers} workers x {args.per_worker} in flight  {ray_s:8.2f} s  "
        f"{args.n / ray_s:7.1f} ex/s  (latency bound {ideal_ray:.2f} s)  score {remote.score}"
    )
    print(f"  ray worker startup (not in the time above)  {startup_s:.2f} s")
    ms = 1000.0 / args.n
    print(
        f"  CPU per example: local {local_cpu * ms:.2f} ms (driver); ray {ray_cpu * ms:.2f} ms "
        f"(driver) + {workers_cpu * ms:.2f} ms (workers); load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  check: same score and per-example scores: "
        f"{'yes' if [s for *_, s in local.results] == [s for *_, s in remote.results] else 'NO'}"
    )
    print(f"  ratio local / ray wall time: {local_s / ray_s:.2f}x")
    per_worker = args.n / ray_s / args.workers
    driver_cap = 1.0 / (ray_cpu / args.n)  # one driver core, at its measured cost per example
    print(
        f"  per-worker throughput {per_worker:.1f} ex/s (CPU-bound here); projection (not "
        f"measured), {args.workers} workers per machine, capped by the driver at "
        f"~{driver_cap:.0f} ex/s (its CPU per example):"
    )
    for machines in (1, 4, 16):
        rate = min(per_worker * args.workers * machines, driver_cap)
        print(
            f"    {machines:3d} machines: ~{rate:8.0f} ex/s, "
            f"{args.n} examples in ~{args.n / rate:6.2f} s"
        )


if __name__ == "__main__":
    main()
