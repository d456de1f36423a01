"""The JSON adapter's ``response_format`` is what DSPy 3.4.1 sends, model by model.

The fixture holds request bodies captured from real DSPy
(``tests/fixtures/gen_dspy_response_format_fixtures.py``): a strict JSON schema for the
models DSPy sends Structured Outputs to, JSON mode for the others it knows and for open
mappings, nothing for models it does not know.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

import dspex_actors as dx
from dspex_actors.adapters import response_format_for
from tests.paths import DSPY_FIXTURES

FIXTURE = json.loads((DSPY_FIXTURES / "response_format.json").read_text())


def _signature(spec: dict[str, Any]) -> type[dx.Signature]:
    if "string" in spec:
        return dx.Signature(spec["string"])
    scope: dict[str, Any] = {
        "Signature": dx.Signature,
        "InputField": dx.InputField,
        "OutputField": dx.OutputField,
        "pydantic": pydantic,
    }
    source = "from typing import Literal, Optional\n" + FIXTURE["sources"][spec["source"]]
    exec(compile(source, "<signature>", "exec", dont_inherit=True), scope)
    signature: type[dx.Signature] = scope["Sig"]
    return signature


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=[c["name"] for c in FIXTURE["cases"]])
def test_the_json_adapter_sends_the_response_format_dspy_sends(case: dict[str, Any]) -> None:
    lm = dx.LM(case["model"], api_base="http://127.0.0.1:9/v1", api_key="x")
    signature = _signature(case["signature"])
    overrides = dx.JSONAdapter().request_overrides(signature, lm.response_format_support)
    assert overrides.get("response_format") == case["response_format"]


def test_the_chat_adapter_sends_no_response_format_whatever_the_model() -> None:
    lm = dx.LM("openai/gpt-4o-mini", api_key="x")
    signature = dx.Signature("question -> answer")
    assert dx.ChatAdapter().request_overrides(signature, lm.response_format_support) == {}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("json_object", "json_object"), ("none", None), ("json_schema", "json_schema")],
)
def test_lm_response_format_overrides_the_model_table(choice: str, expected: str | None) -> None:
    lm = dx.LM("openai/my-local-model", api_key="x", response_format=choice)  # type: ignore[arg-type]
    assert lm.response_format_support == expected


def test_providers_get_json_mode_or_nothing_by_default() -> None:
    assert dx.LM("gemini/gemini-2.5-flash", api_key="x").response_format_support == "json_object"
    assert dx.LM("anthropic/claude-sonnet-4-5", api_key="x").response_format_support is None


def test_a_schema_pydantic_cannot_build_falls_back_to_json_mode() -> None:
    # pydantic validates a callable but has no JSON schema for it (as DSPy, JSON mode).
    signature = dx.Signature("question -> answer").with_updated_fields(
        "answer", type_=Callable[[int], int]
    )
    assert response_format_for(signature, "json_schema") == {"type": "json_object"}


def test_each_call_gets_its_own_copy_of_the_cached_schema() -> None:
    signature = dx.Signature("question -> answer: int")
    first = response_format_for(signature, "json_schema")
    assert first is not None and first["type"] == "json_schema"
    first["json_schema"]["schema"]["properties"].clear()
    second = response_format_for(signature, "json_schema")
    assert second is not None and "answer" in second["json_schema"]["schema"]["properties"]


def test_a_structured_outputs_call_reaches_the_server_and_parses(
    lm_server: dx.RuleBasedLMServer,
) -> None:
    lm = dx.LM("openai/gpt-4o-mini", api_base=lm_server.api_base, api_key="x")
    with dx.start(lm=lm, cache=False, name="schema", configure_logs=False):
        qa = dx.Predict("question -> answer: int", adapter=dx.JSONAdapter())
        assert qa(question="What is 2 + 3?").answer == 5
    sent = lm_server.requests[-1]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"]["properties"]["answer"]["type"] == "integer"
