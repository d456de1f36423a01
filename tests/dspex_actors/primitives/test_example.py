"""Example / Prediction semantics, checked expression by expression against DSPy 3.4.1.

``tests/fixtures/dspy/example_facts.json`` holds, for each Python expression, the repr
of what DSPy returned (or the exception type); the same expression is evaluated here
with dspex_actors' classes.
"""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest
from pydantic import BaseModel

from dspex_actors.primitives._example import Completions, Example, Prediction
from tests.paths import DSPY_FIXTURES

FIXTURES = DSPY_FIXTURES
FACTS = json.loads((FIXTURES / "example_facts.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", FACTS["cases"], ids=[c["expression"] for c in FACTS["cases"]])
def test_example_behaves_like_dspy(case: dict[str, Any]) -> None:
    namespace: dict[str, Any] = {"Example": Example, "Prediction": Prediction}
    exec(FACTS["setup"], namespace)
    if "error" in case:
        with pytest.raises(Exception) as info:  # noqa: PT011 - the type is checked below
            eval(case["expression"], namespace)
        assert type(info.value).__name__ == case["error"]
    else:
        assert repr(eval(case["expression"], namespace)) == case["repr"]


def test_fixture_covers_examples_and_predictions() -> None:
    expressions = " ".join(c["expression"] for c in FACTS["cases"])
    for needle in ("inputs()", "labels()", "toDict()", "copy(", "from_completions", "pred + 1"):
        assert needle in expressions


def test_attribute_assignment_sets_fields_but_not_methods_or_private_names() -> None:
    ex = Example(a=1)
    ex.b = 2
    ex._private = 3
    assert ex.toDict() == {"a": 1, "b": 2}
    assert ex._private == 3
    ex.keys = "shadow"  # type: ignore[method-assign,assignment]  # a class attribute: set on the object
    assert "keys" not in ex
    del ex["a"]
    assert ex.toDict() == {"b": 2}


def test_to_dict_is_an_alias_and_converts_nested_models() -> None:
    class Doc(BaseModel):
        text: str

    ex = Example(doc=Doc(text="t"), docs=[Example(x=1)], meta={"inner": Example(y=2)})
    assert (
        ex.to_dict()
        == ex.toDict()
        == {
            "doc": {"text": "t"},
            "docs": [{"x": 1}],
            "meta": {"inner": {"y": 2}},
        }
    )


def test_with_inputs_returns_a_copy_and_input_keys_is_read_only_view() -> None:
    ex = Example(q="q", a="a")
    marked = ex.with_inputs("q")
    assert ex.input_keys is None
    assert marked.input_keys == frozenset({"q"})
    assert marked == ex  # equality ignores input keys, as in DSPy
    marked["q"] = "changed"
    assert ex.q == "q"


def test_examples_copy_deepcopy_and_pickle() -> None:
    ex = Example(q="q", nested={"k": [1]}).with_inputs("q")
    deep = copy.deepcopy(ex)
    deep.nested["k"].append(2)
    assert ex.nested == {"k": [1]}
    restored = pickle.loads(pickle.dumps(ex))
    assert restored == ex
    assert restored.input_keys == frozenset({"q"})
    shallow = copy.copy(ex)
    assert shallow == ex


def test_prediction_with_completions() -> None:
    pred = Prediction.from_completions([{"answer": "a", "n": 1}, {"answer": "b", "n": 2}])
    completions = pred.completions
    assert isinstance(completions, Completions)
    assert len(completions) == 2
    assert completions.answer == ["a", "b"]
    assert completions["n"] == [1, 2]
    assert completions[1].toDict() == {"answer": "b", "n": 2}
    assert "answer" in completions
    assert (pred.answer, pred.n) == ("a", 1)
    with pytest.raises(IndexError):
        completions[2]
    with pytest.raises(AttributeError):
        _ = completions.missing


def test_prediction_from_bad_completions_raises_value_error() -> None:
    with pytest.raises(ValueError, match="same length"):
        Prediction.from_completions({"a": [1, 2], "b": [1]})
    with pytest.raises(ValueError, match="at least one"):
        Prediction.from_completions([])


def test_prediction_score_arithmetic_rejects_other_types() -> None:
    pred = Prediction(score=2)
    assert sum([pred, Prediction(score=1)]) == 3.0
    assert 4 / pred == 2.0
    with pytest.raises(TypeError):
        _ = pred + "x"
    pred.set_lm_usage({"tokens": 3})
    assert pred.get_lm_usage() == {"tokens": 3}
