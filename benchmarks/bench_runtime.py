"""Side-by-side runtime benchmarks: dspex_actors versus bare ``requests`` versus DSPy, in one run.

Run from the repository root, in a virtualenv with the ``[bench]`` extra (DSPy 3.4.1)::

    .venv/bin/python benchmarks/bench_runtime.py           # about 6 min
    .venv/bin/python benchmarks/bench_runtime.py --quick   # about 2 min

Every variant talks to the same :class:`~dspex_actors.RuleBasedLMServer` over real
HTTP on 127.0.0.1. The server runs in a child process
(``python -m dspex_actors.testing._rule_server --port 0 --latency L``; it prints its URL on
its first stdout line), so its handler threads do not compete with the clients for
the client process's GIL, which is closer to a real remote LM; **the targets are
judged against it** (``--server-inprocess`` repeats sections 1-2 against an
in-process server, for reference only).

Sections 1 and 2 run twice, each time in a fresh interpreter, once per
configuration of ours:

- ``defaults``: what a user gets from ``dx.start(lm=...)``: the in-memory cache on
  (unique questions, so every call misses: lookup and store are paid) and the
  logging ``dx.start(configure_logs=True)`` sets up (structlog at INFO to stderr;
  the child's stderr goes to a file, and its size is reported);
- ``off``: ``cache=False`` and structlog filtered at WARNING (the old comparison).

The baseline rows (bare ``requests``, DSPy) are the same in both, so each run's
ratios stand on their own; the parent prints both runs' ratios side by side.

What is measured:

1. **Per-call overhead** at 0 ms server latency, one call at a time: a bare
   ``requests.Session().post`` of the same JSON body (messages formatted beforehand
   by ``dx.ChatAdapter``) plus ``response.json()``; ``dx.Predict``; ``dspy.Predict``
   with ``dspy.LM(..., cache=False, num_retries=0)``. Overhead = variant median -
   bare median. Target: ours / DSPy overhead <= 0.5.
2. **Throughput**: 300 requests with unique questions at 50 ms server latency,
   16 and 64 at a time: ``Predict.batch(inputs, max_concurrency=N)``, a bare
   long-lived ``ThreadPoolExecutor(N)`` posting through **one shared**
   ``requests.Session`` whose pool holds N connections (as the LM client's does; both
   made during the warm-up, as our pooled threads and connections are), and
   ``dspy.Evaluate(devset, metric, num_threads=N)`` over ``dspy.Predict``. The
   client process's CPU time per request (all threads) is printed too. Targets at
   64: ours / bare >= 0.9 and ours / DSPy >= 1.5.
3. **Scaling** (``defaults`` configuration): throughput and memory at 16, 64, 256
   and 1024 requests in flight against a 200 ms server, ours vs bare vs DSPy; each
   sample runs, in a fresh interpreter, a warm-up wave of N requests and then the
   timed ``waves x N`` requests (N at a time), with the LM pool and bulkhead (and the bare
   session's pool) sized N. Memory is the peak RSS during warm-up wave and run
   (sampled every 2 ms, cross-checked with the kernel's VmHWM after resetting it)
   minus the idle baseline after an 8-request warm-up, divided by N, so the threads
   and connections an in-flight request needs are counted. Targets: ours / bare
   >= 0.85 at every level, RSS per in-flight request <= 100 KiB.

Fairness: variants run in interleaved rounds whose order rotates (A B C, B C A,
C A B, ...) after a discarded warm-up, so load that comes and goes on a noisy
machine hits every variant alike; ratios are given pooled (ratio of medians) and
paired (median over rounds of the per-round ratio). Timing uses
``time.perf_counter``; DSPy's loggers are at ERROR. Every section counts the chat
requests the server received (from the sequence number in its response ids) and
checks it against the calls made, so no variant can be answered from a cache
unnoticed; answers are checked too.

The script is a report: it exits 0 when a target is missed (and says so),
non-zero only when the benchmark itself failed (wrong answers, missing server
requests, threads left behind, a child that failed). ``--json out.json`` writes
every number.

Threading: single-threaded driver; the clients under test start their own
threads, all stopped (and counted) before exit.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib
import importlib.util
import json
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import IO, Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import requests  # noqa: E402
import structlog  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

import dspex_actors as dx  # noqa: E402

MODEL = "openai/rule-based/echo-1"
SIGNATURE = "question -> answer"
CONFIGS = ("defaults", "off")
_CHAT_ID = re.compile(r"chatcmpl-rule-(\d+)")
_RESULT = "BENCH-RESULT "


# ------------------------------------------------------------------------ logging


def silence_other_logs() -> None:
    """DSPy, LiteLLM, httpx at ERROR (stdlib logging); structlog untouched."""
    for name in ("dspy", "LiteLLM", "litellm", "httpx", "httpcore", "openai"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="dspy")
    warnings.filterwarnings("ignore", module="pydantic")


def setup_logging(config: str) -> None:
    """``off``: structlog filtered at WARNING (no per-request or lifecycle events).
    ``defaults``: structlog left unconfigured, so ``dx.start()`` sets up its default."""
    silence_other_logs()
    if config == "off":
        structlog.reset_defaults()
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def start_ours(lm: dx.LM, config: str, name: str) -> dx.ActorSystem:
    """A system as the configuration says: ``dx.start(lm=lm)`` or cache and logs off."""
    if config == "defaults":
        return dx.start(lm=lm, name=name)
    return dx.start(lm=lm, name=name, cache=False, configure_logs=False)


def import_dspy(cache_dir: str) -> tuple[ModuleType | None, float]:
    """Import dspy (timed) with its logging silenced; ``(None, 0)`` if it is not installed.

    DSPy reads two variables at import: its disk cache goes to ``cache_dir`` (a
    throw-away directory), and its model-metadata lookup uses the bundled snapshot
    instead of trying the internet (which warns, and waits up to 5 s, offline).
    """
    os.environ["DSPY_CACHEDIR"] = cache_dir
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    started = time.perf_counter()
    try:
        module = importlib.import_module("dspy")
    except ImportError:
        return None, 0.0
    elapsed = time.perf_counter() - started
    silence_other_logs()
    return module, elapsed


# ------------------------------------------------------------------------ server


class Server:
    """A RuleBasedLMServer on 127.0.0.1 with a fixed latency: in a child process or in this one.

    Context manager; leaving it stops the server (SIGTERM to the child, waited for;
    or ``RuleBasedLMServer.stop``). Raises ``RuntimeError`` if the child does not
    print its URL.
    """

    def __init__(self, mode: str, latency: float) -> None:
        self.mode = mode
        self.latency = latency
        self._proc: subprocess.Popen[str] | None = None
        self._inproc: dx.RuleBasedLMServer | None = None
        self._stderr: IO[str] | None = None
        if mode == "process":
            self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
            env = dict(os.environ)
            env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    # The package imports its _rule_server module, so ``-m`` warns
                    # that the module is already in sys.modules: harmless.
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
                stderr=self._stderr,
                text=True,
                env=env,
            )
            assert self._proc.stdout is not None
            line = self._proc.stdout.readline()
            match = re.search(r" at (http://\S+)", line)
            if match is None:
                self.stop()
                raise RuntimeError(f"rule server did not print its URL: {line!r}")
            self.url = match.group(1)
        else:
            self._inproc = dx.RuleBasedLMServer(latency=latency).start()
            self.url = self._inproc.url
        self.api_base = self.url + "/v1"
        self.chat_url = self.api_base + "/chat/completions"

    def stop(self) -> None:
        if self._inproc is not None:
            self._inproc.stop()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=10)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        if self._stderr is not None:
            self._stderr.seek(0)
            text = self._stderr.read().strip()
            self._stderr.close()
            self._stderr = None
            if text and text != "stopped":
                print(f"  [rule server stderr] {text[-2000:]}", file=sys.stderr)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_seq(session: requests.Session, chat_url: str) -> int:
    """The server's count of chat requests so far (one probe request, which counts too)."""
    response = session.post(
        chat_url,
        json={"model": "probe", "messages": [{"role": "user", "content": "probe"}]},
        timeout=30,
    )
    match = _CHAT_ID.fullmatch(response.json()["id"])
    assert match is not None, response.text
    return int(match.group(1))


def pooled_session(pool: int) -> requests.Session:
    """One Session whose connection pool holds ``pool`` connections (as ``dx.LM`` builds it)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
    session.mount("http://", adapter)
    return session


# ------------------------------------------------------------------------ workload


class Questions:
    """Unique arithmetic questions ``What is N plus 7?`` (answer ``N + 7``): no two alike."""

    def __init__(self, start: int = 1000) -> None:
        self._n = start
        self._lock = threading.Lock()

    def next(self) -> tuple[str, str]:
        with self._lock:
            self._n += 1
            n = self._n
        return f"What is {n} plus 7?", str(n + 7)

    def take(self, count: int) -> list[tuple[str, str]]:
        return [self.next() for _ in range(count)]


class Bare:
    """The bare client: format once with dx.ChatAdapter, then POST + ``.json()`` only."""

    def __init__(self, chat_url: str, session: requests.Session) -> None:
        self.chat_url = chat_url
        self.session = session
        self.signature = dx.ensure_signature(SIGNATURE)
        self.adapter = dx.ChatAdapter()
        self.lm = dx.LM(MODEL, api_base="http://unused/v1", api_key="x")

    def payload(self, question: str) -> dict[str, Any]:
        """The same JSON body dx.Predict sends (model, messages, temperature, max_tokens)."""
        messages = self.adapter.format(self.signature, [], {"question": question})
        params = self.lm.request_params()
        del params["model"]
        return {"model": self.lm.wire_model, "messages": messages, **params}

    def post(self, payload: dict[str, Any]) -> str:
        response = self.session.post(self.chat_url, json=payload, timeout=30)
        content: str = response.json()["choices"][0]["message"]["content"]
        return content


@dataclass
class Row:
    """One variant: per-operation samples (seconds, or req/s) and per-round medians."""

    label: str
    samples: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.samples)

    def p90(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def rotations(count: int, rounds: int) -> Iterator[list[int]]:
    """Orders A B C, B C A, C A B, ... so every variant takes every position equally often."""
    for r in range(rounds):
        yield [(r + i) % count for i in range(count)]


def paired(rows_a: Sequence[float], rows_b: Sequence[float]) -> float:
    return statistics.median(a / b for a, b in zip(rows_a, rows_b, strict=True))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def judge(ok: bool, mode: str = "process") -> str:
    """The verdict; targets are judged on the child-process server, other rows are reference."""
    verdict = "target met" if ok else "target MISSED"
    return verdict if mode == "process" else f"{verdict} (reference only: in-process server)"


# ------------------------------------------------------------------------ 1. per call


def per_call_variants(
    server: Server,
    config: str,
    dspy: ModuleType | None,
    questions: Questions,
    wrong: list[str],
    stack: contextlib.ExitStack,
) -> list[tuple[Row, Callable[[], float]]]:
    """Section 1's clients, each a ``once() -> seconds`` for one checked call."""
    lm = dx.LM(MODEL, api_base=server.api_base, api_key="x")
    system = start_ours(lm, config, "bench-per-call")
    stack.callback(system.shutdown)
    ours = dx.Predict(SIGNATURE)
    ours.system = system
    session = requests.Session()
    stack.callback(session.close)
    bare = Bare(server.chat_url, session)

    def check(answer: str, expected: str, who: str) -> None:
        if expected not in answer:
            wrong.append(f"{who}: {answer!r} (expected {expected})")

    def run_bare() -> float:
        question, expected = questions.next()
        payload = bare.payload(question)
        t0 = time.perf_counter()
        answer = bare.post(payload)
        elapsed = time.perf_counter() - t0
        check(answer, expected, "bare")
        return elapsed

    def run_module(module: Any, who: str) -> Callable[[], float]:
        def once() -> float:
            question, expected = questions.next()
            t0 = time.perf_counter()
            prediction = module(question=question)
            elapsed = time.perf_counter() - t0
            check(str(prediction.answer), expected, who)
            return elapsed

        return once

    variants: list[tuple[Row, Callable[[], float]]] = [
        (Row("bare requests.Session().post + .json()"), run_bare),
        (Row(f"dx.Predict ({describe_config(config)})"), run_module(ours, "ours")),
    ]
    if dspy is not None:
        dspy_lm = dspy.LM(MODEL, api_base=server.api_base, api_key="x", cache=False, num_retries=0)
        dspy.configure(lm=dspy_lm)
        variants.append(
            (
                Row("dspy.Predict, LM(cache=False, num_retries=0)"),
                run_module(dspy.Predict(SIGNATURE), "dspy"),
            )
        )
    return variants


def bench_per_call(
    mode: str, config: str, dspy: ModuleType | None, rounds: int, batch: int, warmup: int
) -> dict[str, Any]:
    """Section 1 against one server; returns the numbers (and prints the table)."""
    questions = Questions()
    wrong: list[str] = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(mode, 0.0))
        variants = per_call_variants(server, config, dspy, questions, wrong, stack)
        probe = requests.Session()
        stack.callback(probe.close)
        seq0 = server_seq(probe, server.chat_url)
        for _, once in variants:
            for _ in range(warmup):
                once()
        for order in rotations(len(variants), rounds):
            for index in order:
                row, once = variants[index]
                gc.collect()
                samples = [once() for _ in range(batch)]
                row.samples.extend(samples)
                row.rounds.append(statistics.median(samples))
        seq1 = server_seq(probe, server.chat_url)

    calls = len(variants) * (warmup + rounds * batch)
    received = seq1 - seq0 - 1
    rows = [row for row, _ in variants]
    print(
        f"\n1. per-call latency at 0 ms server latency (server: {mode_label(mode)}), "
        f"{rounds} rounds x {batch} calls per variant after {warmup} warm-up calls"
    )
    result = per_call_table(rows, mode)
    print(
        f"  server received {received} chat requests for {calls} calls"
        f" ({'every call did HTTP' if received == calls else 'MISMATCH'})"
    )
    result.update(
        server=mode,
        server_requests=received,
        calls=calls,
        wrong_answers=wrong[:5],
        wrong_count=len(wrong),
    )
    if wrong:
        print(f"  WRONG ANSWERS: {len(wrong)}, e.g. {wrong[:3]}")
    return result


def per_call_table(rows: list[Row], mode: str) -> dict[str, Any]:
    """Print section 1's table (rows: bare, ours[, dspy]) and the overhead ratio."""
    bare_row = rows[0]
    print(
        f"  {'variant':<50} {'n':>5} {'median ms':>10} {'p90 ms':>8} "
        f"{'overhead ms':>12} {'paired':>8}"
    )
    out_rows: dict[str, Any] = {}
    for row in rows:
        overhead = row.median() - bare_row.median()
        paired_overhead = statistics.median(
            a - b for a, b in zip(row.rounds, bare_row.rounds, strict=True)
        )
        shown = "-" if row is bare_row else ms(overhead)
        shown_paired = "-" if row is bare_row else ms(paired_overhead)
        print(
            f"  {row.label:<50} {len(row.samples):>5} {ms(row.median()):>10} "
            f"{ms(row.p90()):>8} {shown:>12} {shown_paired:>8}"
        )
        out_rows[row.label] = {
            "n": len(row.samples),
            "median_ms": row.median() * 1000,
            "p90_ms": row.p90() * 1000,
            "overhead_ms": None if row is bare_row else overhead * 1000,
            "paired_overhead_ms": None if row is bare_row else paired_overhead * 1000,
        }
    result: dict[str, Any] = {"rows": out_rows}
    if len(rows) < 3:
        return result
    ours_row, dspy_row = rows[1], rows[2]
    ours_over = ours_row.median() - bare_row.median()
    dspy_over = dspy_row.median() - bare_row.median()
    ratio = ours_over / dspy_over if dspy_over > 0 else float("inf")
    per_round = [
        (o - b) / (d - b) if d > b else float("inf")
        for o, b, d in zip(ours_row.rounds, bare_row.rounds, dspy_row.rounds, strict=True)
    ]
    ratio_paired = statistics.median(per_round)
    print(
        f"  ours overhead / DSPy overhead: {ratio:.2f} pooled, {ratio_paired:.2f} paired "
        f"(target <= 0.5): {judge(ratio <= 0.5, mode)}"
    )
    result.update(
        ours_overhead_ms=ours_over * 1000,
        dspy_overhead_ms=dspy_over * 1000,
        ratio_overhead_ours_over_dspy=ratio,
        ratio_overhead_ours_over_dspy_paired=ratio_paired,
        target_overhead_met=ratio <= 0.5 if mode == "process" else None,
    )
    return result


# ------------------------------------------------------------------------ 2. throughput


def bare_runner(
    chat_url: str, stack: contextlib.ExitStack
) -> Callable[[list[tuple[str, str]], int], list[str]]:
    """A runner: POST every payload with a long-lived ``ThreadPoolExecutor(n)`` through
    one ``requests.Session`` whose pool holds ``n`` connections (one of each per ``n``,
    made on first use, like the LM client's pool and our pooled threads)."""
    pools: dict[int, tuple[Bare, ThreadPoolExecutor]] = {}

    def run(items: list[tuple[str, str]], n: int) -> list[str]:
        if n not in pools:
            session = pooled_session(n)
            executor = ThreadPoolExecutor(n)
            stack.callback(session.close)
            stack.callback(executor.shutdown)
            pools[n] = (Bare(chat_url, session), executor)
        bare, executor = pools[n]
        payloads = [bare.payload(q) for q, _ in items]
        return list(executor.map(bare.post, payloads))

    return run


def timed(run: Callable[[], list[str]], expected: list[str]) -> tuple[float, float, int]:
    """Run once after a GC: ``(wall seconds, process CPU seconds, wrong answers)``."""
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    answers = run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, sum(exp not in a for a, exp in zip(answers, expected, strict=True))


def make_runners(
    server: Server, config: str, dspy: ModuleType | None, pool: int, stack: contextlib.ExitStack
) -> list[tuple[str, Callable[[list[tuple[str, str]], int], list[str]]]]:
    """The three clients, each a ``run(items, n) -> answers`` with ``n`` in flight."""
    # The bulkhead (max_in_flight, default 64) is sized with the pool: both are the
    # per-LM concurrency a user raises for N in flight; the rest stays at its default.
    lm = dx.LM(MODEL, api_base=server.api_base, api_key="x", pool_size=pool, max_in_flight=pool)
    system = start_ours(lm, config, "bench-throughput")
    stack.callback(system.shutdown)
    ours = dx.Predict(SIGNATURE)
    ours.system = system
    run_bare = bare_runner(server.chat_url, stack)

    def run_ours(items: list[tuple[str, str]], n: int) -> list[str]:
        predictions = ours.batch([{"question": q} for q, _ in items], max_concurrency=n)
        return [str(p.answer) for p in predictions]

    runners: list[tuple[str, Callable[[list[tuple[str, str]], int], list[str]]]] = [
        ("bare", run_bare),
        ("ours", run_ours),
    ]
    if dspy is not None:
        dspy.configure(
            lm=dspy.LM(MODEL, api_base=server.api_base, api_key="x", cache=False, num_retries=0)
        )
        program = dspy.Predict(SIGNATURE)

        def metric(example: Any, prediction: Any, trace: Any = None) -> bool:
            return True  # answers are checked by the caller

        def run_dspy(items: list[tuple[str, str]], n: int) -> list[str]:
            devset = [dspy.Example(question=q).with_inputs("question") for q, _ in items]
            evaluate = dspy.Evaluate(
                devset=devset,
                metric=metric,
                num_threads=n,
                display_progress=False,
                display_table=False,
            )
            outcome = evaluate(program)
            by_question = {r[0].question: str(r[1].answer) for r in outcome.results}
            return [by_question.get(q, "") for q, _ in items]

        runners.append(("dspy", run_dspy))
    return runners


def bench_throughput(
    mode: str,
    config: str,
    dspy: ModuleType | None,
    rounds: int,
    n_requests: int,
    concurrencies: Sequence[int],
    latency: float,
) -> dict[str, Any]:
    """Section 2 against one server; returns the numbers (and prints the table)."""
    questions = Questions(start=10_000_000)
    wrong: list[str] = []
    results: dict[int, dict[str, Row]] = {}
    cpu: dict[int, dict[str, list[float]]] = {}
    calls = 0
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(mode, latency))
        runners = make_runners(server, config, dspy, max(concurrencies), stack)
        probe = requests.Session()
        stack.callback(probe.close)
        seq0 = server_seq(probe, server.chat_url)
        for n in concurrencies:
            results[n] = {name: Row(name) for name, _ in runners}
            cpu[n] = {name: [] for name, _ in runners}
            for _, run in runners:  # warm-up: connections, thread pools, lazy imports
                run(questions.take(2 * n), n)
                calls += 2 * n
            for order in rotations(len(runners), rounds):
                for index in order:
                    name, run = runners[index]
                    items = questions.take(n_requests)
                    wall, used, bad = timed(lambda: run(items, n), [e for _, e in items])  # noqa: B023
                    calls += n_requests
                    if bad:
                        wrong.append(f"{name}: {bad} of {n_requests} wrong")
                    results[n][name].samples.append(n_requests / wall)
                    results[n][name].rounds.append(n_requests / wall)
                    cpu[n][name].append(used / n_requests)
        seq1 = server_seq(probe, server.chat_url)

    received = seq1 - seq0 - 1
    print(
        f"\n2. throughput: {n_requests} requests (unique questions) at {latency * 1000:g} ms "
        f"server latency (server: {mode_label(mode)}), {rounds} rounds, median req/s"
    )
    print(
        "  bare = a long-lived ThreadPoolExecutor(N) posting through ONE shared "
        "requests.Session with a pool of N connections; cpu = client process CPU us/request"
    )
    out = throughput_table(results, cpu, concurrencies, latency, dspy is not None, mode)
    print(
        f"  server received {received} chat requests for {calls} calls"
        f" ({'every call did HTTP' if received == calls else 'MISMATCH'})"
    )
    if wrong:
        print(f"  WRONG ANSWERS: {wrong[:5]}")
    out.update(server_requests=received, calls=calls, wrong=wrong[:5], wrong_count=len(wrong))
    return out


def throughput_table(
    results: dict[int, dict[str, Row]],
    cpu: dict[int, dict[str, list[float]]],
    concurrencies: Sequence[int],
    latency: float,
    with_dspy: bool,
    mode: str,
) -> dict[str, Any]:
    """Print section 2's table and the verdicts at the highest concurrency."""
    header = f"  {'N':>4} {'ideal':>6} {'bare':>6} {'ours':>6}"
    header += f" {'dspy':>6}" if with_dspy else ""
    header += f" {'ours/bare':>9} {'paired':>6}"
    header += f" {'ours/dspy':>9} {'paired':>6}" if with_dspy else ""
    header += f"  {'cpu bare':>8} {'ours':>6}" + (f" {'dspy':>6}" if with_dspy else "")
    print(header)
    out: dict[str, Any] = {"server": mode, "by_concurrency": {}}
    for n in concurrencies:
        rows = results[n]
        ob = rows["ours"].median() / rows["bare"].median()
        ob_p = paired(rows["ours"].rounds, rows["bare"].rounds)
        entry: dict[str, Any] = {
            "ideal": n / latency,
            "ours_over_bare": ob,
            "ours_over_bare_paired": ob_p,
            **{name: row.samples for name, row in rows.items()},
            "cpu_us": {name: 1e6 * statistics.median(v) for name, v in cpu[n].items()},
        }
        line = f"  {n:>4} {n / latency:>6.0f} {rows['bare'].median():>6.0f}"
        line += f" {rows['ours'].median():>6.0f}"
        if with_dspy:
            od = rows["ours"].median() / rows["dspy"].median()
            od_p = paired(rows["ours"].rounds, rows["dspy"].rounds)
            entry.update(ours_over_dspy=od, ours_over_dspy_paired=od_p)
            line += (
                f" {rows['dspy'].median():>6.0f} {ob:>9.2f} {ob_p:>6.2f} {od:>9.2f} {od_p:>6.2f}"
            )
        else:
            line += f" {ob:>9.2f} {ob_p:>6.2f}"
        line += "  " + " ".join(
            f"{entry['cpu_us'][name]:>{8 if name == 'bare' else 6}.0f}" for name in rows
        )
        print(line)
        out["by_concurrency"][str(n)] = entry
    top = out["by_concurrency"][str(max(concurrencies))]
    print(
        f"  ours/bare at {max(concurrencies)}: {top['ours_over_bare']:.2f} (target >= 0.9): "
        f"{judge(top['ours_over_bare'] >= 0.9, mode)}"
    )
    if with_dspy:
        print(
            f"  ours/dspy at {max(concurrencies)}: {top['ours_over_dspy']:.2f} (target >= 1.5): "
            f"{judge(top['ours_over_dspy'] >= 1.5, mode)}"
        )
    return out


def proc_status(key: str) -> int:
    """A ``kB`` line of /proc/self/status (``VmRSS``, ``VmHWM``), in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} line in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


class Sampler:
    """A daemon thread sampling VmRSS and the thread count every ``interval`` s; keeps the max."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak_rss = 0
        self.peak_threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench:rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, proc_status("VmRSS"))
            self.peak_threads = max(self.peak_threads, threading.active_count())
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)


# ------------------------------------------------------------------------ 3. scaling


def scale_child(kind: str, n: int, api_base: str, waves: int) -> int:
    """Child-process mode: ``waves x n`` requests, ``n`` in flight; print one JSON line."""
    cache_dir = tempfile.mkdtemp(prefix="bench-runtime-dspy-cache-")
    stack = contextlib.ExitStack()
    stack.callback(shutil.rmtree, cache_dir, True)
    questions = Questions(start={"bare": 30, "ours": 40, "dspy": 50}[kind] * 1_000_000)
    server = _RemoteServer(api_base)
    dspy = None
    if kind == "dspy":
        dspy, _ = import_dspy(cache_dir)
        assert dspy is not None, "dspy is not installed"
    else:
        silence_other_logs()
    runners = dict(make_scale_runners(kind, server, dspy, n, stack))
    run = runners[kind]
    run(questions.take(8), 8)  # warm-up: imports, first connections
    gc.collect()
    base_threads = threading.active_count()
    baseline = statistics.median(proc_status("VmRSS") for _ in range(5))
    hwm_reset = reset_peak_rss()
    items = questions.take(waves * n)
    with Sampler() as sampler:
        warm = questions.take(n)  # one wave: threads, connections (memory counts)
        run(warm, n)
        wall, cpu, bad = timed(lambda: run(items, n), [e for _, e in items])
    hwm = proc_status("VmHWM")
    stack.close()
    tqdm_note = stop_tqdm_monitor()
    leftover = join_other_threads(10.0)
    print(
        json.dumps(
            {
                "kind": kind,
                "n": n,
                "requests": len(items),
                "calls": len(items) + 8 + n,
                "rate": len(items) / wall,
                "cpu_us": 1e6 * cpu / len(items),
                "baseline": baseline,
                "peak_sampled": sampler.peak_rss,
                "peak_hwm": hwm if hwm_reset else None,
                "base_threads": base_threads,
                "peak_threads": sampler.peak_threads,
                "wrong": bad,
                "leftover_threads": leftover,
                "tqdm": bool(tqdm_note),
            }
        )
    )
    return 0 if not leftover and not bad else 1


@dataclass
class _RemoteServer:
    """The URLs of a server started by the parent (the ``Server`` fields runners use)."""

    api_base: str

    @property
    def chat_url(self) -> str:
        return self.api_base + "/chat/completions"


def make_scale_runners(
    kind: str, server: Any, dspy: ModuleType | None, n: int, stack: contextlib.ExitStack
) -> list[tuple[str, Callable[[list[tuple[str, str]], int], list[str]]]]:
    """Only the runner ``kind`` needs (ours with the ``defaults`` configuration)."""
    if kind == "bare":
        return [("bare", bare_runner(server.chat_url, stack))]
    return [r for r in make_runners(server, "defaults", dspy, n, stack) if r[0] == kind]


def bench_scaling(
    levels: Sequence[int], latency: float, rounds: int, waves: int, with_dspy: bool
) -> dict[str, Any]:
    """Section 3: each sample a fresh interpreter against one child-process server."""
    kinds = ["bare", "ours", "dspy"] if with_dspy else ["bare", "ours"]
    samples: dict[int, dict[str, list[dict[str, Any]]]] = {
        n: {k: [] for k in kinds} for n in levels
    }
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    with Server("process", latency) as server, requests.Session() as probe:
        seq0 = server_seq(probe, server.chat_url)
        for n in levels:
            for order in rotations(len(kinds), rounds):
                for index in order:
                    kind = kinds[index]
                    args = ["--scale-child", kind, str(n), server.api_base, str(waves)]
                    samples[n][kind].append(run_child(args, env, timeout=600))
        seq1 = server_seq(probe, server.chat_url)
    calls = sum(
        s["calls"] for by_kind in samples.values() for rows in by_kind.values() for s in rows
    )
    received = seq1 - seq0 - 1
    print(
        f"\n3. scaling: {waves} x N requests, N in flight, {latency * 1000:g} ms server latency "
        f"(child-process server), ours = dx.start defaults (cache on, default logging), "
        f"pools and ours' bulkhead sized N; each sample a fresh interpreter, "
        f"{rounds} per cell; median"
    )
    out = scaling_table(samples, levels, kinds, latency)
    print(
        f"  server received {received} chat requests for {calls} calls"
        f" ({'every call did HTTP' if received == calls else 'MISMATCH'})"
    )
    out.update(server_requests=received, calls=calls, waves=waves, latency=latency)
    out["wrong_count"] = sum(
        s["wrong"] for by_kind in samples.values() for rows in by_kind.values() for s in rows
    )
    return out


def scaling_table(
    samples: dict[int, dict[str, list[dict[str, Any]]]],
    levels: Sequence[int],
    kinds: list[str],
    latency: float,
) -> dict[str, Any]:
    """Print section 3's table and its verdicts."""
    with_dspy = "dspy" in kinds
    rate_cols = " ".join(f"{k:>6}" for k in kinds)
    kib_cols = " ".join(f"{k:>6}" for k in kinds)
    print(
        f"  {'N':>5} {'ideal':>6} {rate_cols}  {'ours/bare':>9}"
        + (f" {'ours/dspy':>9}" if with_dspy else "")
        + f"   KiB/in-flight {kib_cols}   peak threads {kib_cols}"
    )
    out: dict[str, Any] = {"levels": {}}
    worst_bare, worst_kib = float("inf"), 0.0
    for n in levels:
        cell = samples[n]
        rate = {k: statistics.median(s["rate"] for s in cell[k]) for k in kinds}
        kib = {
            k: statistics.median((s["peak_sampled"] - s["baseline"]) / n / 1024 for s in cell[k])
            for k in kinds
        }
        ob = rate["ours"] / rate["bare"]
        worst_bare, worst_kib = min(worst_bare, ob), max(worst_kib, kib["ours"])
        line = f"  {n:>5} {n / latency:>6.0f} " + " ".join(f"{rate[k]:>6.0f}" for k in kinds)
        line += f"  {ob:>9.2f}"
        if with_dspy:
            line += f" {rate['ours'] / rate['dspy']:>9.2f}"
        line += "                 " + " ".join(f"{kib[k]:>6.1f}" for k in kinds)
        line += "                " + " ".join(
            f"{max(s['peak_threads'] for s in cell[k]):>6}" for k in kinds
        )
        print(line)
        out["levels"][str(n)] = {"rate": rate, "kib_per_in_flight": kib, "samples": cell}
    print(
        f"  ours/bare at every level >= 0.85: worst {worst_bare:.2f}: {judge(worst_bare >= 0.85)}"
    )
    print(
        f"  ours RSS per in-flight request <= 100 KiB: worst {worst_kib:.1f} KiB: "
        f"{judge(worst_kib <= 100)}"
    )
    print(
        "  (peak threads show how many requests really were in flight at once: bare and DSPy"
        " use one thread per request, ours two; where fewer than N were, the client could not"
        " start them faster than the server answered, and KiB/in-flight, divided by N, is low)"
    )
    out.update(worst_ours_over_bare=worst_bare, worst_ours_kib=worst_kib)
    return out


def run_child(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run this script with ``args`` in a fresh interpreter; its last stdout line is JSON."""
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"child {args} failed ({done.returncode}): {done.stdout[-1000:]}{done.stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def mode_label(mode: str) -> str:
    return "separate process" if mode == "process" else "in this process"


def join_other_threads(timeout: float) -> list[str]:
    """Wait (bounded) for every thread but this one to end; return the names still alive."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threading.enumerate() if t is not threading.current_thread()]


def stop_tqdm_monitor() -> str:
    """Stop tqdm's monitor thread, which DSPy's Evaluate starts and never stops; say so."""
    tqdm = sys.modules.get("tqdm")
    monitor = getattr(getattr(tqdm, "tqdm", None), "monitor", None) if tqdm else None
    if monitor is None or not monitor.is_alive():
        return ""
    monitor.exit()
    monitor.join(5.0)
    return " (and the tqdm_monitor thread DSPy's Evaluate left running, stopped here)"


def load_average() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


# ------------------------------------------------------------------------ configurations


def config_child(config: str, quick: bool, modes: list[str]) -> int:
    """Child-process mode: sections 1 and 2 with ours in ``config``; last line is JSON."""
    setup_logging(config)
    cache_dir = tempfile.mkdtemp(prefix="bench-runtime-dspy-cache-")
    dspy, import_s = import_dspy(cache_dir)
    report: dict[str, Any] = {"config": config, "per_call": [], "throughput": []}
    if dspy is not None:
        report["dspy"] = dspy.__version__
        print(f"dspy {dspy.__version__} (import {import_s:.2f} s), LM(cache=False, num_retries=0)")
    failed = False
    try:
        for mode in modes:
            per_call = bench_per_call(
                mode,
                config,
                dspy,
                rounds=6 if quick else 12,
                batch=50 if quick else 150,
                warmup=30 if quick else 60,
            )
            report["per_call"].append(per_call)
            failed |= (
                per_call["wrong_count"] > 0 or per_call["server_requests"] != per_call["calls"]
            )
        for mode in modes:
            throughput = bench_throughput(
                mode,
                config,
                dspy,
                rounds=2 if quick else 5,
                n_requests=300,
                concurrencies=(16, 64),
                latency=0.05,
            )
            report["throughput"].append(throughput)
            failed |= throughput["wrong_count"] > 0 or (
                throughput["server_requests"] != throughput["calls"]
            )
    finally:
        report["tqdm_stopped"] = bool(stop_tqdm_monitor())
        report["leftover_threads"] = join_other_threads(10.0)
        shutil.rmtree(cache_dir, ignore_errors=True)
    print(_RESULT + json.dumps(report), flush=True)
    return 1 if failed or report["leftover_threads"] else 0


def run_config(config: str, quick: bool, modes: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run :func:`config_child` in a fresh interpreter, echoing its tables; its stderr
    (ours' default logging, when on) goes to a file whose size is reported."""
    args = [sys.executable, os.path.abspath(__file__), "--config-child", config]
    args += ["--quick"] if quick else []
    args += ["--modes", ",".join(modes)]
    print(f"\n=== ours with {describe_config(config)} (fresh interpreter) ===", flush=True)
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        assert proc.stdout is not None
        result: dict[str, Any] | None = None
        for line in proc.stdout:
            if line.startswith(_RESULT):
                result = json.loads(line[len(_RESULT) :])
            else:
                print(line, end="", flush=True)
        code = proc.wait(timeout=900)
        err.seek(0)
        text = err.read()
    lines = text.count("\n")
    print(f"  stderr of this run: {lines} lines, {len(text)} bytes (ours' logging; DSPy's is off)")
    if code != 0 or result is None:
        raise RuntimeError(f"configuration {config} failed ({code}): {text[-3000:]}")
    result["stderr_lines"] = lines
    return result


def describe_config(config: str) -> str:
    if config == "defaults":
        return "defaults: cache on (misses), default logging"
    return "cache and logs off"


def summary(configs: dict[str, dict[str, Any]], scaling: dict[str, Any] | None) -> None:
    """The ratios the targets speak of, per configuration side by side."""
    print("\nsummary (server in a separate process; the targets hold for the defaults)")
    print(f"  {'ratio':<46} {'defaults':>9} {'off':>9}  target")

    def cell(
        config: str, get: Callable[[dict[str, Any]], float | None], ok: Callable[[float], bool]
    ) -> str:
        data = configs.get(config)
        value = get(data) if data is not None else None
        if value is None:
            return f"{'-':>9}"
        return f"{value:>7.2f}{'  ' if ok(value) else ' !'}"

    def per_call(d: dict[str, Any]) -> float | None:
        rows = [r for r in d["per_call"] if r["server"] == "process"]
        return rows[0].get("ratio_overhead_ours_over_dspy") if rows else None

    def at64(key: str) -> Callable[[dict[str, Any]], float | None]:
        def get(d: dict[str, Any]) -> float | None:
            rows = [r for r in d["throughput"] if r["server"] == "process"]
            value: float | None = rows[0]["by_concurrency"]["64"].get(key) if rows else None
            return value

        return get

    lines = [
        ("per-call overhead, ours/DSPy", per_call, lambda v: v <= 0.5, "<= 0.5"),
        (
            "throughput at 64 in flight, ours/bare",
            at64("ours_over_bare"),
            lambda v: v >= 0.9,
            ">= 0.9",
        ),
        (
            "throughput at 64 in flight, ours/DSPy",
            at64("ours_over_dspy"),
            lambda v: v >= 1.5,
            ">= 1.5",
        ),
    ]
    for label, get, ok, target in lines:
        print(f"  {label:<46} {cell('defaults', get, ok)} {cell('off', get, ok)}  {target}")
    if scaling is not None:
        worst, kib = scaling["worst_ours_over_bare"], scaling["worst_ours_kib"]
        for label, value, ok, target in (
            ("scaling 16..1024 at 200 ms, worst ours/bare", worst, worst >= 0.85, ">= 0.85"),
            ("scaling, worst ours KiB per in-flight request", kib, kib <= 100, "<= 100"),
        ):
            mark = "  " if ok else " !"
            print(f"  {label:<46} {value:>7.2f}{mark} {'-':>9}  {target}")
    print("  (! = target missed in this run)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller run, about 2 min")
    parser.add_argument("--json", metavar="PATH", help="also write every number as JSON here")
    parser.add_argument(
        "--server-inprocess",
        action="store_true",
        help="also run sections 1-2 against an in-process server (reference only)",
    )
    parser.add_argument("--no-scaling", action="store_true", help="skip section 3")
    parser.add_argument("--config-child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--modes", default="process", help=argparse.SUPPRESS)
    parser.add_argument("--scale-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.config_child:
        return config_child(args.config_child, args.quick, args.modes.split(","))
    if args.scale_child:
        kind, n, api_base, waves = args.scale_child
        return scale_child(kind, int(n), api_base, int(waves))

    quick: bool = args.quick
    started = time.monotonic()
    modes = ["process", "inprocess"] if args.server_inprocess else ["process"]
    print(
        f"bench_runtime ({'quick' if quick else 'full'}): {datetime.date.today().isoformat()}, "
        f"python {platform.python_version()}, {os.cpu_count()} cpus, "
        f"switch interval {sys.getswitchinterval() * 1e3:g} ms"
    )
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"load average at start: {load_average()}")
    with_dspy = importlib.util.find_spec("dspy") is not None
    if not with_dspy:
        print("dspy not installed (pip install -e '.[bench]'): DSPy columns skipped")
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    report: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "quick": quick,
        "configs": {},
    }
    for config in CONFIGS:
        report["configs"][config] = run_config(config, quick, modes, env)
    scaling = None
    if not args.no_scaling:
        scaling = bench_scaling(
            levels=(16, 64, 256, 1024),
            latency=0.2,
            rounds=1 if quick else 3,
            waves=3 if quick else 4,
            with_dspy=with_dspy,
        )
        report["scaling"] = scaling
    summary(report["configs"], scaling)
    leftover = join_other_threads(10.0)
    failed = scaling is not None and (
        scaling["wrong_count"] > 0 or scaling["server_requests"] != scaling["calls"]
    )
    print(f"\nshutdown: {len(leftover)} threads left besides main: {leftover or 'none'}")
    print(f"load average at end: {load_average()}; wall time {time.monotonic() - started:.1f} s")
    report["leftover_threads"] = leftover
    report["wall_s"] = time.monotonic() - started
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return 1 if failed or leftover else 0


if __name__ == "__main__":
    sys.exit(main())
