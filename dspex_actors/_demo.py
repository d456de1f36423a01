"""``dspex-actors demo``: a guided tour of a running system.

Starts an actor system against an OpenAI-compatible server, prints the
supervision tree, runs ``Predict`` and ``ChainOfThought``, shows a cache hit,
injects faults (500, 429, a dropped connection, a bad request) and shows the
recovery, crashes the LM client to show its supervisor restarting it, then prints
the tree and the statistics again.

By default the server is the package's **rule-based** loopback server (a real
HTTP server on 127.0.0.1 that answers by rules, not by a model). With
``--api-base``/``--model`` (or ``DSPEX_API_BASE``, ``DSPEX_MODEL``,
``OPENAI_API_KEY``) the same demo runs against any OpenAI-compatible server;
fault injection is then skipped (it needs the rule-based server).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import supervisors as sv
from dspex_actors.lm import LM, RetryPolicy
from dspex_actors.modules import ChainOfThought, Predict
from dspex_actors.primitives import LMError
from dspex_actors.runtime import ActorSystem, start
from dspex_actors.signatures import InputField, OutputField, Signature
from dspex_actors.testing import RuleBasedLMServer

__all__ = ["main", "run_demo"]


class QA(Signature):
    """Answer questions with short factoid answers."""

    question: str = InputField()
    answer: str = OutputField(desc="often between 1 and 5 words")


def _section(out: TextIO, title: str) -> None:
    out.write(f"\n=== {title} ===\n")
    out.flush()


@dataclass
class _Tour:
    """What the demo's steps share: where to write, the system, the server, the module."""

    out: TextIO
    system: ActorSystem
    server: RuleBasedLMServer | None
    qa: Predict
    latency: float
    problems: int = 0

    def section(self, title: str) -> None:
        _section(self.out, title)


def run_demo(
    *,
    api_base: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    out: TextIO = sys.stdout,
    latency: float = 0.0,
    dashboard_port: int | None = None,
) -> int:
    """Run the tour; return a process exit code (0 when every step behaved).

    With ``dashboard_port`` (0: a free port) the demo system then stays alive and its
    live dashboard is served on 127.0.0.1 until SIGINT or SIGTERM (needs the
    ``dashboard`` extra); main thread only."""
    server: RuleBasedLMServer | None = None
    if api_base is None:
        server = RuleBasedLMServer(latency=latency).start()
        api_base = server.api_base
        model = model or "openai/rule-based"
        out.write(
            f"Using the built-in RULE-BASED server at {api_base} (no model: answers come from "
            "rules;\nsee --api-base to use a real OpenAI-compatible server).\n"
        )
    lm = LM(model or "openai/gpt-4o-mini", api_base=api_base, api_key=api_key or "sk-demo")
    system = start(
        lm=lm, retry=RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.5), name="dspex"
    )
    tour = _Tour(out, system, server, Predict(QA), latency)
    try:
        for step in (_basics, _faults, _in_flight, _restart, _after):
            step(tour)
        if dashboard_port is not None:
            _serve_until_signalled(system, dashboard_port, out)
    except Exception as exc:
        out.write(f"demo failed: {type(exc).__name__}: {exc}\n")
        tour.problems += 1
    finally:
        system.shutdown()
        if server is not None:
            server.stop()
    _section(out, "done" if tour.problems == 0 else f"done with {tour.problems} problem(s)")
    return 0 if tour.problems == 0 else 1


def _basics(tour: _Tour) -> None:
    out, system, qa = tour.out, tour.system, tour.qa
    tour.section("supervision tree")
    out.write(f"{system.tree()}\n")

    tour.section("Predict")
    started = time.perf_counter()
    pred = qa(question="What is the capital of France?")
    first_ms = (time.perf_counter() - started) * 1000
    out.write(f"Q: What is the capital of France?\nA: {pred.answer}   ({first_ms:.1f} ms)\n")

    tour.section("ChainOfThought")
    cot = ChainOfThought("question -> answer")
    pred = cot(question="What is 17 + 25?")
    out.write(f"Q: What is 17 + 25?\nreasoning: {pred.reasoning}\nanswer: {pred.answer}\n")

    tour.section("cache hit")
    started = time.perf_counter()
    qa(question="What is the capital of France?")
    hit_ms = (time.perf_counter() - started) * 1000
    stats = system.stats()
    out.write(
        f"same question again: {hit_ms:.2f} ms (first call {first_ms:.1f} ms); "
        f"cache hits={stats['cache']['hits']}\n"
    )


def _faults(tour: _Tour) -> None:
    out, server, qa = tour.out, tour.server, tour.qa
    if server is None:
        return  # fault injection needs the rule-based server
    tour.section("faults: 500, 429, dropped connection -> retried by the program actor")
    server.inject("500", "429", "drop")
    before = server.request_count
    pred = qa(question="What is the capital of Japan?")
    out.write(
        f"answer: {pred.answer}  (server saw {server.request_count - before} requests "
        "for this one call)\n"
    )
    tour.section("a non-retryable 400 ends the request at once, typed")
    server.inject("400")
    try:
        qa(question="What is the capital of Spain?")
        out.write("unexpected: no error\n")
        tour.problems += 1
    except LMError as exc:
        out.write(f"{type(exc).__name__} after {exc.attempts} attempt(s): {exc}\n")


def _in_flight(tour: _Tour) -> None:
    server, system = tour.server, tour.system
    if server is None:
        return
    tour.section("three requests in flight (server latency 0.3 s)")
    server.latency = 0.3
    pending = threading.Thread(
        target=tour.qa.batch,
        args=([{"question": f"What is {n} + {n}?"} for n in range(3)],),
        kwargs={"max_concurrency": 3},
        daemon=True,
    )
    pending.start()
    deadline = time.monotonic() + 5.0
    while sv.count_children(system.programs.name).active < 3:
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)  # a demo polling for a picture, not a synchronisation
    tour.out.write(f"{system.tree()}\n")
    pending.join(10.0)
    server.latency = tour.latency


def _restart(tour: _Tour) -> None:
    system = tour.system
    tour.section("crash the LM client: its supervisor restarts it, callers never notice")
    old = system.lm().resolve()
    sv.kill(old, reason="chaos drill")
    new = sv.wait_for_name(system.lm().name, timeout=5.0)
    pred = tour.qa(question="What is the capital of Italy?")
    tour.out.write(f"LM client replaced: {old is not new}; next answer: {pred.answer}\n")


def _after(tour: _Tour) -> None:
    out, system = tour.out, tour.system
    tour.section("supervision tree and stats after the drills")
    out.write(f"{system.tree()}\n")
    out.write(json.dumps(_redact(system.stats()), indent=2, default=str) + "\n")
    tour.section("health() (what a service's /health would return)")
    health = system.health()
    out.write(json.dumps(health, indent=2, default=str) + "\n")
    if health["status"] != "healthy":
        out.write(f"unexpected: status {health['status']}\n")
        tour.problems += 1
    if sv.count_children(system.programs.name).active != 0:
        out.write("unexpected: program actors left running\n")
        tour.problems += 1


def _redact(stats: dict[str, Any]) -> dict[str, Any]:
    for lm_stats in stats.get("lms", {}).values():
        breaker = lm_stats.get("breaker")
        if isinstance(breaker, dict):
            lm_stats["breaker"] = breaker.get("state")
    return stats


_DESCRIPTION = """\
Run LM programs on OTP-style supervision: a guided demo, or the rule-based test server.

  dspex-actors demo                 tour a live system against the built-in rule server
  dspex-actors demo --api-base URL --model openai/NAME
                                    the same tour against any OpenAI-compatible server
                                    (the key is read from OPENAI_API_KEY, never from argv)
  dspex-actors serve-rules --port 8000
                                    serve the rule-based OpenAI-compatible LM on 127.0.0.1
"""


def _serve_until_signalled(system: Any, port: int, out: TextIO) -> None:
    """Serve ``system``'s dashboard on 127.0.0.1:``port`` until SIGINT/SIGTERM."""
    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        done.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        url = system.serve_dashboard("127.0.0.1", port)
        _section(out, "dashboard")
        out.write(f"dashboard at {url}  (the demo system stays up; Ctrl-C to stop)\n")
        out.flush()
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _add_dashboard_command(commands: Any) -> None:
    """The ``dashboard`` subcommand's options."""
    board = commands.add_parser(
        "dashboard",
        help="serve the live dashboard of a system (default: against the built-in rule server)",
        description="Start a system, serve its live dashboard (needs the 'dashboard' extra) "
        "and make one call per --traffic seconds until interrupted; prints the URL.",
    )
    board.add_argument(
        "--api-base",
        default=os.environ.get("DSPEX_API_BASE"),
        metavar="URL",
        help="an OpenAI-compatible base URL (default: $DSPEX_API_BASE, else the rule server)",
    )
    board.add_argument(
        "--model",
        default=os.environ.get("DSPEX_MODEL"),
        metavar="PROVIDER/NAME",
        help="the model to ask (default: $DSPEX_MODEL, else the rule server's model)",
    )
    board.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to bind (default 127.0.0.1; others need --token)",
    )
    board.add_argument("--port", type=int, default=8050, help="default 8050; 0 picks a free one")
    board.add_argument(
        "--token",
        default=os.environ.get("DSPEX_DASHBOARD_TOKEN"),
        help="required off loopback (default: $DSPEX_DASHBOARD_TOKEN)",
    )
    board.add_argument(
        "--allow-control",
        action="store_true",
        help="add a kill button per actor (default: read-only)",
    )
    board.add_argument(
        "--traffic",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="one Predict call every SECONDS to keep the page moving (0: none; default 1)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dspex-actors",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the guided demo (default: against the built-in rule server)",
        description="Start a supervised system, run Predict and ChainOfThought, show a "
        "cache hit, inject faults and show the recovery, crash the LM client and show "
        "its supervisor restart it, then print the tree and the statistics.",
    )
    demo.add_argument(
        "--api-base",
        default=os.environ.get("DSPEX_API_BASE"),
        metavar="URL",
        help="an OpenAI-compatible base URL such as http://127.0.0.1:8000/v1 "
        "(default: $DSPEX_API_BASE, else start the built-in rule server; "
        "fault injection needs the rule server)",
    )
    demo.add_argument(
        "--model",
        default=os.environ.get("DSPEX_MODEL"),
        metavar="PROVIDER/NAME",
        help="the model to ask, e.g. openai/gpt-4o-mini (default: $DSPEX_MODEL, "
        "else the rule server's model)",
    )
    demo.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="added latency of the built-in rule server per request (default 0)",
    )
    demo.add_argument(
        "--dashboard",
        action="store_true",
        help="after the tour, keep the demo system alive and serve its live dashboard "
        "on 127.0.0.1 until Ctrl-C (needs the 'dashboard' extra; default: off)",
    )
    demo.add_argument(
        "--port", type=int, default=8050, help="the dashboard's port (default 8050; 0: a free one)"
    )
    _add_dashboard_command(commands)
    server = commands.add_parser(
        "serve-rules",
        help="run the rule-based OpenAI-compatible server alone (for tests and trials)",
        description="Serve the rule-based LM (answers by rules, not by a model) on "
        "127.0.0.1 until interrupted; prints its base URL.",
    )
    server.add_argument(
        "--port",
        type=int,
        default=8000,
        help="TCP port on 127.0.0.1 (default 8000; 0 picks a free one)",
    )
    server.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="added latency per request (default 0)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dspex-actors`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(
            api_base=args.api_base,
            model=args.model,
            api_key=os.environ.get("OPENAI_API_KEY"),
            latency=args.latency,
            dashboard_port=args.port if args.dashboard else None,
        )
    if args.command == "dashboard":
        from dspex_actors.dashboard._cli import run_dashboard

        return run_dashboard(
            api_base=args.api_base,
            model=args.model,
            api_key=os.environ.get("OPENAI_API_KEY"),
            host=args.host,
            port=args.port,
            token=args.token,
            allow_control=args.allow_control,
            traffic=args.traffic,
        )
    from dspex_actors.testing._rule_server import main as serve

    return serve(["--port", str(args.port), "--latency", str(args.latency)])
