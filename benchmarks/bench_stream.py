"""Streaming TTFT and per-chunk overhead: dx.streamify vs bare requests vs DSPy 3.4.1.

One SSE server on 127.0.0.1 speaks OpenAI's streaming chat format: every request
gets 200 chunks, 20 ms apart (the first opens the ``answer`` field with the
ChatAdapter's ``[[ ## answer ## ]]`` marker, the last closes it with
``[[ ## completed ## ]]``; chunk ``i`` in between is ``"w<i> "``), then a usage
chunk and ``[DONE]``. 16 streams run at once, each its own question (no cache hits):

- bare: ``requests.post(..., stream=True)`` and ``iter_lines``, counting content deltas;
- ours: ``dx.streamify(dx.Predict("question -> answer"))``, counting ``StreamResponse``s;
- DSPy: ``dspy.streamify(dspy.Predict(...), stream_listeners=[StreamListener("answer")],
  async_streaming=False)``, counting its ``StreamResponse``s.

Defaults everywhere but one DSPy setting: ``async_max_workers`` is raised from 8 to
the number of streams. DSPy runs each sync stream's program through one global
``anyio.CapacityLimiter`` of ``async_max_workers`` tokens, shared by the event loops
that ``apply_sync_streaming`` starts in a thread per stream; a token released on one
loop wakes its waiter on another loop without waking that loop, so with 16 streams
and 8 tokens the last 8 streams hang for ever (DSPy 3.4.1, checked: all 16 finish
with the setting, 8 of 16 without).

The server's listen backlog is 128 (``ThreadingHTTPServer``'s default of 5 drops the
SYNs of 16 simultaneous connects: those clients retry after 1 s, whichever path).

Measures, after one untimed warm-up round of each path, over ``--rounds`` rounds
(bare, ours, DSPy in turn each round, so machine load hits all three alike):

- TTFT: from the call to the first piece of answer text (for the bare stream too:
  the chunk holding the field marker is not answer text); p50 over all streams;
- latency/chunk: from the server's write of chunk ``i`` to the caller holding the
  text ``w<i>``, the mean over every chunk of a round; overhead = that minus the bare
  stream's in the same round (median over rounds);
- CPU/chunk: the process's CPU time for a round / answer chunks delivered; overhead
  = that minus the bare round's (median over rounds). Per-process CPU time does not
  count other processes' load, so it is the steadier measure on a shared machine.

Run under a venv with dspy==3.4.1:

    python benchmarks/bench_stream.py [--streams 16] [--chunks 200] [--interval 0.02] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="bench-stream-dspy-"))

import requests

import dspex_actors as dx

_TAG = re.compile(r"number (\S+)\?")
_WORD = re.compile(r"w(\d+)")


class _SSE(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    chunks = 200
    interval = 0.02
    sent: dict[tuple[str, int], float] = {}  # (stream tag, chunk index) -> written at

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        found = _TAG.search(self.rfile.read(length).decode())
        tag = found.group(1) if found else "?"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        n = self.chunks
        for i in range(n):
            if i:
                time.sleep(self.interval)
            text = "[[ ## answer ## ]]\n" if i == 0 else f"w{i} "
            if i == n - 1:
                text = "\n\n[[ ## completed ## ]]"
            self._event({"choices": [{"index": 0, "delta": {"content": text}}]})
            self.sent[tag, i] = time.perf_counter()
        self._event({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": n}})
        self._send(b"data: [DONE]\n\n")
        self._send(b"")

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # a client that closed its pooled connection

    def _event(self, body: dict[str, Any]) -> None:
        body = {"id": "c1", "object": "chat.completion.chunk", "model": "m", **body}
        self._send(b"data: " + json.dumps(body).encode() + b"\n\n")

    def _send(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # 16 connects at once overflow the default backlog of 5
    daemon_threads = True


@dataclass
class Result:
    """One stream: TTFT, answer chunks seen, mean server-write -> caller latency."""

    ttft: float
    chunks: int
    latency: float


class _Clock:
    """Times one stream's answer text: the first piece, and each ``w<i>`` it holds."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.started = time.perf_counter()
        self.first = 0.0
        self.seen: dict[int, float] = {}

    def text(self, text: str) -> None:
        now = time.perf_counter()
        self.first = self.first or now
        for word in _WORD.findall(text):
            self.seen.setdefault(int(word), now)

    def result(self) -> Result:
        sent = _SSE.sent
        lags = [t - sent[self.tag, i] for i, t in self.seen.items() if (self.tag, i) in sent]
        mean = statistics.mean(lags) if lags else float("nan")
        return Result(self.first - self.started, len(self.seen), mean)


def _question(tag: str) -> str:
    return f"Stream question number {tag}?"


def _bare(base: str, tag: str) -> Result:
    clock = _Clock(tag)
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": _question(tag)}]}
    with requests.post(f"{base}/chat/completions", json=body, stream=True, timeout=60) as resp:
        for line in resp.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or []
            text = choices[0]["delta"].get("content") if choices else None
            if text and "[[ ## " not in text:  # answer text, as the listeners yield it
                clock.text(text)
    return clock.result()


def _ours(program: Any, tag: str) -> Result:
    clock = _Clock(tag)
    for item in program(question=_question(tag)):
        if isinstance(item, dx.StreamResponse):
            clock.text(item.chunk)
    return clock.result()


def _dspy(tag: str) -> Result:
    import dspy

    # A listener per call: DSPy's listeners keep state, so one shared by concurrent
    # streams mixes them up (DSPy issue #8425).
    listener = dspy.streaming.StreamListener(signature_field_name="answer")
    program = dspy.streamify(
        dspy.Predict("question -> answer"), stream_listeners=[listener], async_streaming=False
    )
    clock = _Clock(tag)
    for item in program(question=_question(tag)):
        if isinstance(item, dspy.streaming.StreamResponse):
            clock.text(item.chunk)
    return clock.result()


def _at_once(n: int, one: Callable[[int], Result], limit: float = 120.0) -> list[Result]:
    """Run ``one(i)`` for ``n`` streams in threads at once; the results that finished
    within ``limit`` seconds (daemon threads: one that hangs is left behind)."""
    results: list[Result | None] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = one(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + limit
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


@dataclass
class Round:
    """One path's streams in one round, and the process CPU time they took."""

    results: list[Result]
    cpu: float

    @property
    def cpu_per_chunk(self) -> float:
        return self.cpu / max(sum(r.chunks for r in self.results), 1)

    @property
    def latency(self) -> float:
        return statistics.mean(r.latency for r in self.results)


def _timed(n: int, one: Callable[[int], Result]) -> Round:
    cpu = time.process_time()
    results = _at_once(n, one)
    return Round(results, time.process_time() - cpu)


def _ms(values: Iterable[float]) -> float:
    return statistics.median(values) * 1000


def _summary(name: str, rounds: list[Round], bare: list[Round]) -> dict[str, float]:
    ttft = _ms(r.ttft for rnd in rounds for r in rnd.results)
    chunks = statistics.mean(r.chunks for rnd in rounds for r in rnd.results)
    latency = _ms(rnd.latency for rnd in rounds)
    lat_over = _ms(a.latency - b.latency for a, b in zip(rounds, bare, strict=True))
    cpu = _ms(rnd.cpu_per_chunk for rnd in rounds)
    cpu_over = _ms(a.cpu_per_chunk - b.cpu_per_chunk for a, b in zip(rounds, bare, strict=True))
    print(
        f"{name:5s} TTFT p50 {ttft:6.1f} ms  chunks/stream {chunks:5.1f}  "
        f"latency/chunk {latency:7.3f} ms ({lat_over:+7.3f})  "
        f"CPU/chunk {cpu:6.3f} ms ({cpu_over:+6.3f})"
    )
    return {"ttft": ttft, "lat_over": lat_over, "cpu_over": cpu_over}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else f"n/a (DSPy's is {b:+.3f} ms)"


def _report(rows: dict[str, dict[str, float]]) -> None:
    ours, dsp, raw = rows["ours"], rows["dspy"], rows["bare"]
    print(f"TTFT ours / bare: {ours['ttft'] / raw['ttft']:.2f}x (target <= 1.2x)")
    print(f"TTFT ours / DSPy: {ours['ttft'] / dsp['ttft']:.2f}x")
    print(
        "latency overhead/chunk ours / DSPy: "
        f"{_ratio(ours['lat_over'], dsp['lat_over'])} (target <= 0.5x)"
    )
    print(
        f"CPU overhead/chunk ours / DSPy: {_ratio(ours['cpu_over'], dsp['cpu_over'])} "
        "(target <= 0.5x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    _SSE.chunks, _SSE.interval = args.chunks, args.interval
    server = _Server(("127.0.0.1", 0), _SSE)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    n = args.streams
    print(
        f"{n} streams at once, {args.chunks} chunks each, {args.interval * 1000:g} ms apart, "
        f"{args.rounds} rounds after a warm-up"
    )
    import dspy

    dspy.configure(
        lm=dspy.LM("openai/m", api_base=base, api_key="sk-bench"), async_max_workers=max(n, 8)
    )
    lm = dx.LM("openai/m", api_base=base, api_key="sk-bench")
    with dx.start(lm=lm, configure_logs=False, name="bench-stream"):
        program = dx.streamify(dx.Predict("question -> answer"))
        paths: dict[str, Callable[[str], Result]] = {
            "bare": lambda tag: _bare(base, tag),
            "ours": lambda tag: _ours(program, tag),
            "dspy": _dspy,
        }
        rounds: dict[str, list[Round]] = {name: [] for name in paths}
        for k in range(args.rounds + 1):
            for name, one in paths.items():
                done = _timed(n, lambda i, one=one, tag=f"{name}-{k}": one(f"{tag}-{i}"))
                if len(done.results) < n:
                    print(f"{name}: only {len(done.results)}/{n} streams finished in 120 s")
                    return
                if k:  # round 0 warms up
                    rounds[name].append(done)
    server.shutdown()
    rows = {name: _summary(name, rnds, rounds["bare"]) for name, rnds in rounds.items()}
    _report(rows)


if __name__ == "__main__":
    main()
