"""An Outcome with wrong-typed fields is counted as far as it is valid (issue 9, item 11)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

import dspex_actors as dx
from dspex_actors.lm import Admission, LMCounters, Outcome
from dspex_actors.primitives import GetStats

_names = itertools.count(1)


def make_admission() -> Admission:
    lm = dx.LM("openai/rule-based", api_base="http://127.0.0.1:9/v1", api_key="x")
    return Admission("default", lm, requests.Session(), LMCounters())


@pytest.mark.parametrize(
    ("usage", "latency", "ignored"),
    [
        ({"prompt_tokens": "x", "completion_tokens": 3}, 0.5, ["usage.prompt_tokens"]),
        ({"prompt_tokens": 2, "completion_tokens": [1]}, 0.5, ["usage.completion_tokens"]),
        ("lots", 0.5, ["usage"]),
        ({"prompt_tokens": -1, "completion_tokens": True}, "slow", None),
        ({"prompt_tokens": 2.5}, float("nan"), None),
    ],
)
def test_wrong_typed_usage_or_latency_is_ignored_and_the_rest_is_counted(
    usage: Any, latency: Any, ignored: list[str] | None
) -> None:
    admission = make_admission()
    with capture_logs() as logs:
        admission.record(Outcome(ok=True, latency_s=latency, usage=usage))
        admission.record(Outcome(ok=True, latency_s=0.25, usage={"prompt_tokens": 10}))
    stats = admission.counters.stats("m")

    assert stats["requests"] == stats["ok"] == 2
    expected_prompt = 10 + (2 if usage == {"prompt_tokens": 2, "completion_tokens": [1]} else 0)
    assert stats["prompt_tokens"] == expected_prompt
    assert stats["completion_tokens"] == (3 if ignored == ["usage.prompt_tokens"] else 0)
    warnings = [log for log in logs if log["event"] == "lm.outcome_ignored_fields"]
    assert len(warnings) == 1  # once, however many bad outcomes
    if ignored is not None:
        assert warnings[0]["fields"] == ignored
    if latency == 0.5:
        assert stats["latency_ms"]["mean"] == pytest.approx(375.0)
    else:
        assert stats["latency_ms"]["mean"] == pytest.approx(250.0)


def test_an_lm_client_told_a_bad_outcome_keeps_running_and_counting() -> None:
    server = dx.RuleBasedLMServer().start()
    try:
        with dx.start(
            lm=dx.LM("openai/rule-based", api_base=server.api_base, api_key="x"),
            cache=False,
            name=f"outcome{next(_names)}",
            configure_logs=False,
        ) as system:
            client = system.lm()
            for bad in ({"prompt_tokens": "x"}, "usage", {"completion_tokens": object()}):
                client.tell(Outcome(ok=True, latency_s=0.1, usage=bad))
            client.tell(Outcome(ok=True, latency_s="x", usage={"prompt_tokens": 5}))
            stats = client.ask(GetStats(), timeout=5)
            assert dx.Predict("question -> answer")(question="What is 1 + 1?").answer
            lm_node = system.tree().find(client.name)  # under the LM's own supervisor
            assert lm_node is not None
    finally:
        server.stop()
    assert stats["requests"] == 4
    assert stats["prompt_tokens"] == 5
    assert lm_node.restarts == 0
    assert lm_node.state == "alive"
