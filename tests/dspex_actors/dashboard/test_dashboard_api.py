"""The dashboard's HTTP API: state, event stream history, read-only by default, tokens."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

import dspex_actors as dx
from tests.dspex_actors.fixture_types import SystemFactory


def _get(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_state_has_the_tree_lm_metrics_and_the_stream_starts_with_recent_history(
    start_system: SystemFactory,
) -> None:
    system = start_system()
    url = system.serve_dashboard()
    dx.Predict("question -> answer")(question="What is the capital of France?")
    state = _get(url + "api/state")
    assert state["system"] == system.name and state["tree"]["id"] == system.name
    assert {c["id"] for c in state["tree"]["children"]} >= {"lm:default", "events", "programs"}
    assert state["lms"]["default"]["requests"] == 1
    assert state["lms"]["default"]["p50_ms"] is not None
    with urllib.request.urlopen(url + "api/events", timeout=10) as stream:
        topics = []
        while "program/stop" not in topics:
            line = stream.readline().decode()
            if line.startswith("data: "):
                topics.append(json.loads(line[6:])["topic"])
    assert topics.index("program/start") < topics.index("lm/request/stop")


def test_the_dashboard_is_read_only_unless_started_with_allow_control(
    start_system: SystemFactory,
) -> None:
    system = start_system()
    url = system.serve_dashboard()
    request = urllib.request.Request(
        url + "api/kill",
        data=json.dumps({"path": [system.name, "lm:default"]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    assert system.tree().children[0].restarts == 0


def test_a_token_is_required_off_loopback_and_checked_on_every_request(
    start_system: SystemFactory,
) -> None:
    system = start_system()
    with pytest.raises(ValueError, match="needs token="):
        system.serve_dashboard(host="0.0.0.0")
    url = system.serve_dashboard(token="s3cret-token")
    assert url.endswith("/?token=s3cret-token")
    base = url.split("?")[0]
    with pytest.raises(urllib.error.HTTPError) as denied:
        _get(base + "api/state")
    assert denied.value.code == 401
    assert _get(base + "api/state?token=s3cret-token")["system"] == system.name
    assert _get(base + "api/state", {"Authorization": "Bearer s3cret-token"})["state"] == "running"


def test_the_dashboard_command_serves_a_live_system_until_stopped() -> None:
    import io
    import threading
    import time

    from dspex_actors.dashboard._cli import run_dashboard

    out, stop = io.StringIO(), threading.Event()
    done: list[int] = []
    thread = threading.Thread(
        target=lambda: done.append(run_dashboard(port=0, traffic=0.05, out=out, stop=stop))
    )
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while "dashboard at " not in out.getvalue():
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.02)
        url = out.getvalue().split("dashboard at ")[1].split()[0]
        while _get(url + "api/state")["lms"].get("default", {}).get("requests", 0) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(20)
    assert done == [0] and not thread.is_alive()


def test_without_the_dashboard_extra_serve_dashboard_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a)
    )
    server = dx.RuleBasedLMServer().start()
    try:
        lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="x")
        with (
            dx.start(lm=lm, name="no-extra", configure_logs=False) as system,
            pytest.raises(ImportError, match=r"uvicorn.*dspex-actors\[dashboard\]"),
        ):
            system.serve_dashboard()
    finally:
        server.stop()
