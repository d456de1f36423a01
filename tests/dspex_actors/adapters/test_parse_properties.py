"""Untyped errors from completions (issue 9, item 4) and property tests of both adapters.

Whatever the LM sends, ``ChatAdapter.parse`` and ``JSONAdapter.parse`` return the output
fields or raise :class:`AdapterParseError`; nothing else escapes, and a program run on such
a completion raises ``AdapterParseError`` to its caller while the system keeps serving.
"""

from __future__ import annotations

import enum
import json
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dspex_actors as dx
from dspex_actors.adapters._values import parse_value
from tests.dspex_actors.lm._loopback import Reply, ScriptedServer, completion

BIG = "9" * 5000  # over Python's 4,300-digit limit for int <-> str


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Paint(dx.Signature):
    """Pick a colour."""

    wall: str = dx.InputField()
    color: Color = dx.OutputField()


ADAPTERS = [dx.ChatAdapter(), dx.JSONAdapter()]


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], {"red": "x"}])
def test_an_enum_given_a_dict_or_list_raises_value_error_not_unhashable(value: Any) -> None:
    with pytest.raises(ValueError, match="not a valid name or value for the enum Color"):
        parse_value(value, Color)


@pytest.mark.parametrize("text", ['{"color": {"a": 1}}', '{"color": [1]}', '{"color": ["red"]}'])
def test_json_adapter_reports_an_enum_given_a_dict_or_list_as_a_parse_error(text: str) -> None:
    with pytest.raises(dx.AdapterParseError, match="Failed to parse field color"):
        dx.JSONAdapter().parse(Paint, text)


def test_an_enum_field_still_accepts_a_name_or_a_value() -> None:
    assert dx.JSONAdapter().parse(Paint, '{"color": "BLUE"}') == {"color": Color.BLUE}
    assert dx.ChatAdapter().parse(Paint, "[[ ## color ## ]]\nred") == {"color": Color.RED}


def test_an_enum_error_about_a_5000_digit_int_does_not_raise_while_printing_it() -> None:
    with pytest.raises(ValueError, match="<int> is not a valid name"):
        parse_value(int(BIG[:4000]) ** 2, Color)  # an 8,000-digit int: str() would raise


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: type(adapter).__name__)
@pytest.mark.parametrize(
    "annotation", [int, list[int], dict[str, int], Color, Literal["a"], int | None]
)
def test_a_5000_digit_integer_is_a_parse_error(adapter: dx.Adapter, annotation: Any) -> None:
    signature = dx.Signature("q -> n").with_updated_fields("n", type_=annotation)
    for value in (BIG, f"[{BIG}]", f'{{"a": {BIG}}}', f'"{BIG}"'):
        text = (
            f'{{"n": {value}}}'
            if isinstance(adapter, dx.JSONAdapter)
            else f"[[ ## n ## ]]\n{value}"
        )
        with pytest.raises(dx.AdapterParseError):
            adapter.parse(signature, text)


def test_a_program_given_a_5000_digit_integer_raises_adapter_parse_error_and_serves_on() -> None:
    with ScriptedServer() as server:
        server.push(
            Reply(body=completion(f"[[ ## n ## ]]\n{BIG}")),
            Reply(body=completion(f'{{"n": {BIG}}}')),  # the JSON fallback's answer
        )
        server.set_default(Reply(body=completion("[[ ## n ## ]]\n7")))
        with dx.start(
            lm=dx.LM("openai/m", api_base=server.api_base),
            cache=False,
            name="bigint",
            configure_logs=False,
        ):
            with pytest.raises(dx.AdapterParseError):
                dx.Predict("q -> n: int")(q="how many?")
            assert dx.Predict("q -> n: int")(q="how many?").n == 7


SIGNATURES = [
    dx.Signature("q -> a"),
    dx.Signature("q -> n: int, ok: bool"),
    dx.Signature("q -> xs: list[float], d: dict[str, int]"),
    dx.Signature("q -> pick: Literal['x', 'y'], maybe: int | None"),
    Paint,
]
FRAGMENTS = st.sampled_from(
    [
        "[[ ## a ## ]]", "[[ ## n ## ]]", "[[ ## ok ## ]]", "[[ ## xs ## ]]", "[[ ## d ## ]]",
        "[[ ## pick ## ]]", "[[ ## maybe ## ]]", "[[ ## color ## ]]", "[[ ## completed ## ]]",
        "\n", "{", "}", "[", "]", '"', ":", ",", '"a"', '"n"', '"color"', '"xs"', "```", "```json",
        "1", "-1", "1e999", "nan", BIG, "true", "null", "red", "RED", "'x'", "Literal['y']", " ",
    ]
)  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["a", "n", "ok", "xs", "d", "color", "x"]), children, max_size=4
        )
    ),
    max_leaves=12,
)
completions = st.one_of(
    st.lists(FRAGMENTS, max_size=30).map("".join),
    json_values.map(json.dumps),
    st.text(max_size=200),
)


@settings(max_examples=300, deadline=1000)
@given(st.sampled_from(ADAPTERS), st.sampled_from(SIGNATURES), completions)
def test_parse_returns_the_output_fields_or_raises_adapter_parse_error(
    adapter: dx.Adapter, signature: type[dx.Signature], text: str
) -> None:
    error: dx.AdapterParseError | None = None
    try:
        fields = adapter.parse(signature, text)
    except dx.AdapterParseError as raised:
        error = raised
    if error is None:
        assert set(fields) == set(signature.output_fields)
    else:
        assert error.text_length == len(text)
