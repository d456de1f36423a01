"""Hostile signature strings: every malformed string raises SignatureError, nothing else.

The reproducers come from issue 9 (item 9) of the bad-input campaign; the property test
builds random strings from signature tokens (and from arbitrary text) and checks that
``Signature(text)`` either builds a signature or raises :class:`SignatureError`.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dspex_actors as dx
from dspex_actors.signatures._parse import parse_signature
from dspex_actors.signatures._signature import SignatureError

REPRODUCERS = [
    "q: tuple[()] -> a",  # was IndexError
    "q: Literal[()] -> a",  # was AssertionError
    "q: Union[()] -> a",  # was TypeError
    "q: list[int][int] -> a",  # was TypeError
    "q: tuple[int, ...][int] -> a",  # was TypeError
    "q: " + " | ".join(["int", "str"] * 1500) + " -> a",  # 3,000-way union: was RecursionError
    "q: " + " | ".join(f"Literal[{i}]" for i in range(3000)) + " -> a",  # was RecursionError
    "q: " + "-" * 1500 + "1 -> a",  # parses, but too deep to print: was RecursionError
]


@pytest.mark.parametrize("text", REPRODUCERS, ids=lambda text: text[:30])
def test_a_malformed_type_expression_raises_signature_error(text: str) -> None:
    with pytest.raises(SignatureError):
        dx.Signature(text)


def test_a_long_union_that_the_parser_accepts_builds_a_signature() -> None:
    text = "q: " + " | ".join(f"Literal[{i}]" for i in range(1500)) + " -> a"

    signature = dx.Signature(text)

    assert len(signature.input_fields["q"].annotation.__args__) == 1500


def test_the_duplicate_name_check_is_linear_in_the_number_of_fields() -> None:
    # Quadratic before: 8,000 fields took 0.87 s and 16,000 took 2.9 s in parse_signature.
    def parse_time(count: int) -> float:
        text = ", ".join(f"f{i}" for i in range(count)) + " -> f0"
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            with pytest.raises(SignatureError, match="duplicate field name"):
                parse_signature(text, {})
            best = min(best, time.perf_counter() - started)
        return best

    small, large = parse_time(4000), parse_time(32000)

    # Eight times the fields: linear is ~8x, quadratic ~64x. 24x leaves room for load.
    assert large < small * 24, (small, large)


def test_a_duplicate_name_is_named_in_the_error() -> None:
    with pytest.raises(SignatureError, match="duplicate field name\\(s\\) b"):
        dx.Signature("a, b -> b")


TOKENS = st.sampled_from(
    [
        "q", "a", "b", "model_config", "copy", "_x", "1", "-1", "'s'", "None", "...", "()",
        "int", "str", "list", "dict", "tuple", "set", "Literal", "Union", "Optional", "Any",
        "typing.List", "typing", "x.y", ":", ",", "|", "[", "]", "(", ")", "->", " ", "=", "*",
    ]
)  # fmt: skip
token_strings = st.lists(TOKENS, max_size=25).map("".join)


@pytest.mark.filterwarnings("ignore:Field name .* shadows an attribute:UserWarning")
@settings(max_examples=400, deadline=1000)
@given(st.one_of(token_strings, st.text(max_size=60)))
def test_any_string_builds_a_signature_or_raises_signature_error(text: str) -> None:
    try:
        signature = dx.Signature(text)
    except SignatureError:
        return
    assert signature.output_fields  # a built signature always has outputs


@pytest.mark.filterwarnings("ignore:Field name .* shadows an attribute:UserWarning")
@settings(max_examples=200, deadline=1000)
@given(token_strings, token_strings)
def test_any_field_lists_around_an_arrow_build_or_raise_signature_error(
    inputs: str, outputs: str
) -> None:
    try:
        signature = dx.Signature(f"{inputs} -> {outputs}")
    except SignatureError:
        return
    assert set(signature.fields) == set(signature.input_fields) | set(signature.output_fields)
