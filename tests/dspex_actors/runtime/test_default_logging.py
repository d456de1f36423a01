"""The logging ``dx.start()`` sets up: lifecycle at INFO on stderr, per-request events filtered.

structlog's configuration is process-wide, so each test runs its script in a fresh
interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.paths import ROOT

SCRIPT = textwrap.dedent(
    """
    import structlog
    import dspex_actors as dx

    server = dx.RuleBasedLMServer().start()
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="x")
    retry = dx.RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.01, deadline=10)
    with dx.start(lm=lm, retry=retry, name="logs") as system:
        config = structlog.get_config()
        print("cached", config["cache_logger_on_first_use"])
        print("debug_enabled", config["wrapper_class"](None, [], {}).is_enabled_for(10))
        qa = dx.Predict("question -> answer")
        qa(question="What is 1 + 1?")
        qa(question="What is 1 + 1?")  # a cache hit
        server.inject("500", "500")
        try:
            qa(question="What is 2 + 2?")
        except dx.LMServerError:
            print("failed as expected")
    server.stop()
    """
)


def run_script() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_default_logging_filters_per_request_events_and_keeps_lifecycle_and_warnings() -> None:
    done = run_script()
    assert done.returncode == 0, done.stderr
    assert "cached False" in done.stdout  # so capture_logs keeps working (test below)
    assert "debug_enabled False" in done.stdout
    assert "failed as expected" in done.stdout
    err = done.stderr
    assert "child_started" in err and "supervisor_stopped" in err  # lifecycle: INFO
    assert "request.retries_exhausted" in err  # WARNING
    assert "[warning" in err
    for per_request in ("request.start", "request.stop", "request.retry", "worker_crashed"):
        assert per_request not in err  # DEBUG: filtered out
    assert "[debug" not in err


CAPTURE = textwrap.dedent(
    """
    import structlog
    from structlog.testing import capture_logs
    import dspex_actors as dx

    server = dx.RuleBasedLMServer().start()
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="x")
    with dx.start(lm=lm, name="first"):
        dx.Predict("question -> answer")(question="What is 1 + 1?")
    structlog.reset_defaults()  # what structlog's own testing recipe does between tests
    with capture_logs() as logs, dx.start(lm=lm, name="second"):
        dx.Predict("question -> answer")(question="What is 2 + 2?")
    server.stop()
    print(sorted({e["event"] for e in logs}))
    """
)


def test_capture_logs_still_sees_our_events_after_dx_start_configured_logging_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CAPTURE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "child_started" in done.stdout and "supervisor_stopped" in done.stdout
