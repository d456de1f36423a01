"""The demo's tour runs end to end and shows what it promises, health() included."""

from __future__ import annotations

import io
import json

from dspex_actors._demo import run_demo


def test_the_demo_tours_a_live_system_and_ends_healthy() -> None:
    out = io.StringIO()

    code = run_demo(out=out)

    text = out.getvalue()
    assert code == 0, text
    for section in ("supervision tree", "cache hit", "faults", "crash the LM client", "health()"):
        assert f"=== {section}" in text
    health = json.loads(text.split("=== health()", 1)[1].split("\n", 1)[1].split("\n===")[0])
    assert health["status"] == "healthy"
    assert health["lms"]["default"]["restarts"] == 1  # the drill's kill, restarted
    assert text.rstrip().endswith("=== done ===")
