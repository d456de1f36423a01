"""Saving and loading programs in DSPy's JSON layout.

Programs saved by DSPy 3.4.1 (tests/fixtures/dspy/saved_programs, written by
tests/fixtures/gen_dspy_fixtures.py) load here into the matching structure, our
``save`` writes the same layout, a compiled program survives a round trip, bad
files raise ``ProgramFileError`` and no credentials are ever written.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest

import dspex_actors as dx
from dspex_actors.optimize import BootstrapFewShot, Evaluate
from dspex_actors.testing import RuleBasedLMServer
from tests.dspex_actors.fixture_types import SystemFactory
from tests.paths import DSPY_FIXTURES

SAVED = DSPY_FIXTURES / "saved_programs"


class Classify(dx.Signature):
    """Classify the sentiment."""

    sentence: str = dx.InputField(desc="a movie review sentence")
    sentiment: Literal["positive", "negative"] = dx.OutputField()


class RAG(dx.Module):
    """The structure of the fixture generator's ``RAG`` module."""

    def __init__(self) -> None:
        self.rewrite = dx.Predict("question -> search_query")
        self.generate = dx.ChainOfThought("context: list[str], question -> answer")

    def forward(self, question: str) -> Any:  # type: ignore[override]  # pragma: no cover
        raise NotImplementedError


BUILDERS: dict[str, Callable[[], dx.Module]] = {
    "predict": lambda: dx.Predict("question -> answer"),
    "chain_of_thought": lambda: dx.ChainOfThought(Classify),
    "rag_module": RAG,
}


def fixture_state(name: str) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((SAVED / f"{name}.json").read_text(encoding="utf-8"))
    return state


def without_metadata(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "metadata"}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_program_saved_by_dspy_loads_into_the_matching_structure(name: str) -> None:
    program = BUILDERS[name]().load(SAVED / f"{name}.json")

    assert program.dump_state() == without_metadata(fixture_state(name))


def test_loaded_dspy_programs_keep_demos_and_instructions() -> None:
    predict = dx.Predict("question -> answer").load(SAVED / "predict.json")
    assert [d.toDict() for d in predict.demos] == [
        {"question": "What is 1+1?", "answer": "2"},
        {"augmented": True, "question": "What is 2+2?", "answer": "4"},
        {"augmented": True, "question": "What is 3+3?", "answer": "6"},
    ]
    rag = RAG().load(SAVED / "rag_module.json")
    assert rag.generate.predict.signature.instructions == "Answer using the context.\nBe brief."
    assert rag.generate.predict.demos[1].context == ["Lima is in Peru."]
    assert rag.rewrite.demos[0].search_query == "France capital"


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_our_save_writes_dspys_layout(name: str, tmp_path: Path) -> None:
    program = BUILDERS[name]().load(SAVED / f"{name}.json")
    path = tmp_path / f"{name}.json"

    program.save(path)

    ours = json.loads(path.read_text(encoding="utf-8"))
    theirs = fixture_state(name)
    assert list(ours) == list(theirs)  # same predictor names in the same order, then metadata
    assert without_metadata(ours) == without_metadata(theirs)
    # DSPy's load() looks up each dependency_versions key in its own table: only its keys.
    assert set(ours["metadata"]["dependency_versions"]) <= {"python", "dspy", "cloudpickle"}
    assert ours["metadata"]["dependency_versions"]["dspy"] == "3.4.1"
    assert set(ours["metadata"]) == {"dependency_versions", "dspex_actors"}
    predictors = [ours] if name == "predict" else [v for k, v in ours.items() if k != "metadata"]
    for state in predictors:
        assert [k for k in state if k != "metadata"] == [
            "traces",
            "train",
            "demos",
            "signature",
            "lm",
        ]
        assert list(state["signature"]) == ["instructions", "fields"]
        assert all(list(f) == ["prefix", "description"] for f in state["signature"]["fields"])
    assert BUILDERS[name]().load(path).dump_state() == without_metadata(theirs)
    assert not list(tmp_path.glob(".*.tmp"))


# -------------------------------------------------------------- compiled programs


def exact(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
    return bool(prediction.answer == example.answer)


def capitals() -> list[dx.Example]:
    pairs = [("France", "Paris"), ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Kenya", "Nairobi")]
    return [
        dx.Example(question=f"What is the capital of {c}?", answer=a).with_inputs("question")
        for c, a in pairs
    ]


def test_a_compiled_program_round_trips_without_credentials(
    start_system: SystemFactory, lm_server: RuleBasedLMServer, tmp_path: Path
) -> None:
    secret = "sk-secret-0123456789"
    with start_system(api_key=secret, cache=False) as system:
        compiled = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2).compile(
            dx.Predict("question -> answer"), trainset=capitals(), system=system
        )
        path = tmp_path / "program.json"
        compiled.save(path)
        loaded = dx.Predict("question -> answer").load(path)
        evaluate = Evaluate(devset=capitals(), metric=exact)
        assert evaluate(loaded).score == evaluate(compiled).score == 100.0

    text = path.read_text(encoding="utf-8")
    assert secret not in text and "sk-" not in text
    assert lm_server.api_base not in text and str(lm_server.port) not in text
    assert json.loads(text)["lm"] is None
    assert loaded.dump_state() == compiled.dump_state()
    assert [d.get("augmented") for d in loaded.demos] == [True, True, None, None]


# ---------------------------------------------------------------------- bad files


def test_bad_files_raise_program_file_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(dx.ProgramFileError, match="cannot read"):
        dx.Predict("question -> answer").load(missing)

    not_json = tmp_path / "broken.json"
    not_json.write_text('{"demos": [', encoding="utf-8")
    with pytest.raises(dx.ProgramFileError, match="not JSON"):
        dx.Predict("question -> answer").load(not_json)

    array = tmp_path / "array.json"
    array.write_text("[]", encoding="utf-8")
    with pytest.raises(dx.ProgramFileError, match="JSON object"):
        dx.Predict("question -> answer").load(array)

    with pytest.raises(dx.ProgramFileError, match="do not match"):
        RAG().load(SAVED / "predict.json")
    with pytest.raises(dx.ProgramFileError, match="do not match"):
        dx.ChainOfThought(Classify).load(SAVED / "rag_module.json")

    bad_demos = tmp_path / "bad_demos.json"
    bad_demos.write_text(json.dumps({"demos": "nope"}), encoding="utf-8")
    with pytest.raises(dx.ProgramFileError, match="demos"):
        dx.Predict("question -> answer").load(bad_demos)

    with pytest.raises(dx.ProgramFileError, match=r"\.json"):
        dx.Predict("question -> answer").save(tmp_path / "program.pkl")


def test_a_pickled_file_raises_program_file_error(tmp_path: Path) -> None:
    pickled = tmp_path / "program.pkl"
    pickled.write_bytes(pickle.dumps({"demos": []}))
    with pytest.raises(dx.ProgramFileError):
        dx.Predict("question -> answer").load(pickled)


def test_a_multi_predictor_file_does_not_load_into_a_single_predict() -> None:
    with pytest.raises(dx.ProgramFileError):
        dx.Predict("question -> answer").load(SAVED / "rag_module.json")


def test_a_failed_load_leaves_every_predictor_as_it_was(tmp_path: Path) -> None:
    rag = BUILDERS["rag_module"]()
    before = rag.dump_state()
    state = fixture_state("rag_module")
    state["generate.predict"]["demos"] = "bad"  # the second predictor's state is broken
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(state), encoding="utf-8")

    with pytest.raises(dx.ProgramFileError, match=r"generate\.predict.*demos"):
        rag.load(path)

    assert rag.dump_state() == before  # the valid first predictor was not applied either


def test_loading_a_link_to_a_device_is_refused_at_once(tmp_path: Path) -> None:
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")

    with pytest.raises(dx.ProgramFileError, match="not a regular file"):
        dx.Predict("question -> answer").load(link)


def test_loading_a_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)

    with pytest.raises(dx.ProgramFileError, match="not a regular file"):
        dx.Predict("question -> answer").load(fifo)


def test_a_deeply_nested_program_file_is_a_program_file_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")

    with pytest.raises(dx.ProgramFileError, match="nested too deeply"):
        dx.Predict("question -> answer").load(path)


def test_a_positional_call_explains_the_keyword_form() -> None:
    qa = dx.Predict("question -> answer")
    with pytest.raises(TypeError, match=r"keyword arguments, e\.g\. predict\(question=\.\.\.\)"):
        qa("What is the capital of France?")


def test_errors_read_as_public_names_not_internal_modules(system: dx.ActorSystem) -> None:
    qa = dx.Predict("question -> answer")
    with pytest.raises(dx.InputFieldsError) as caught:
        qa(q="x")
    assert type(caught.value).__module__ == "dspex_actors"
    assert "StringSignature" not in str(caught.value)
    assert "'question -> answer'" in str(caught.value)


def test_a_predict_without_inputs_is_refused_with_the_fix() -> None:
    with pytest.raises(dx.SignatureError, match=r"no input fields.*'question -> answer'"):
        dx.Predict("-> answer")
