"""``dspex-actors demo --dashboard``: the tour, then the demo system stays up and is served."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

from tests.paths import ROOT


def test_demo_dashboard_serves_the_demo_system_until_sigterm_then_exits_cleanly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dspex_actors", "demo", "--dashboard", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("dashboard at "):
                url = line.split()[2]
                break
        assert url.startswith("http://127.0.0.1:"), "the demo never printed its dashboard URL"
        with urllib.request.urlopen(url.rstrip("/") + "/api/state", timeout=10) as response:
            state = json.loads(response.read())
        text = json.dumps(state)
        assert "dspex" in text  # the demo system's tree
        assert "ProgramActor" in text or "LMClient" in text
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, rest
        assert "done" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
