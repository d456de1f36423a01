"""Side-by-side runtime benchmarks: dspex_actors versus bare ``requests`` versus DSPy, in one run.

Run from the repository root (the DSPy columns need ``dspy`` importable)::

    PYTHONPATH=. /tmp/dspy-venv/bin/python benchmarks/bench_runtime.py           # about 2.5 min
    PYTHONPATH=. /tmp/dspy-venv/bin/python benchmarks/bench_runtime.py --quick   # about 35 s
    .venv/bin/python benchmarks/bench_runtime.py --quick   # no dspy here: DSPy columns skipped

Every variant talks to the same :class:`~dspex_actors.RuleBasedLMServer` over real
HTTP on 127.0.0.1. The primary server runs in a child process
(``python -m dspex_actors.testing._rule_server --port 0 --latency L``; it prints its URL on
its first stdout line), so its handler threads do not compete with the clients
for this process's GIL, which is closer to a real remote LM; **the targets are
judged against it**. The full run then repeats sections 1 and 2 against an
in-process server, for reference (``--server both``, the full run's default;
``--quick`` defaults to ``--server-process`` only). ``--server-process`` or
``--server-inprocess`` pick one kind. Section 3 always uses a child-process
server (its memory must not count).

What is measured:

1. **Per-call overhead** at 0 ms server latency, one call at a time:
   a bare ``requests.Session().post`` of the same JSON body (messages formatted
   beforehand by ``dx.ChatAdapter``) plus ``response.json()``; ``dx.Predict`` in a
   system started with ``cache=False`` (every call does HTTP); ``dx.Predict`` with
   the default in-memory cache on and unique questions (every call misses, so the
   cache lookup and store are paid on top); ``dspy.Predict`` with
   ``dspy.LM(..., cache=False, num_retries=0)`` (DSPy's default engine selection).
   Overhead = variant median - bare median. Target: ours / DSPy overhead <= 0.5.
2. **Throughput**: 300 requests with unique questions at 50 ms server latency,
   16 and 64 at a time: ``Predict.batch(inputs, max_concurrency=N)`` (``cache=False``),
   a bare ``ThreadPoolExecutor(N)`` posting through **one shared**
   ``requests.Session`` whose pool holds N connections (as the LM client's does),
   and ``dspy.Evaluate(devset, metric, num_threads=N)`` over ``dspy.Predict``.
   Targets at 64: ours / bare >= 0.9 and ours / DSPy >= 1.5.
3. **RSS per in-flight request**: M requests held in flight by a server answering
   after 1 s, in a fresh interpreter per sample: peak VmRSS during the burst
   (sampled every 2 ms from a thread, cross-checked with the kernel's VmHWM after
   resetting it) minus the idle baseline after a small warm-up, divided by M.
   Ours (``Predict.batch``, LM pool sized M) and a bare thread pool (M threads, one
   Session with M connections).

Fairness: variants run in interleaved rounds whose order rotates (A B C, B C A,
C A B, ...) after a discarded warm-up, so load that comes and goes on a noisy
2-core machine hits every variant alike; ratios are given pooled (ratio of
medians) and paired (median over rounds of the per-round ratio). Timing uses
``time.perf_counter``; structlog is filtered at WARNING and DSPy's loggers at
ERROR. Every section counts the chat requests the server received (from the
sequence number in its response ids) and checks it against the calls made, so
no variant can be answered from a cache unnoticed; answers are checked too.

The script is a report: it exits 0 when a target is missed (and says so),
non-zero only when the benchmark itself failed (wrong answers, missing server
requests, threads left behind). ``--json out.json`` writes every number.

Threading: single-threaded driver; the clients under test start their own
threads, all stopped (and counted) before exit.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib
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
_CHAT_ID = re.compile(r"chatcmpl-rule-(\d+)")


# ------------------------------------------------------------------------ logging


def silence_logs() -> None:
    """structlog filtered at WARNING (no per-request events); DSPy, LiteLLM, httpx at ERROR."""
    structlog.reset_defaults()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    for name in ("dspy", "LiteLLM", "litellm", "httpx", "httpcore", "openai"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="dspy")
    warnings.filterwarnings("ignore", module="pydantic")


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
    silence_logs()
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


def bench_per_call(
    mode: str, dspy: ModuleType | None, rounds: int, batch: int, warmup: int
) -> dict[str, Any]:
    """Section 1 against one server; returns the numbers (and prints the table)."""
    questions = Questions()
    wrong: list[str] = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(mode, 0.0))
        lm = dx.LM(MODEL, api_base=server.api_base, api_key="x")
        nocache = dx.start(lm=lm, cache=False, name="bench-nocache", configure_logs=False)
        stack.callback(nocache.shutdown)
        cached = dx.start(lm=lm, name="bench-cache", configure_logs=False)
        stack.callback(cached.shutdown)
        ours = dx.Predict(SIGNATURE)
        ours.system = nocache
        ours_cached = dx.Predict(SIGNATURE)
        ours_cached.system = cached
        session = requests.Session()
        stack.callback(session.close)
        bare = Bare(server.chat_url, session)
        probe = requests.Session()
        stack.callback(probe.close)

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
            (Row("dx.Predict, cache=False"), run_module(ours, "ours")),
            (
                Row("dx.Predict, cache on (unique questions: misses)"),
                run_module(ours_cached, "ours+cache"),
            ),
        ]
        if dspy is not None:
            dspy_lm = dspy.LM(
                MODEL, api_base=server.api_base, api_key="x", cache=False, num_retries=0
            )
            dspy.configure(lm=dspy_lm)
            variants.append(
                (
                    Row("dspy.Predict, LM(cache=False, num_retries=0)"),
                    run_module(dspy.Predict(SIGNATURE), "dspy"),
                )
            )

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
    bare_row = rows[0]
    print(
        f"\n1. per-call latency at 0 ms server latency (server: {mode_label(mode)}), "
        f"{rounds} rounds x {batch} calls per variant after {warmup} warm-up calls"
    )
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
    print(
        f"  server received {received} chat requests for {calls} calls"
        f" ({'every call did HTTP' if received == calls else 'MISMATCH'})"
    )
    result: dict[str, Any] = {
        "server": mode,
        "rows": out_rows,
        "server_requests": received,
        "calls": calls,
        "wrong_answers": wrong[:5],
        "wrong_count": len(wrong),
    }
    if wrong:
        print(f"  WRONG ANSWERS: {len(wrong)}, e.g. {wrong[:3]}")
    if dspy is not None:
        ours_row, dspy_row = rows[1], rows[3]
        ours_over = ours_row.median() - bare_row.median()
        dspy_over = dspy_row.median() - bare_row.median()
        ratio = ours_over / dspy_over if dspy_over > 0 else float("inf")
        per_round = [
            (o - b) / (d - b) if d > b else float("inf")
            for o, b, d in zip(ours_row.rounds, bare_row.rounds, dspy_row.rounds, strict=True)
        ]
        ratio_paired = statistics.median(per_round)
        cached_over = rows[2].median() - bare_row.median()
        print(
            f"  ours overhead / DSPy overhead (cache=False): {ratio:.2f} pooled, "
            f"{ratio_paired:.2f} paired (target <= 0.5): {judge(ratio <= 0.5, mode)}"
        )
        print(
            "  (info) ours with cache on / DSPy overhead: "
            f"{cached_over / dspy_over if dspy_over > 0 else float('inf'):.2f}"
        )
        result["ratio_overhead_ours_over_dspy"] = ratio
        result["ratio_overhead_ours_over_dspy_paired"] = ratio_paired
        result["target_overhead_met"] = ratio <= 0.5 if mode == "process" else None
    return result


# ------------------------------------------------------------------------ 2. throughput


def bench_throughput(
    mode: str,
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
    calls = 0
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(mode, latency))
        lm = dx.LM(MODEL, api_base=server.api_base, api_key="x", pool_size=max(concurrencies))
        system = dx.start(lm=lm, cache=False, name="bench-throughput", configure_logs=False)
        stack.callback(system.shutdown)
        ours = dx.Predict(SIGNATURE)
        ours.system = system
        probe = requests.Session()
        stack.callback(probe.close)
        sessions: dict[int, requests.Session] = {}
        for n in concurrencies:
            sessions[n] = pooled_session(n)
            stack.callback(sessions[n].close)
        dspy_program: Any = None
        if dspy is not None:
            dspy_lm = dspy.LM(
                MODEL, api_base=server.api_base, api_key="x", cache=False, num_retries=0
            )
            dspy.configure(lm=dspy_lm)
            dspy_program = dspy.Predict(SIGNATURE)

        def run_ours(n: int, count: int) -> float:
            items = questions.take(count)
            t0 = time.perf_counter()
            predictions = ours.batch([{"question": q} for q, _ in items], max_concurrency=n)
            score = sum(
                exp in str(p.answer) for p, (_, exp) in zip(predictions, items, strict=True)
            )
            elapsed = time.perf_counter() - t0
            if score != count:
                wrong.append(f"ours: {count - score} of {count} wrong")
            return elapsed

        def run_bare(n: int, count: int) -> float:
            bare = Bare(server.chat_url, sessions[n])
            items = [(bare.payload(q), exp) for q, exp in questions.take(count)]
            t0 = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                answers = list(pool.map(bare.post, [payload for payload, _ in items]))
            score = sum(exp in a for a, (_, exp) in zip(answers, items, strict=True))
            elapsed = time.perf_counter() - t0
            if score != count:
                wrong.append(f"bare: {count - score} of {count} wrong")
            return elapsed

        def run_dspy(n: int, count: int) -> float:
            assert dspy is not None
            devset = [
                dspy.Example(question=q, expected=exp).with_inputs("question")
                for q, exp in questions.take(count)
            ]

            def metric(example: Any, prediction: Any, trace: Any = None) -> bool:
                return str(example.expected) in str(prediction.answer)

            evaluate = dspy.Evaluate(
                devset=devset,
                metric=metric,
                num_threads=n,
                display_progress=False,
                display_table=False,
            )
            t0 = time.perf_counter()
            outcome = evaluate(dspy_program)
            elapsed = time.perf_counter() - t0
            if outcome.score != 100:
                wrong.append(f"dspy: score {outcome.score}")
            return elapsed

        runners: list[tuple[str, Callable[[int, int], float]]] = [
            ("bare", run_bare),
            ("ours", run_ours),
        ]
        if dspy is not None:
            runners.append(("dspy", run_dspy))

        seq0 = server_seq(probe, server.chat_url)
        for n in concurrencies:
            results[n] = {name: Row(name) for name, _ in runners}
            for _, run in runners:  # warm-up: connections, thread pools, lazy imports
                run(n, 2 * n)
                calls += 2 * n
            for order in rotations(len(runners), rounds):
                for index in order:
                    name, run = runners[index]
                    gc.collect()
                    rate = n_requests / run(n, n_requests)
                    calls += n_requests
                    results[n][name].samples.append(rate)
                    results[n][name].rounds.append(rate)
        seq1 = server_seq(probe, server.chat_url)

    received = seq1 - seq0 - 1
    print(
        f"\n2. throughput: {n_requests} requests (unique questions) at {latency * 1000:g} ms "
        f"server latency (server: {mode_label(mode)}), {rounds} rounds, median req/s"
    )
    print(
        "  bare = ThreadPoolExecutor(N) posting through ONE shared requests.Session "
        "with a pool of N connections"
    )
    header = f"  {'N':>4} {'ideal':>7} {'bare':>7} {'ours':>7}"
    if dspy is not None:
        header += f" {'dspy':>7} {'ours/bare':>10} {'paired':>7} {'ours/dspy':>10} {'paired':>7}"
    else:
        header += f" {'ours/bare':>10} {'paired':>7}"
    print(header)
    out: dict[str, Any] = {"server": mode, "by_concurrency": {}}
    for n in concurrencies:
        rows = results[n]
        ideal = n / latency
        ob = rows["ours"].median() / rows["bare"].median()
        ob_p = paired(rows["ours"].rounds, rows["bare"].rounds)
        line = f"  {n:>4} {ideal:>7.0f} {rows['bare'].median():>7.0f} {rows['ours'].median():>7.0f}"
        entry: dict[str, Any] = {
            "ideal": ideal,
            "bare": rows["bare"].samples,
            "ours": rows["ours"].samples,
            "ours_over_bare": ob,
            "ours_over_bare_paired": ob_p,
        }
        if dspy is not None:
            od = rows["ours"].median() / rows["dspy"].median()
            od_p = paired(rows["ours"].rounds, rows["dspy"].rounds)
            line += (
                f" {rows['dspy'].median():>7.0f} {ob:>10.2f} {ob_p:>7.2f} {od:>10.2f} {od_p:>7.2f}"
            )
            entry.update(dspy=rows["dspy"].samples, ours_over_dspy=od, ours_over_dspy_paired=od_p)
        else:
            line += f" {ob:>10.2f} {ob_p:>7.2f}"
        print(line)
        out["by_concurrency"][str(n)] = entry
    print(
        f"  server received {received} chat requests for {calls} calls"
        f" ({'every call did HTTP' if received == calls else 'MISMATCH'})"
    )
    if wrong:
        print(f"  WRONG ANSWERS: {wrong[:5]}")
    top = max(concurrencies)
    top_entry = out["by_concurrency"][str(top)]
    print(
        f"  ours/bare at {top}: {top_entry['ours_over_bare']:.2f} (target >= 0.9): "
        f"{judge(top_entry['ours_over_bare'] >= 0.9, mode)}"
    )
    if dspy is not None:
        print(
            f"  ours/dspy at {top}: {top_entry['ours_over_dspy']:.2f} (target >= 1.5): "
            f"{judge(top_entry['ours_over_dspy'] >= 1.5, mode)}"
        )
    out.update(server_requests=received, calls=calls, wrong=wrong[:5], wrong_count=len(wrong))
    if mode == "process":
        out["target_ours_over_bare_met"] = top_entry["ours_over_bare"] >= 0.9
        if dspy is not None:
            out["target_ours_over_dspy_met"] = top_entry["ours_over_dspy"] >= 1.5
    return out


# ------------------------------------------------------------------------ 3. RSS


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


def rss_child(kind: str, m: int, api_base: str, latency: float) -> int:
    """Child-process mode: hold ``m`` requests in flight; print one JSON line of results."""
    silence_logs()
    questions = Questions(start=20_000_000 if kind == "ours" else 30_000_000)
    cleanup: list[Callable[[], None]] = []
    run: Callable[[list[tuple[str, str]], int], list[str]]
    if kind == "ours":
        lm = dx.LM(MODEL, api_base=api_base, api_key="x", pool_size=m)
        system = dx.start(lm=lm, cache=False, name="bench-rss", configure_logs=False)
        cleanup.append(system.shutdown)
        predict = dx.Predict(SIGNATURE)

        def run_ours(items: list[tuple[str, str]], n: int) -> list[str]:
            preds = predict.batch([{"question": q} for q, _ in items], max_concurrency=n)
            return [str(p.answer) for p in preds]

        run = run_ours
    else:
        session = pooled_session(m)
        cleanup.append(session.close)
        bare = Bare(api_base + "/chat/completions", session)

        def run_bare(items: list[tuple[str, str]], n: int) -> list[str]:
            payloads = [bare.payload(q) for q, _ in items]
            with ThreadPoolExecutor(n) as pool:
                return list(pool.map(bare.post, payloads))

        run = run_bare

    warm = questions.take(8)
    run(warm, 8)
    gc.collect()
    base_threads = threading.active_count()
    baseline = statistics.median(proc_status("VmRSS") for _ in range(5))
    hwm_reset = reset_peak_rss()
    items = questions.take(m)
    with Sampler() as sampler:
        t0 = time.perf_counter()
        answers = run(items, m)
        wall = time.perf_counter() - t0
    hwm = proc_status("VmHWM")
    wrong = sum(exp not in a for a, (_, exp) in zip(answers, items, strict=True))
    for step in reversed(cleanup):
        step()
    leftover = join_other_threads(10.0)
    print(
        json.dumps(
            {
                "kind": kind,
                "m": m,
                "baseline": baseline,
                "peak_sampled": sampler.peak_rss,
                "peak_hwm": hwm if hwm_reset else None,
                "base_threads": base_threads,
                "peak_threads": sampler.peak_threads,
                "wall": wall,
                "latency": latency,
                "wrong": wrong,
                "leftover_threads": leftover,
            }
        )
    )
    return 0 if not leftover and not wrong else 1


def bench_rss(rounds: int, m: int, latency: float) -> dict[str, Any]:
    """Section 3: each sample in a fresh interpreter, against one child-process server."""
    samples: dict[str, list[dict[str, Any]]] = {"bare": [], "ours": []}
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    with Server("process", latency) as server:
        for order in rotations(2, rounds):
            for index in order:
                kind = ("bare", "ours")[index]
                done = subprocess.run(
                    [
                        sys.executable,
                        os.path.abspath(__file__),
                        "--rss-child",
                        kind,
                        str(m),
                        server.api_base,
                        repr(latency),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                    env=env,
                )
                lines = done.stdout.strip().splitlines()
                if done.returncode != 0 or not lines:
                    raise RuntimeError(
                        f"RSS child {kind} failed ({done.returncode}): {done.stdout[-1000:]}"
                        f"{done.stderr[-2000:]}"
                    )
                samples[kind].append(json.loads(lines[-1]))
    print(
        f"\n3. RSS per in-flight request: M={m} requests held in flight by a server answering "
        f"after {latency:g} s (child-process server); each sample a fresh interpreter, {rounds} "
        "per variant"
    )
    print(
        f"  {'variant':<46} {'KiB/req sampled':>16} {'KiB/req VmHWM':>14} "
        f"{'baseline MiB':>13} {'threads base->peak':>19} {'burst s':>8}"
    )
    out: dict[str, Any] = {"m": m, "latency": latency}
    labels = {
        "bare": f"bare ThreadPoolExecutor({m}) + requests",
        "ours": f"dx.Predict.batch(max_concurrency={m})",
    }
    for kind in ("bare", "ours"):
        rows = samples[kind]
        sampled = statistics.median((r["peak_sampled"] - r["baseline"]) / m for r in rows)
        hwms = [(r["peak_hwm"] - r["baseline"]) / m for r in rows if r["peak_hwm"] is not None]
        hwm = statistics.median(hwms) if hwms else None
        base = statistics.median(r["baseline"] for r in rows)
        wall = statistics.median(r["wall"] for r in rows)
        threads = f"{rows[0]['base_threads']}->{max(r['peak_threads'] for r in rows)}"
        hwm_text = f"{hwm / 1024:.1f}" if hwm is not None else "n/a"
        print(
            f"  {labels[kind]:<46} {sampled / 1024:>16.1f} {hwm_text:>14} "
            f"{base / 2**20:>13.1f} {threads:>19} {wall:>8.2f}"
        )
        overlapped = all(r["wall"] < 2 * latency for r in rows)
        out[kind] = {
            "kib_per_request_sampled": sampled / 1024,
            "kib_per_request_hwm": None if hwm is None else hwm / 1024,
            "samples": rows,
            "all_in_flight_at_once": overlapped,
        }
    all_overlapped = out["bare"]["all_in_flight_at_once"] and out["ours"]["all_in_flight_at_once"]
    print(
        f"  every burst finished within 2 x latency, so all {m} requests were in flight at once: "
        f"{'yes' if all_overlapped else 'NO (numbers understate the per-request cost)'}"
    )
    ratio = out["ours"]["kib_per_request_sampled"] / out["bare"]["kib_per_request_sampled"]
    print(f"  (info) ours / bare per in-flight request: {ratio:.2f}x (sampled peak)")
    out["ours_over_bare"] = ratio
    return out


# ------------------------------------------------------------------------ report


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller run, under 40 s")
    parser.add_argument("--json", metavar="PATH", help="also write every number as JSON here")
    server = parser.add_mutually_exclusive_group()
    server.add_argument(
        "--server",
        choices=("process", "inprocess", "both"),
        default=None,
        help=(
            "where the rule server runs for sections 1-2 (default: both for the full run, "
            "process for --quick; targets are judged on the process server)"
        ),
    )
    server.add_argument(
        "--server-process",
        dest="server",
        action="store_const",
        const="process",
        help="sections 1-2 against a child-process server only (--quick's default)",
    )
    server.add_argument(
        "--server-inprocess",
        dest="server",
        action="store_const",
        const="inprocess",
        help="sections 1-2 against an in-process server only (its threads share our GIL)",
    )
    parser.add_argument("--rss-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        kind, m, api_base, latency = args.rss_child
        return rss_child(kind, int(m), api_base, float(latency))

    silence_logs()
    quick: bool = args.quick
    started = time.monotonic()
    choice = args.server or ("process" if quick else "both")
    modes = ["process", "inprocess"] if choice == "both" else [choice]
    print(
        f"bench_runtime ({'quick' if quick else 'full'}): {datetime.date.today().isoformat()}, "
        f"python {platform.python_version()}, {os.cpu_count()} cpus, "
        f"switch interval {sys.getswitchinterval() * 1e3:g} ms"
    )
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"load average at start: {load_average()}")
    cache_dir = tempfile.mkdtemp(prefix="bench-runtime-dspy-cache-")
    dspy, import_s = import_dspy(cache_dir)
    if dspy is None:
        print("dspy not installed (pip install -e '.[bench]'): DSPy columns skipped")
    else:
        print(
            f"dspy {dspy.__version__} (import {import_s:.2f} s), cache dir {cache_dir} "
            "(throw-away), LM(cache=False, num_retries=0)"
        )
    report: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "quick": quick,
        "dspy": None if dspy is None else dspy.__version__,
        "per_call": [],
        "throughput": [],
    }
    failed = False
    try:
        for mode in modes:
            per_call = bench_per_call(
                mode,
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
        report["rss"] = bench_rss(rounds=1 if quick else 2, m=200, latency=1.0)
    finally:
        tqdm_note = stop_tqdm_monitor()
        leftover = join_other_threads(10.0)
        shutil.rmtree(cache_dir, ignore_errors=True)
    print(
        f"\nshutdown: systems shut down, servers stopped{tqdm_note}; {len(leftover)} threads "
        f"left besides main: {leftover or 'none'}"
    )
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
