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
import os
import time
import uuid
from typing import Any

import dspex_actors as dx
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--per-worker", type=int, default=128)
    parser.add_argument("--local", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("DSPEX_BENCH_KEY", f"sk-bench-{uuid.uuid4().hex}")  # before ray.init
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    examples = devset(args.n)
    in_flight = args.workers * args.per_worker
    print(
        f"bench_ray: {args.n} examples, server latency {args.latency * 1000:.0f} ms, "
        f"{os.cpu_count()} cores"
    )
    with RuleBasedLMServer(latency=args.latency) as server:
        lm = dx.LM(
            "openai/rule-based", api_base=server.api_base, api_key=os.environ["DSPEX_BENCH_KEY"]
        )
        with dx.start(lm=lm, cache=False, configure_logs=False, name="bench-ray") as system:
            t0 = time.perf_counter()
            local = dx.Evaluate(
                devset=examples, metric=contains, max_concurrency=args.local, display_progress=False
            )(QA())
            local_s = time.perf_counter() - t0
            with dx.RayBackend(
                num_workers=args.workers, max_concurrency_per_worker=args.per_worker
            ) as backend:
                t0 = time.perf_counter()
                backend.coordinator(system)  # workers started (their startup, timed apart)
                startup_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                remote = dx.Evaluate(
                    devset=examples,
                    metric=contains,
                    max_concurrency=in_flight,
                    backend=backend,
                    display_progress=False,
                )(QA())
                ray_s = time.perf_counter() - t0
    ray.shutdown()
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
    print(
        f"  check: same score and per-example scores: "
        f"{'yes' if [s for *_, s in local.results] == [s for *_, s in remote.results] else 'NO'}"
    )
    print(f"  ratio local / ray wall time: {local_s / ray_s:.2f}x")
    per_worker = args.n / ray_s / args.workers
    print(
        f"  per-worker throughput {per_worker:.1f} ex/s; projection (not measured), "
        f"{args.workers} workers per machine:"
    )
    for machines in (1, 4, 16):
        rate = per_worker * args.workers * machines
        print(
            f"    {machines:3d} machines: ~{rate:8.0f} ex/s, "
            f"{args.n} examples in ~{args.n / rate:6.2f} s"
        )


if __name__ == "__main__":
    main()
