"""dx.Pipeline: outputs feed inputs by field name, field errors early and named."""

from __future__ import annotations

from typing import Any

import pytest

import dspex_actors as dx
import supervisors as sv


class Retrieve(dx.Module):
    """A retriever without LM: its outputs are known only when it runs."""

    def forward(self, **inputs: Any) -> dx.Prediction:
        return dx.Prediction(context=[f"passage about {inputs['question']}"])


def test_outputs_of_each_step_feed_the_next_by_field_name(system: dx.ActorSystem) -> None:
    pipeline = dx.Pipeline(
        [dx.Predict("question -> query"), dx.ChainOfThought("query, question -> answer")],
        name="rag",
    )
    pred = pipeline(question="What is the capital of France?")
    assert pred.answer
    assert "query" in pred and "reasoning" in pred
    # The whole pipeline was one request: 2 LM calls, no program left.
    assert sv.count_children(system._programs_name).active == 0


def test_a_missing_field_is_an_error_at_construction_when_signatures_say_so() -> None:
    with pytest.raises(dx.PipelineError, match=r"step 1 .*needs \['context'\]"):
        dx.Pipeline([dx.Predict("question -> query"), dx.Predict("context, query -> answer")])


def test_a_missing_field_after_a_signature_less_step_is_an_error_at_call_time(
    system: dx.ActorSystem,
) -> None:
    pipeline = dx.Pipeline([dx.Predict("question -> query"), Retrieve(), dx.Predict("notes -> a")])
    with pytest.raises(dx.PipelineError, match=r"step 2 \(Predict\('notes -> a'\)\) needs"):
        pipeline(question="q")
    ok = dx.Pipeline([dx.Predict("question -> query"), Retrieve(), dx.Predict("context -> a")])
    assert ok(question="owls").a


def test_an_error_in_a_step_keeps_its_type_and_names_the_step(
    system: dx.ActorSystem, lm_server: Any
) -> None:
    lm_server.inject(dx.Fault("400"), dx.Fault("400"))
    pipeline = dx.Pipeline([dx.Predict("question -> answer")], name="one")
    with pytest.raises(dx.LMBadRequest) as info:
        pipeline(question="q")
    assert any("pipeline 'one' step 0" in note for note in info.value.__notes__)


def test_a_pipeline_needs_modules() -> None:
    with pytest.raises(dx.PipelineError):
        dx.Pipeline([])
    with pytest.raises(TypeError, match="step 0 is not a module"):
        dx.Pipeline([print])  # type: ignore[list-item]
