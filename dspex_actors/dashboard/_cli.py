"""``dspex-actors dashboard``: a system against the rule server (or yours), served live."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from dspex_actors.lm import LM
from dspex_actors.modules import Predict
from dspex_actors.runtime import start
from dspex_actors.testing import RuleBasedLMServer

__all__ = ["run_dashboard"]


def run_dashboard(
    *,
    api_base: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    allow_control: bool = False,
    traffic: float = 1.0,
    out: TextIO = sys.stdout,
    stop: threading.Event | None = None,
) -> int:
    """Serve a dashboard until Ctrl-C (or ``stop``); with ``traffic`` > 0 a Predict call
    every ``traffic`` seconds keeps the page moving. Returns the exit code."""
    server = RuleBasedLMServer().start() if api_base is None else None
    base = server.api_base if server is not None else str(api_base)
    lm = LM(model or "openai/rule-based", api_base=base, api_key=api_key or "sk-demo")
    stop = stop or threading.Event()
    try:
        with start(lm=lm, name="dspex") as system:
            url = system.serve_dashboard(host, port, token=token, allow_control=allow_control)
            out.write(f"dashboard at {url}  (Ctrl-C to stop)\n")
            out.flush()
            qa, n = Predict("question -> answer"), 0
            while not stop.wait(traffic if traffic > 0 else 3600):
                if traffic > 0:
                    n += 1
                    try:
                        qa(question=f"What is {n} + {n}?")
                    except Exception as exc:  # shown on the page as an exception span
                        out.write(f"call failed: {type(exc).__name__}\n")
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
    return 0
