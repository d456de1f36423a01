"""asyncio benchmarks, side by side in one run: ``qa.acall`` vs DSPy 3.4.1 ``acall`` vs bare httpx.

Run from the repository root with the ``[bench]`` and ``[service]`` extras::

    .venv/bin/python benchmarks/bench_async.py            # about 2 min
    .venv/bin/python benchmarks/bench_async.py --quick

Every variant talks to the same rule-based LM server, in a child process on
127.0.0.1 with 50 ms latency (``bench_runtime.Server``). Defaults a user gets:
``dx.start(lm=...)`` (in-memory cache on; questions are unique, so every call
misses) and ``dspy.LM(...)`` (its cache on, its retries), ``httpx.AsyncClient``
with a pool as large as the concurrency.

1. **In-process**, N in flight (64, 512), ``N * WAVES`` requests: ``await
   qa.acall`` (under a semaphore of N), ``await dspy.Predict(...).acall``, and a
   bare ``httpx.AsyncClient.post`` of an equivalent body. Throughput (req/s) and
   the loop's worst lag: a task sleeping 5 ms, how much later than asked it woke.
2. **Service**: ``examples/service`` under uvicorn (a subprocess) vs the same
   service written with DSPy's ``acall`` (``benchmarks/_dspy_service.py``), 64 and
   256 concurrent clients (httpx, in this process), throughput and p99 latency.

Targets (issue 10): ours >= 1.5x DSPy's acall throughput at 512 in flight; loop
lag <= 20 ms where DSPy's is higher; ours >= 0.8x bare httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from bench_runtime import REPO, Server, import_dspy, silence_other_logs

import dspex_actors as dx

LATENCY = 0.05
MODEL = "openai/rule-based/echo-1"
_questions = iter(range(10**9))


def questions(n: int) -> list[str]:
    """Unique questions (no cache hit anywhere)."""
    return [f"What is {next(_questions)} + 1?" for _ in range(n)]


async def lag_monitor(stop: asyncio.Event, worst: list[float]) -> None:
    """Record the loop's worst lag: how late a 5 ms sleep wakes up."""
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(0.005)
        worst[0] = max(worst[0], time.perf_counter() - asked - 0.005)


async def measure(
    call: Callable[[str], Awaitable[Any]], n_flight: int, total: int
) -> tuple[float, float]:
    """Run ``total`` calls with ``n_flight`` at once; (requests per second, worst loop lag s)."""
    gate = asyncio.Semaphore(n_flight)
    stop, worst = asyncio.Event(), [0.0]
    monitor = asyncio.ensure_future(lag_monitor(stop, worst))

    async def one(question: str) -> None:
        async with gate:
            await call(question)

    items = questions(total)
    started = time.perf_counter()
    await asyncio.gather(*(one(q) for q in items))
    took = time.perf_counter() - started
    stop.set()
    await monitor
    return total / took, worst[0]


def body_for(question: str) -> dict[str, Any]:
    messages = dx.ChatAdapter().format(
        dx.ensure_signature("question -> answer"), [], {"question": question}
    )
    return {"model": "rule-based/echo-1", "messages": messages}


def section_in_process(server: Server, dspy: Any, flights: list[int], waves: int) -> None:
    print(f"\n1. in-process, {LATENCY * 1000:.0f} ms server latency, {waves} waves per N")
    print(f"  {'variant':<34}{'N':>5}{'req/s':>10}{'worst lag ms':>14}")
    system = dx.start(
        lm=dx.LM(MODEL, api_base=server.api_base, api_key="sk-bench"), name="bench-async"
    )
    qa = dx.Predict("question -> answer")
    dspy_program = None
    if dspy is not None:
        dspy.configure(lm=dspy.LM(MODEL, api_base=server.api_base, api_key="sk-bench"))
        dspy_program = dspy.Predict("question -> answer")
    import httpx

    async def run() -> dict[tuple[str, int], tuple[float, float]]:
        rows: dict[tuple[str, int], tuple[float, float]] = {}
        for n in flights:
            limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
            async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:

                async def bare(question: str) -> Any:
                    response = await client.post(server.chat_url, json=body_for(question))
                    return response.json()

                async def ours(question: str) -> Any:
                    return await qa.acall(question=question)

                variants: list[tuple[str, Callable[[str], Awaitable[Any]]]] = [
                    ("bare httpx.AsyncClient", bare),
                    ("dx: await qa.acall", ours),
                ]
                if dspy_program is not None:

                    async def theirs(question: str) -> Any:
                        return await dspy_program.acall(question=question)

                    variants.append(("dspy 3.4.1: await Predict.acall", theirs))
                for name, call in variants:
                    await measure(call, n, n)  # warm-up: pools, threads, connections
                    rate, lag = await measure(call, n, n * waves)
                    rows[(name, n)] = (rate, lag)
                    print(f"  {name:<34}{n:>5}{rate:>10.0f}{lag * 1000:>14.1f}", flush=True)
        return rows

    try:
        rows = asyncio.run(run())
    finally:
        system.shutdown()
    for n in flights:
        ours_rate, ours_lag = rows[("dx: await qa.acall", n)]
        bare_rate, _ = rows[("bare httpx.AsyncClient", n)]
        line = f"  N={n}: ours/bare httpx = {ours_rate / bare_rate:.2f}x"
        if ("dspy 3.4.1: await Predict.acall", n) in rows:
            dspy_rate, dspy_lag = rows[("dspy 3.4.1: await Predict.acall", n)]
            line += f", ours/DSPy = {ours_rate / dspy_rate:.2f}x"
            line += f", lag ours {ours_lag * 1000:.1f} ms vs DSPy {dspy_lag * 1000:.1f} ms"
        print(line)


# ----------------------------------------------------------------------- services


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def service(factory: str, server: Server, cache_dir: str) -> Iterator[str]:
    """A uvicorn subprocess serving ``factory``; yields its URL; SIGTERM on exit."""
    port = free_port()
    env = {
        **os.environ,
        "DSPEX_API_BASE": server.api_base,
        "DSPEX_MODEL": MODEL,
        "OPENAI_API_KEY": "sk-bench",
        "DSPY_CACHEDIR": cache_dir,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONPATH": REPO,
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(port)]
    command += ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{factory} did not start")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def load(url: str, clients: int, per_client: int) -> tuple[float, float, int]:
    """``clients`` concurrent clients, each posting ``per_client`` times; (req/s, p99 s, errors)."""
    import httpx

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:

        async def one_client() -> None:
            nonlocal errors
            for question in questions(per_client):
                started = time.perf_counter()
                try:
                    response = await client.post(f"{url}/predict", json={"question": question})
                except httpx.TransportError:
                    errors += 1  # counted, not timed: the row says how many
                    continue
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

        await asyncio.gather(*(one_client() for _ in range(min(clients, 16))))  # warm-up
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        took = time.perf_counter() - started
    p99 = statistics.quantiles(latencies, n=100)[98]
    return len(latencies) / took, p99, errors


def section_service(
    server: Server, have_dspy: bool, clients_list: list[int], per_client: int
) -> None:
    print(f"\n2. the example service under uvicorn, {per_client} requests per client")
    print(f"  {'service':<28}{'clients':>8}{'req/s':>10}{'p99 ms':>10}{'errors':>8}")
    factories = [("dx (examples/service)", "examples.service.app:create_app")]
    if have_dspy:
        factories.append(("dspy 3.4.1 acall", "benchmarks._dspy_service:create_app"))
    rows: dict[tuple[str, int], tuple[float, float, int]] = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        for name, factory in factories:
            with service(factory, server, cache_dir) as url:
                for clients in clients_list:
                    rate, p99, errors = asyncio.run(load(url, clients, per_client))
                    rows[(name, clients)] = (rate, p99, errors)
                    print(
                        f"  {name:<28}{clients:>8}{rate:>10.0f}{p99 * 1000:>10.1f}{errors:>8}",
                        flush=True,
                    )
    if have_dspy:
        for clients in clients_list:
            ours, theirs = rows[(factories[0][0], clients)], rows[(factories[1][0], clients)]
            print(
                f"  {clients} clients: throughput ours/DSPy = {ours[0] / theirs[0]:.2f}x, "
                f"p99 ours/DSPy = {ours[1] / theirs[1]:.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    args = parser.parse_args()
    waves = 2 if args.quick else 4
    per_client = 5 if args.quick else 15
    silence_other_logs()
    with tempfile.TemporaryDirectory() as cache_dir:
        dspy, _ = import_dspy(cache_dir)
        if dspy is None:
            print("DSPy is not installed: its rows are skipped (pip install 'dspex-actors[bench]')")
        version = getattr(dspy, "__version__", "-")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, dspy {version}")
        with Server("process", LATENCY) as server:
            section_in_process(server, dspy, [64, 512], waves)
            section_service(server, dspy is not None, [64, 256], per_client)


if __name__ == "__main__":
    main()
