"""The command line: ``python -m dspex_actors.testing --port 8000 --latency 0.05``.

Runs a :class:`RuleBasedLMServer` in the foreground until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from dspex_actors.testing._server import DEFAULT_MODEL, RuleBasedLMServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dspex_actors.testing",
        description="Rule-based (no model) OpenAI-compatible chat-completions server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--no-follow-demos", action="store_true")
    parser.add_argument(
        "--fault-rate",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="random fault rate, e.g. --fault-rate 429=0.1 (repeatable)",
    )
    return parser


def _fault_rates(parser: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, float]:
    """``KIND=RATE`` items as a mapping; exits through ``parser.error`` on a bad item."""
    rates: dict[str, float] = {}
    for item in items:
        kind, sep, rate = item.partition("=")
        if not sep:
            parser.error(f"--fault-rate expects KIND=RATE, got {item!r}")
        try:
            rates[kind] = float(rate)
        except ValueError:
            parser.error(f"--fault-rate: bad rate in {item!r}")
    return rates


def _serve_until_signalled(server: RuleBasedLMServer) -> None:
    """Start ``server``, print its URL, wait for SIGINT/SIGTERM, stop it."""
    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    # Ctrl-C and SIGTERM only set the event, so no KeyboardInterrupt can escape mid-print.
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(
            f"rule-based LM server (no model) at {server.url}  api_base={server.api_base}",
            flush=True,
        )
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until Ctrl-C or SIGTERM; returns the exit code.

    Exits with status 2 (``SystemExit``) on bad arguments, before binding.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    rates = _fault_rates(parser, args.fault_rate)
    server = RuleBasedLMServer(
        args.host,
        args.port,
        latency=args.latency,
        seed=args.seed,
        follow_demos=not args.no_follow_demos,
        model=args.model,
    )
    try:
        if rates:
            server.set_fault_rates(rates)
    except ValueError as exc:
        parser.error(str(exc))
    _serve_until_signalled(server)
    print("stopped", file=sys.stderr, flush=True)
    return 0
