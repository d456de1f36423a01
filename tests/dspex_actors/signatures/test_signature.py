"""Signatures: string parsing, class declaration, modifiers and saved state, against DSPy 3.4.1.

Facts come from ``tests/fixtures/dspy/signature_facts.json`` (written by
``tests/fixtures/gen_dspy_fixtures.py`` from real DSPy).
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import typing
from typing import Any, Literal, Optional

import pytest
from pydantic import BaseModel

from dspex_actors.adapters._values import get_annotation_name
from dspex_actors.signatures._fields import FieldSpec, InputField, OutputField, infer_prefix
from dspex_actors.signatures._signature import (
    InputFieldsError,
    Signature,
    SignatureError,
    ensure_signature,
    make_signature,
)
from tests.paths import DSPY_FIXTURES

FIXTURES = DSPY_FIXTURES
FACTS = json.loads((FIXTURES / "signature_facts.json").read_text(encoding="utf-8"))


def build_class(source: str) -> type[Signature]:
    namespace: dict[str, Any] = {
        "Signature": Signature,
        "InputField": InputField,
        "OutputField": OutputField,
        "Literal": Literal,
        "Optional": Optional,
        "typing": typing,
        "BaseModel": BaseModel,
    }
    exec(compile(textwrap.dedent(source), "<signature>", "exec", dont_inherit=True), namespace)
    sig: type[Signature] = namespace["Sig"]
    return sig


def describe(sig: type[Signature]) -> dict[str, Any]:
    """The same description the generator records for DSPy's signatures."""
    return {
        "instructions": sig.instructions,
        "signature": sig.signature,
        "fields": [
            {
                "name": name,
                "kind": spec.kind,
                "annotation": get_annotation_name(spec.annotation),
                "prefix": spec.prefix,
                "desc": spec.desc,
                "type_undefined": spec.json_schema_extra.get("IS_TYPE_UNDEFINED"),
                "required": not spec.has_default,
            }
            for name, spec in sig.fields.items()
        ],
        "dump_state": sig.dump_state(),
    }


def expected(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in ("instructions", "signature", "fields", "dump_state")}


class QA(Signature):
    """Answer questions with short factoid answers."""

    question: str = InputField()
    answer: str = OutputField(desc="often between 1 and 5 words")


# --------------------------------------------------------------------------- DSPy facts


@pytest.mark.parametrize("record", FACTS["parsed"], ids=[r["string"] for r in FACTS["parsed"]])
def test_string_signature_matches_dspy(record: dict[str, Any]) -> None:
    assert describe(make_signature(record["string"])) == expected(record)


@pytest.mark.parametrize("name", sorted(FACTS["classes"]))
def test_class_signature_matches_dspy(name: str) -> None:
    record = FACTS["classes"][name]
    assert describe(build_class(record["source"])) == expected(record)


def test_prefix_inference_matches_dspy() -> None:
    assert FACTS["infer_prefix"]
    for name, prefix in FACTS["infer_prefix"].items():
        assert infer_prefix(name) == prefix


def test_chain_of_thought_extension_matches_dspy() -> None:
    reasoning = FACTS["chain_of_thought"]["reasoning_field"]
    assert reasoning["json_schema_extra"] == {
        "desc": "${reasoning}",
        "__dspy_field_type": "output",
        "prefix": "Reasoning:",
    }
    assert reasoning["annotation"] == "str"
    extended = make_signature("question -> answer").prepend(
        "reasoning", OutputField(desc="${reasoning}"), str
    )
    assert describe(extended) == expected(FACTS["chain_of_thought"]["extended"])
    assert list(extended.output_fields) == ["reasoning", "answer"]


def test_modifiers_match_dspy() -> None:
    assert describe(make_signature("a -> b").with_instructions("New.")) == expected(
        FACTS["with_instructions"]
    )
    appended = make_signature("a -> b").append("c", OutputField(desc="C field"), type_=int)
    assert describe(appended) == expected(FACTS["append_output"])
    prepended = make_signature("a -> b", "Keep me.").prepend("z", InputField(), type_=list[str])
    assert describe(prepended) == expected(FACTS["prepend_input"])


def test_default_instructions_text() -> None:
    sig = make_signature("context: list[str], question -> answer: int")
    assert sig.instructions == (
        "Given the fields `context`, `question`, produce the fields `answer`."
    )
    assert make_signature("-> joke").instructions == "Given the fields , produce the fields `joke`."


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "record", FACTS["errors"], ids=[repr(r["string"]) for r in FACTS["errors"]]
)
def test_malformed_signature_string_raises_signature_error_quoting_it(
    record: dict[str, Any],
) -> None:
    # DSPy raises ValueError or SyntaxError for most of these, and silently accepts
    # "a ->", "*a -> b", "a=1 -> b" and "a, a -> b"; we reject all of them.
    with pytest.raises(SignatureError) as info:
        make_signature(record["string"])
    assert repr(record["string"]) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: list[3] -> b", "'3': not a type"),
        ("a: Foo -> b", "'Foo': unknown type name"),
        ("a: os.system -> b", "'os.system': unknown type name"),
        ("a: __import__('os') -> b", "not a supported type expression"),
        ("a: Literal[x] -> b", "Literal values must be"),
        ("a: Optional[int, str] -> b", "Optional takes exactly one type"),
        ("a: dict[str] -> b", "expected 2 type argument(s), got 1"),
        ("a: int[str] -> b", "cannot be subscripted"),
        ("a): pass\ndef g(b -> c", "cannot parse fields"),
        ("_private -> b", "identifiers not starting with '_'"),
    ],
)
def test_bad_types_and_names_are_rejected_with_the_offending_text(text: str, fragment: str) -> None:
    with pytest.raises(SignatureError) as info:
        make_signature(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize("name", ["signature", "instructions", "fields", "input_fields"])
def test_field_names_that_would_hide_the_class_api_are_rejected(name: str) -> None:
    with pytest.raises(SignatureError, match="reserved"):
        make_signature(f"{name} -> out")
    with pytest.warns(UserWarning, match="shadows an attribute"):  # pydantic's, as in DSPy
        assert list(make_signature("json, copy -> schema").fields) == ["json", "copy", "schema"]


def test_type_names_are_never_imported() -> None:
    assert "this" not in sys.modules
    with pytest.raises(SignatureError):
        make_signature("a: this -> b")
    with pytest.raises(SignatureError):
        make_signature("a: this.s -> b")
    assert "this" not in sys.modules


def test_supported_type_syntax() -> None:
    sig = make_signature(
        "a: list[str], b: dict[str, list[int]], c: Optional[int], d: int | None, "
        "e: Literal['x', -1, True, None], f: typing.List[str], g: tuple[int, ...], "
        "h: Union[int, str], i: Any, j: FrozenSet[bytes] -> k: set[float], m: NoneType | bool"
    )
    annotations = {name: spec.annotation for name, spec in sig.fields.items()}
    assert annotations == {
        "a": list[str],
        "b": dict[str, list[int]],
        "c": Optional[int],  # noqa: UP045
        "d": Optional[int],  # noqa: UP045
        "e": Literal["x", -1, True, None],
        "f": typing.List[str],  # noqa: UP006
        "g": tuple[int, ...],
        "h": typing.Union[int, str],  # noqa: UP007
        "i": typing.Any,
        "j": typing.FrozenSet[bytes],  # noqa: UP006
        "k": set[float],
        "m": Optional[bool],  # noqa: UP045
    }


def test_custom_types_resolve_plain_and_dotted_names() -> None:
    class Doc(BaseModel):
        text: str

    sig = make_signature(
        "doc: Doc, docs: list[lib.Doc] -> summary", custom_types={"Doc": Doc, "lib.Doc": Doc}
    )
    assert sig.input_fields["doc"].annotation is Doc
    assert sig.input_fields["docs"].annotation == list[Doc]


def test_class_field_without_input_or_output_field_is_rejected() -> None:
    with pytest.raises(SignatureError, match="must be declared with InputField or OutputField"):

        class Bad(Signature):
            question: str = InputField()
            answer: str = "oops"


def test_mapping_fields_must_be_dspy_fields() -> None:
    from pydantic import Field

    with pytest.raises(SignatureError, match="InputField or OutputField"):
        make_signature({"a": (str, Field()), "b": OutputField()})
    with pytest.raises(SignatureError, match="tuple"):
        make_signature({"a": "not a field"})
    with pytest.raises(SignatureError, match="must be types"):
        make_signature({"a": (3, InputField()), "b": OutputField()})


# --------------------------------------------------------------------------- class API


def test_class_signature_api() -> None:
    assert QA.instructions == "Answer questions with short factoid answers."
    assert QA.signature == "question -> answer"
    assert list(QA.fields) == ["question", "answer"]
    spec = QA.output_fields["answer"]
    assert isinstance(spec, FieldSpec)
    assert (spec.name, spec.kind, spec.annotation, spec.desc, spec.prefix) == (
        "answer",
        "output",
        str,
        "often between 1 and 5 words",
        "Answer:",
    )
    assert QA.input_fields["question"].desc == "${question}"


def test_fields_are_listed_inputs_first_whatever_the_declaration_order() -> None:
    class Mixed(Signature):
        out1: str = OutputField()
        in1: str = InputField()
        out2 = OutputField()
        in2: int = InputField()

    assert list(Mixed.fields) == ["in1", "in2", "out1", "out2"]
    assert Mixed.signature == "in1, in2 -> out1, out2"
    assert Mixed.instructions == "Given the fields `in1`, `in2`, produce the fields `out1`, `out2`."


def test_signature_call_with_instructions_keyword_and_mapping() -> None:
    by_string = Signature("question -> answer", instructions="Be brief.")
    by_mapping = Signature({"question": InputField(), "answer": OutputField()}, "Be brief.")
    assert by_string.instructions == by_mapping.instructions == "Be brief."
    assert by_string.equals(by_mapping)
    assert by_string.__name__ == "StringSignature"
    assert issubclass(by_string, Signature)


def test_root_signature_docstring_is_not_inherited_but_a_parents_is() -> None:
    class NoDoc(Signature):
        x: str = InputField()
        y: str = OutputField()

    class Child(QA):
        extra: str = InputField()

    assert NoDoc.instructions == "Given the fields `x`, produce the fields `y`."
    assert Child.instructions == QA.instructions
    assert list(Child.input_fields) == ["question", "extra"]


def test_modifiers_return_new_classes_and_leave_the_original_alone() -> None:
    before = describe(QA)
    variants = [
        QA.with_instructions("Other."),
        QA.append_instructions("More."),
        QA.prepend("reasoning", OutputField(desc="${reasoning}")),
        QA.append("context", InputField(desc="facts"), list[str]),
        QA.insert(-2, "hint", OutputField(), int),
        QA.delete("answer"),
        QA.with_updated_fields("answer", type_=int, desc="a number"),
    ]
    assert describe(QA) == before
    assert all(v is not QA for v in variants)
    assert variants[1].instructions == QA.instructions + "\n\nMore."
    assert list(variants[3].input_fields) == ["question", "context"]
    assert list(variants[4].output_fields) == ["hint", "answer"]
    assert list(variants[5].fields) == ["question"]
    updated = variants[6].output_fields["answer"]
    assert (updated.annotation, updated.desc, updated.prefix) == (int, "a number", "Answer:")


def test_insert_rejects_bad_index_duplicate_name_and_non_field() -> None:
    with pytest.raises(SignatureError, match="Invalid index"):
        QA.insert(5, "x", OutputField())
    with pytest.raises(SignatureError, match="already has a field"):
        QA.append("answer", OutputField())
    with pytest.raises(SignatureError, match="InputField"):
        QA.append("x", "not a field")
    with pytest.raises(SignatureError, match="no field"):
        QA.with_updated_fields("nope", desc="x")


def test_reusing_one_field_object_does_not_leak_between_signatures() -> None:
    shared = OutputField()
    first = make_signature({"q": InputField(), "alpha": shared})
    second = make_signature({"q": InputField(), "beta": shared})
    assert first.output_fields["alpha"].prefix == "Alpha:"
    assert second.output_fields["beta"].prefix == "Beta:"
    assert second.output_fields["beta"].desc == "${beta}"
    assert "prefix" not in shared.json_schema_extra


def test_equals_compares_instructions_fields_and_types() -> None:
    same = make_signature(
        {
            "question": (str, InputField()),
            "answer": (str, OutputField(desc="often between 1 and 5 words")),
        },
        QA.instructions,
    )
    assert QA.equals(same)
    assert not QA.equals(QA.with_instructions("Other."))
    assert not QA.equals(QA.with_updated_fields("answer", type_=int))
    assert not QA.equals(QA.append("x", OutputField()))
    assert not QA.equals(Signature)
    assert not QA.equals("question -> answer")


def test_ensure_signature() -> None:
    assert ensure_signature(QA) is QA
    assert ensure_signature("a -> b", "Do it.").instructions == "Do it."
    with pytest.raises(SignatureError, match="Don't specify instructions"):
        ensure_signature(QA, "x")
    with pytest.raises(SignatureError, match="Expected a signature"):
        ensure_signature(42)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="Expected a signature"):
        ensure_signature(Signature)


# --------------------------------------------------------------------------- inputs


def test_validate_inputs_names_missing_and_unknown_fields() -> None:
    sig = make_signature("context, question -> answer")
    with pytest.raises(InputFieldsError) as info:
        sig.validate_inputs({"question": "q", "qeustion": "typo", "lm": None})
    error = info.value
    assert isinstance(error, SignatureError)
    assert isinstance(error, ValueError)
    assert error.missing == ("context",)
    assert error.unknown == ("qeustion", "lm")
    message = str(error)
    assert "missing input field(s) context" in message
    assert "unknown input field(s) qeustion, lm" in message
    assert "expected input fields: context, question" in message


def test_validate_inputs_fills_defaults_and_allows_optional_fields() -> None:
    class WithDefaults(Signature):
        question: str = InputField()
        style: str = InputField(default="short")
        hint: Optional[str] = InputField()  # noqa: UP045
        answer: str = OutputField()

    assert WithDefaults.validate_inputs({"question": "q"}) == {"question": "q", "style": "short"}
    assert WithDefaults.validate_inputs({"question": "q", "style": "long", "hint": None}) == {
        "question": "q",
        "style": "long",
        "hint": None,
    }
    with pytest.raises(InputFieldsError) as info:
        WithDefaults.validate_inputs({})
    assert info.value.missing == ("question",)
    assert info.value.unknown == ()


# --------------------------------------------------------------------------- saved state


def load_program(name: str) -> dict[str, Any]:
    text = (FIXTURES / "saved_programs" / f"{name}.json").read_text(encoding="utf-8")
    state: dict[str, Any] = json.loads(text)
    return state


def test_dump_state_matches_dspy_saved_programs() -> None:
    class Classify(Signature):
        """Classify the sentiment."""

        sentence: str = InputField(desc="a movie review sentence")
        sentiment: Literal["positive", "negative"] = OutputField()

    reasoning = OutputField(desc="${reasoning}")
    predict = load_program("predict")
    cot = load_program("chain_of_thought")
    rag = load_program("rag_module")
    assert make_signature("question -> answer").dump_state() == predict["signature"]
    assert Classify.prepend("reasoning", reasoning, str).dump_state() == cot["predict"]["signature"]
    assert make_signature("question -> search_query").dump_state() == rag["rewrite"]["signature"]
    generate = (
        make_signature("context: list[str], question -> answer")
        .prepend("reasoning", reasoning, str)
        .with_instructions("Answer using the context.\nBe brief.")
    )
    assert generate.dump_state() == rag["generate.predict"]["signature"]
    assert predict["metadata"]["dependency_versions"] == {
        "python": "3.11",
        "dspy": "3.4.1",
        "cloudpickle": "3.1",
    }


def test_load_state_applies_saved_instructions_prefixes_and_descriptions() -> None:
    state = {
        "instructions": "Saved instructions.",
        "fields": [
            {"prefix": "Q:", "description": "the question"},
            {"prefix": "A:", "description": "the answer"},
        ],
    }
    loaded = QA.load_state(state)
    assert loaded.dump_state() == state
    assert loaded.__name__ == "QA"
    assert loaded.input_fields["question"].desc == "the question"
    assert QA.instructions == "Answer questions with short factoid answers."
    with pytest.raises(SignatureError, match="Invalid saved signature state"):
        QA.load_state({"fields": []})


def test_signature_classes_can_be_built_concurrently() -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def build(index: int) -> None:
        try:
            sig = make_signature(f"q{index}: list[str] -> a{index}: int").prepend(
                "reasoning", OutputField(desc="${reasoning}"), str
            )
            results.append(sig.signature)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(i,), daemon=True) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert sorted(results) == sorted(f"q{i} -> reasoning, a{i}" for i in range(16))
