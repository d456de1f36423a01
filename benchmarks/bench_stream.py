"""Streaming: time to first token and chunks/s, dx.streamify vs bare requests vs DSPy 3.4.1.

One SSE server on 127.0.0.1 speaks OpenAI's streaming chat format: every request
gets 200 chunks, 20 ms apart (the first opens the ``answer`` field with the
ChatAdapter's ``[[ ## answer ## ]]`` marker, the last closes it with
``[[ ## completed ## ]]``), then a usage chunk and ``[DONE]``. 16 streams run at once,
each its own question (no cache hits), with the defaults a user gets:

- bare: ``requests.post(..., stream=True)`` and ``iter_lines``, counting content deltas;
- ours: ``dx.streamify(dx.Predict("question -> answer"))``, counting ``StreamResponse``s;
- DSPy: ``dspy.streamify(dspy.Predict(...), stream_listeners=[StreamListener("answer")],
  async_streaming=False)``, counting its ``StreamResponse``s.

Time to first token (TTFT): from the call to the first piece of answer text (for the
bare stream too: the chunk holding the field marker is not answer text). Per-chunk
delivery overhead: (the stream's duration - the bare stream's mean duration) / chunks,
i.e. what each path adds over reading the socket. Run under a venv with dspy==3.4.1:

    python benchmarks/bench_stream.py [--streams 16] [--chunks 200] [--interval 0.02]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="bench-stream-dspy-"))

import requests

import dspex_actors as dx


class _SSE(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    chunks = 200
    interval = 0.02

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
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


Result = tuple[float, float, int]  # ttft, duration (start to last chunk), chunks


def _bare(base: str, i: int) -> Result:
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": f"q{i}"}]}
    with requests.post(f"{base}/chat/completions", json=body, stream=True, timeout=60) as resp:
        for line in resp.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or []
            text = choices[0]["delta"].get("content") if choices else None
            if text and "[[ ## " not in text:  # answer text, as the listeners yield it
                last = time.perf_counter()
                first = first or last
                count += 1
    return first - started, last - started, count


def _ours(program: Any, i: int) -> Result:
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    for item in program(question=f"Stream question number {i}?"):
        if isinstance(item, dx.StreamResponse):
            last = time.perf_counter()
            first = first or last
            count += 1
    return first - started, last - started, count


def _dspy(i: int) -> Result:
    import dspy

    # A listener per call: DSPy's listeners keep state, so one shared by concurrent
    # streams mixes them up (DSPy issue #8425) and, here, hung the run.
    listener = dspy.streaming.StreamListener(signature_field_name="answer")
    program = dspy.streamify(
        dspy.Predict("question -> answer"), stream_listeners=[listener], async_streaming=False
    )
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    for item in program(question=f"Stream question number {i}?"):
        if isinstance(item, dspy.streaming.StreamResponse):
            last = time.perf_counter()
            first = first or last
            count += 1
    return first - started, last - started, count


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


def _summary(name: str, results: list[Result], bare_duration: float) -> dict[str, float]:
    ttft = statistics.median(r[0] for r in results)
    chunks = statistics.mean(r[2] for r in results)
    rate = statistics.median(r[2] / max(r[1] - r[0], 1e-9) for r in results)
    duration = statistics.mean(r[1] for r in results)
    overhead = (duration - bare_duration) / max(chunks, 1)
    print(
        f"{name:8s} TTFT p50 {ttft * 1000:7.1f} ms  chunks/stream {chunks:6.1f}  "
        f"chunks/s p50 {rate:6.1f}  duration {duration:6.3f} s  "
        f"overhead/chunk {overhead * 1000:+7.3f} ms"
    )
    return {"ttft": ttft, "rate": rate, "overhead": overhead, "duration": duration}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02)
    args = parser.parse_args()
    _SSE.chunks, _SSE.interval = args.chunks, args.interval
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SSE)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    n = args.streams
    print(f"{n} streams at once, {args.chunks} chunks each, {args.interval * 1000:g} ms apart")

    bare = _at_once(n, lambda i: _bare(base, i))
    bare_duration = statistics.mean(r[1] for r in bare)
    rows = {"bare": _summary("bare", bare, bare_duration)}

    lm = dx.LM("openai/m", api_base=base, api_key="sk-bench")
    with dx.start(lm=lm, configure_logs=False, name="bench-stream"):
        program = dx.streamify(dx.Predict("question -> answer"))
        rows["ours"] = _summary("ours", _at_once(n, lambda i: _ours(program, i)), bare_duration)

    import dspy

    dspy.configure(lm=dspy.LM("openai/m", api_base=base, api_key="sk-bench"))
    done = _at_once(n, _dspy, limit=60.0)
    server.shutdown()
    if len(done) < n:
        print(f"dspy     only {len(done)}/{n} streams finished within 60 s: no DSPy figures")
        ours, raw = rows["ours"], rows["bare"]
        print(f"TTFT ours / bare: {ours['ttft'] / raw['ttft']:.2f}x (target <= 1.2x)")
        return
    rows["dspy"] = _summary("dspy", done, bare_duration)

    ours, dsp, raw = rows["ours"], rows["dspy"], rows["bare"]
    print(f"TTFT ours / bare: {ours['ttft'] / raw['ttft']:.2f}x (target <= 1.2x)")
    print(f"TTFT ours / DSPy: {ours['ttft'] / dsp['ttft']:.2f}x")
    print(f"chunks/s ours / DSPy: {ours['rate'] / dsp['rate']:.2f}x")
    ratio = ours["overhead"] / dsp["overhead"] if dsp["overhead"] > 0 else float("nan")
    print(f"per-chunk overhead ours / DSPy: {ratio:.2f}x (target <= 0.5x)")


if __name__ == "__main__":
    main()
