"""asyncio benchmarks, side by side in one run: ``qa.acall`` vs DSPy 3.4.1 ``acall`` vs bare httpx.

Run from the repository root with the ``[bench]`` and ``[service]`` extras::

    .venv/bin/python benchmarks/bench_async.py            # about 6 min
    .venv/bin/python benchmarks/bench_async.py --quick

Every variant talks to the same rule-based LM server, in a child process on
127.0.0.1 with 50 ms latency (``bench_runtime.Server``). Defaults a user gets:
``dx.start(lm=...)`` (in-memory cache on; questions are unique, so every call
misses) and ``dspy.LM(...)`` (its cache on, its retries).

Bare httpx: httpcore 1.0.9's connection pool does O(connections^2) work on every
request it queues or releases (``AsyncConnectionPool._assign_requests_to_connections``;
encode/httpcore#1035, encode/httpx#3215), so one ``httpx.AsyncClient`` holding N
connections is CPU-bound on the loop (about 40 req/s at N=64 here, whatever the
server). The baseline is therefore N ``httpx.AsyncClient``s of one connection each,
a free one taken per request (``BareClients``; about 15x faster at N=64); the
one-pool client is shown once, at N=64, for reference. The service load uses one
``AsyncClient`` per simulated client for the same reason.

1. **In-process**, N in flight (64, 512), ``N * WAVES`` requests: ``await
   qa.acall`` (under a semaphore of N), ``await dspy.Predict(...).acall``, and a
   bare ``httpx.AsyncClient.post`` of an equivalent body. Throughput (req/s), the
   loop's worst lag (a task sleeping 5 ms, how much later than asked it woke; p99
   of those lags too) and the loop thread's CPU share (``time.thread_time`` of the
   loop thread over wall time: low CPU with high lag means the loop was waiting for
   the GIL, not working). A diagnostic row runs the same dx load as
   ``qa.batch(...)`` on a plain thread while the loop runs only the lag probe:
   the lag our threads alone inflict on a loop that has nothing to do; and once
   more with that load in a child process (same machine, same CPUs, no shared
   GIL), which separates GIL contention from CPU contention.
2. **Service**: ``examples/service`` under uvicorn (a subprocess) vs the same
   service written with DSPy's ``acall`` (``benchmarks/_dspy_service.py``), 64 and
   256 concurrent clients (httpx, in this process), throughput and p99 latency.

Targets (issue 10): ours >= 1.5x DSPy's acall throughput at 512 in flight; loop
lag <= 20 ms where DSPy's is higher; ours >= 0.8x bare httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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


class Probe:
    """The loop's lag while a row runs: a task sleeping 5 ms notes how late it woke.

    Runs on the loop; ``cpu_share`` is the loop thread's CPU time over wall time.
    """

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Future[None] | None = None
        self._wall = self._cpu = 0.0

    async def _run(self) -> None:
        while not self._stop.is_set():
            asked = time.perf_counter()
            await asyncio.sleep(0.005)
            self.lags.append(time.perf_counter() - asked - 0.005)

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> tuple[float, float, float]:
        """(worst lag s, p99 lag s, loop thread CPU share)."""
        cpu, wall = time.thread_time() - self._cpu, time.perf_counter() - self._wall
        self._stop.set()
        assert self._task is not None
        await self._task
        lags = sorted(self.lags) or [0.0]
        return lags[-1], lags[int(0.99 * (len(lags) - 1))], cpu / wall


Row = tuple[float, float, float, float]  # req/s, worst lag s, p99 lag s, loop CPU share


async def measure(call: Callable[[str], Awaitable[Any]], n_flight: int, total: int) -> Row:
    """Run ``total`` calls with ``n_flight`` at once; (req/s, worst lag, p99 lag, loop CPU)."""
    gate = asyncio.Semaphore(n_flight)
    probe = Probe()

    async def one(question: str) -> None:
        async with gate:
            await call(question)

    items = questions(total)
    probe.start()
    started = time.perf_counter()
    await asyncio.gather(*(one(q) for q in items))
    took = time.perf_counter() - started
    worst, p99, cpu = await probe.stop()
    return total / took, worst, p99, cpu


async def measure_threads(qa: Any, n_flight: int, total: int) -> Row:
    """``qa.batch`` of ``total`` on a plain thread; the loop runs only the lag probe."""
    probe = Probe()
    items = [{"question": q} for q in questions(total)]
    done: concurrent.futures.Future[float] = concurrent.futures.Future()

    def work() -> None:
        started = time.perf_counter()
        try:
            qa.batch(items, max_concurrency=n_flight, timeout=120.0)
        except BaseException as exc:
            done.set_exception(exc)
        else:
            done.set_result(time.perf_counter() - started)

    probe.start()
    threading.Thread(target=work, name="bench:batch", daemon=True).start()
    took = await asyncio.wrap_future(done)
    worst, p99, cpu = await probe.stop()
    return total / took, worst, p99, cpu


_CHILD_LOAD = """
import sys, time
import dspex_actors as dx
url, n, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
system = dx.start(lm=dx.LM("openai/rule-based/echo-1", api_base=url, api_key="sk-bench"),
                  configure_logs=False)
qa = dx.Predict("question -> answer")
qa.batch([{"question": f"warm {i}?"} for i in range(n)], max_concurrency=n, timeout=120.0)
print("ready", flush=True)
sys.stdin.readline()
started = time.perf_counter()
qa.batch([{"question": f"child {i}?"} for i in range(total)], max_concurrency=n, timeout=120.0)
print(total / (time.perf_counter() - started), flush=True)
system.shutdown()
"""


async def measure_child(api_base: str, n_flight: int, total: int) -> Row:
    """The ``qa.batch`` load of :func:`measure_threads` in a child process (no shared GIL).

    The loop runs only the lag probe; the child's rate is reported. Raises
    ``RuntimeError`` if the child fails.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD_LOAD,
        api_base,
        str(n_flight),
        str(total),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if await asyncio.wait_for(proc.stdout.readline(), 120) != b"ready\n":
            raise RuntimeError("the child load did not start")
        probe = Probe()
        probe.start()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 300)
        worst, p99, cpu = await probe.stop()
        rate = float(line)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return rate, worst, p99, cpu


class BareClients:
    """N ``httpx.AsyncClient``s of one connection each; a request takes a free one.

    Runs on one loop. Works around httpcore's per-request O(connections^2) pool
    bookkeeping (see the module docstring) so the baseline is httpx's I/O, not that.
    """

    def __init__(self, n: int, httpx: Any) -> None:
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.clients = [httpx.AsyncClient(limits=one, timeout=60.0) for _ in range(n)]
        self.free: asyncio.Queue[Any] = asyncio.Queue()
        for client in self.clients:
            self.free.put_nowait(client)

    async def post(self, url: str, body: dict[str, Any]) -> Any:
        client = await self.free.get()
        try:
            response = await client.post(url, json=body)
            return response.json()
        finally:
            self.free.put_nowait(client)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


def body_for(question: str) -> dict[str, Any]:
    messages = dx.ChatAdapter().format(
        dx.ensure_signature("question -> answer"), [], {"question": question}
    )
    return {"model": "rule-based/echo-1", "messages": messages}


BARE, ONE_POOL, OURS, THREADS, CHILD, DSPY = (
    "bare httpx (N clients x 1 conn)",
    "bare httpx (1 client, pool of N)",
    "dx: await qa.acall",
    "dx: qa.batch on a thread (idle loop)",
    "dx: qa.batch in a child (idle loop)",
    "dspy 3.4.1: await Predict.acall",
)


def section_in_process(
    server: Server, dspy: Any, flights: list[int], waves: int
) -> dict[tuple[str, int], Row]:
    print(f"\n1. in-process, {LATENCY * 1000:.0f} ms server latency, {waves} waves per N")
    print(f"  {'variant':<38}{'N':>5}{'req/s':>8}{'worst lag':>11}{'p99 lag':>9}{'loop CPU':>10}")
    system = dx.start(
        lm=dx.LM(MODEL, api_base=server.api_base, api_key="sk-bench"), name="bench-async"
    )
    qa = dx.Predict("question -> answer")
    dspy_program = None
    if dspy is not None:
        dspy.configure(lm=dspy.LM(MODEL, api_base=server.api_base, api_key="sk-bench"))
        dspy_program = dspy.Predict("question -> answer")
    import httpx

    def show(name: str, n: int, row: Row) -> None:
        rate, worst, p99, cpu = row
        print(
            f"  {name:<38}{n:>5}{rate:>8.0f}{worst * 1000:>9.1f}ms{p99 * 1000:>7.1f}ms"
            f"{cpu * 100:>9.0f}%",
            flush=True,
        )

    async def run() -> dict[tuple[str, int], Row]:
        rows: dict[tuple[str, int], Row] = {}
        probe = Probe()  # the noise floor: the lag of a loop with no load at all, 3 s
        probe.start()
        await asyncio.sleep(3.0)
        worst, p99, cpu = await probe.stop()
        show("idle loop, no load (noise floor)", 0, (0.0, worst, p99, cpu))
        for n in flights:
            bare_clients = BareClients(n, httpx)
            limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
            one_pool = httpx.AsyncClient(limits=limits, timeout=60.0)

            async def bare(question: str, clients: BareClients = bare_clients) -> Any:
                return await clients.post(server.chat_url, body_for(question))

            async def pooled(question: str, client: Any = one_pool) -> Any:
                return (await client.post(server.chat_url, json=body_for(question))).json()

            async def ours(question: str) -> Any:
                return await qa.acall(question=question)

            variants: list[tuple[str, Callable[[str], Awaitable[Any]] | None]] = [
                (BARE, bare),
                (OURS, ours),
                (THREADS, None),
                (CHILD, None),
            ]
            if n == flights[0]:
                variants.insert(1, (ONE_POOL, pooled))  # reference only: too slow at 512
            if dspy_program is not None:

                async def theirs(question: str) -> Any:
                    return await dspy_program.acall(question=question)

                variants.append((DSPY, theirs))
            try:
                for name, call in variants:
                    if name == CHILD:
                        rows[(name, n)] = await measure_child(server.api_base, n, n * waves)
                    elif call is None:
                        await measure_threads(qa, n, n)  # warm-up
                        rows[(name, n)] = await measure_threads(qa, n, n * waves)
                    else:
                        await measure(call, n, n)  # warm-up: pools, threads, connections
                        rows[(name, n)] = await measure(call, n, n * waves)
                    show(name, n, rows[(name, n)])
            finally:
                await bare_clients.aclose()
                await one_pool.aclose()
        return rows

    try:
        rows = asyncio.run(run())
    finally:
        system.shutdown()
    return rows


def judge_in_process(rows: dict[tuple[str, int], Row], flights: list[int]) -> None:
    """Print the ratios against the issue's targets, met or missed."""
    print("\n  targets (issue 10):")
    for n in flights:
        ours, bare = rows[(OURS, n)], rows[(BARE, n)]
        ratio = ours[0] / bare[0]
        print(f"  N={n}: ours/bare httpx = {ratio:.2f}x (>= 0.8x: {_verdict(ratio >= 0.8)})")
        if (DSPY, n) not in rows:
            continue
        theirs = rows[(DSPY, n)]
        speed = ours[0] / theirs[0]
        line = f"  N={n}: ours/DSPy = {speed:.2f}x"
        if n == max(flights):
            line += f" (>= 1.5x at {n}: {_verdict(speed >= 1.5)})"
        print(line)
        lag = f"  N={n}: worst lag ours {ours[1] * 1000:.1f} ms vs DSPy {theirs[1] * 1000:.1f} ms"
        if theirs[1] > 0.020:
            lag += f" (<= 20 ms where DSPy's is higher: {_verdict(ours[1] <= 0.020)})"
        else:
            lag += " (DSPy's <= 20 ms: target not applicable)"
        print(lag)


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


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
    """``clients`` concurrent clients, each posting ``per_client`` times; (req/s, p99 s, errors).

    Each client is its own ``httpx.AsyncClient`` of one connection (as separate users
    are; one shared client of ``clients`` connections would be CPU-bound on httpcore's
    pool bookkeeping, see the module docstring).
    """
    import httpx

    latencies: list[float] = []
    errors = 0
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [httpx.AsyncClient(limits=one, timeout=60.0) for _ in range(clients)]

    async def one_client(client: Any) -> None:
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

    try:
        await asyncio.gather(*(one_client(c) for c in pool))  # warm-up: connections
        latencies.clear()
        errors = 0
        started = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in pool))
        took = time.perf_counter() - started
    finally:
        for client in pool:
            await client.aclose()
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
            rows = section_in_process(server, dspy, [64, 512], waves)
            judge_in_process(rows, [64, 512])
            section_service(server, dspy is not None, [64, 256], per_client)


if __name__ == "__main__":
    main()
