"""Our events never land on stdout, even when nobody configured structlog."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.paths import ROOT

SCRIPT = textwrap.dedent(
    """
    import supervisors as sv
    import dspex_actors as dx

    class Boom(sv.Actor):
        def on_receive(self, message):
            raise RuntimeError("boom")

    server = dx.RuleBasedLMServer().start()
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="x")
    with dx.start(lm=lm, configure_logs=False, name="quiet") as system:
        print("ANSWER", dx.Predict("question -> answer")(question="What is 1 + 1?").answer)
        root = sv.Supervisor.start([sv.ChildSpec(id="b", start=Boom.start, name="boom")])
        try:
            sv.named("boom").ask("x", timeout=5)
        except RuntimeError:
            pass
        sv.stop(root)
    server.stop()
    """
)


def test_with_structlog_unconfigured_events_go_to_stderr_at_info_never_stdout() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["ANSWER"]  # only ours
    assert "actor_crashed" in done.stderr and "child_started" in done.stderr
    assert "[debug" not in done.stderr  # INFO and above
