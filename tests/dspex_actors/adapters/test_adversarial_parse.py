"""Parsing untrusted completions takes time linear in their size, whatever they hold.

A completion comes from a server: a crafted one must not hold the GIL for seconds (the
old fence regex backtracked, the old object search was quadratic, and ``json_repair``
is quadratic and recursive on some inputs). Each case below is about 1 MB and must parse,
or fail with ``AdapterParseError``, within a CPU-time bound per call. CPU time of the
calling thread is measured, not wall time, so that a loaded machine does not make the
bound flaky; the slowest case takes about 0.1 s of CPU here. Before this bound, the
first three cases ran for minutes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from dspex_actors.adapters import ChatAdapter, JSONAdapter
from dspex_actors.adapters._lenient import (
    CLOSE_MAX_CHARS,
    REPAIR_MAX_CHARS,
    REPAIR_MAX_DEPTH,
    first_braced_span,
    loads_lenient,
)
from dspex_actors.adapters._values import LITERAL_EVAL_MAX_CHARS
from dspex_actors.primitives import AdapterParseError
from dspex_actors.signatures import make_signature

MB = 1_000_000
CPU_SECONDS_PER_PARSE = 1.0
WALL_SECONDS_LIMIT = 30.0

# The slowest text json_repair was found to take at REPAIR_MAX_CHARS (by a fuzz over
# periodic texts): about 50 ms of CPU.
SLOW_FOR_JSON_REPAIR = ("{" + "{“]" * REPAIR_MAX_CHARS)[:REPAIR_MAX_CHARS]

Case = tuple[str, type[ChatAdapter], str, Callable[[], str]]

CASES: list[Case] = [
    # issue reproducers, scaled to 1 MB
    (
        "fence_then_spaces",
        ChatAdapter,
        "q -> n: int",
        lambda: "[[ ## n ## ]]\n```" + " " * MB + "x",
    ),
    ("json_brace_x", JSONAdapter, "q -> a", lambda: "{x" * (MB // 2)),
    ("json_open_braces", JSONAdapter, "q -> a", lambda: "{" * MB),
    # the brace search
    ("json_nested_braces", JSONAdapter, "q -> a", lambda: "{" * (MB // 2) + "}" * (MB // 2)),
    ("json_braces_one_close", JSONAdapter, "q -> a", lambda: "{" * (MB - 1) + "}"),
    ("json_close_open", JSONAdapter, "q -> a", lambda: "}{" * (MB // 2)),
    ("json_unmatched_then_pairs", JSONAdapter, "q -> a", lambda: "{" + "{}" * (MB // 2)),
    (
        "json_prose_then_slow_object",
        JSONAdapter,
        "q -> a",
        lambda: "x" * MB + "{" + "“]" * 127 + "}",
    ),
    # json_repair at its bound
    ("json_slow_repair", JSONAdapter, "q -> a", lambda: SLOW_FOR_JSON_REPAIR),
    (
        "chat_slow_repair_and_padding",
        ChatAdapter,
        "q -> n: int, m: list[int]",
        lambda: (
            f"[[ ## n ## ]]\n{SLOW_FOR_JSON_REPAIR}\n[[ ## m ## ]]\n{SLOW_FOR_JSON_REPAIR}\n"
            + "[[ ## other ## ]]\n"
            + "y" * MB
        ),
    ),
    # nesting
    ("json_deep_arrays", JSONAdapter, "q -> a", lambda: "[" * (MB // 2) + "]" * (MB // 2)),
    ("chat_deep_arrays", ChatAdapter, "q -> n: list[int]", lambda: "[[ ## n ## ]]\n" + "[" * MB),
    ("chat_deep_parens", ChatAdapter, "q -> n: list[int]", lambda: "[[ ## n ## ]]\n" + "(" * MB),
    (
        "json_deep_valid_value",
        JSONAdapter,
        "q -> a",
        lambda: '{"a": ' + "[" * 900 + "]" * 900 + "}",
    ),
    # whitespace, lines and headers
    ("json_spaces", JSONAdapter, "q -> a", lambda: " " * MB),
    ("chat_spaces", ChatAdapter, "q -> n: int", lambda: "[[ ## n ## ]]\n" + " " * MB + "x"),
    ("chat_newlines", ChatAdapter, "q -> n: int", lambda: "\n" * MB),
    ("chat_many_headers", ChatAdapter, "q -> n: int", lambda: "[[ ## n ## ]]\n1\n" * (MB // 16)),
    ("chat_header_long_name", ChatAdapter, "q -> n: int", lambda: "[[ ## " + "a" * MB),
    ("chat_header_prefixes", ChatAdapter, "q -> n: int", lambda: "[[ ## " * (MB // 6)),
    # values that are long but not JSON
    (
        "chat_python_tuple_text",
        ChatAdapter,
        "q -> n: list[int]",
        lambda: "[[ ## n ## ]]\n" + "1," * (MB // 2),
    ),
    ("chat_digits", ChatAdapter, "q -> n: int", lambda: "[[ ## n ## ]]\n" + "1" * MB),
    ("json_unclosed_string", JSONAdapter, "q -> a", lambda: '{"a": "' + "b " * (MB // 2)),
    ("json_quotes", JSONAdapter, "q -> a", lambda: '{"a": ' + '"' * MB),
    ("json_comment_openers", JSONAdapter, "q -> a", lambda: '{"a": 1 ' + "/*" * (MB // 2)),
    ("json_backticks", JSONAdapter, "q -> a", lambda: "```" * (MB // 3)),
    # long texts that are (nearly) valid JSON
    ("json_long_valid", JSONAdapter, "q -> a", lambda: '{"a": "' + "b" * MB + '"}'),
    ("json_long_raw_newlines", JSONAdapter, "q -> a", lambda: '{"a": "' + "b\n" * (MB // 2) + '"}'),
    ("json_long_fenced", JSONAdapter, "q -> a", lambda: '```json\n{"a": "' + "b" * MB + '"}\n```'),
    ("json_many_objects", JSONAdapter, "q -> a", lambda: '{"a": 1}' * (MB // 8)),
    # closing a cut-off end, at its bound
    ("json_close_brackets", JSONAdapter, "q -> a", lambda: "[" * CLOSE_MAX_CHARS),
    (
        "json_close_strings",
        JSONAdapter,
        "q -> a",
        lambda: ('["",' * CLOSE_MAX_CHARS)[:CLOSE_MAX_CHARS],
    ),
]


def cpu_seconds_to_parse(adapter: ChatAdapter, signature: str, text: str) -> float:
    """CPU time of one parse, run in a daemon thread so that a regression to super-linear
    time fails after WALL_SECONDS_LIMIT instead of hanging the suite.
    """
    sig = make_signature(signature)
    outcome: dict[str, Any] = {}

    def parse() -> None:
        started = time.thread_time()
        try:
            adapter.parse(sig, text)
        except AdapterParseError:
            pass
        except BaseException as exc:  # reported by the test below
            outcome["error"] = exc
        outcome["cpu"] = time.thread_time() - started

    worker = threading.Thread(target=parse, name="adversarial-parse", daemon=True)
    worker.start()
    worker.join(timeout=WALL_SECONDS_LIMIT)
    assert not worker.is_alive(), f"parse still running after {WALL_SECONDS_LIMIT} s"
    assert "error" not in outcome, f"parse raised {outcome.get('error')!r}"
    cpu: float = outcome["cpu"]
    return cpu


@pytest.mark.parametrize(
    ("adapter_class", "signature", "make_text"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_crafted_completion_parses_or_fails_within_the_cpu_bound(
    adapter_class: type[ChatAdapter], signature: str, make_text: Callable[[], str]
) -> None:
    cpu = cpu_seconds_to_parse(adapter_class(), signature, make_text())
    assert cpu < CPU_SECONDS_PER_PARSE


def test_the_reproducers_of_the_issue_fail_cleanly() -> None:
    int_sig = make_signature("q -> n: int")
    with pytest.raises(AdapterParseError):
        ChatAdapter().parse(int_sig, "[[ ## n ## ]]\n```" + " " * 400 + "x")
    with pytest.raises(AdapterParseError):
        JSONAdapter().parse(make_signature("q -> a"), "{x" * 8000)
    with pytest.raises(AdapterParseError):
        JSONAdapter().parse(make_signature("q -> a"), "{" * 1_000_000)


def test_long_valid_or_fenced_json_still_parses() -> None:
    sig = make_signature("q -> a")
    long_value = "b" * MB
    assert JSONAdapter().parse(sig, '{"a": "' + long_value + '"}') == {"a": long_value}
    fenced = 'Here:\n```json\n{"a": "' + long_value + '"}\n```\nDone.'
    assert JSONAdapter().parse(sig, fenced) == {"a": long_value}
    with_newlines = '{"a": "' + "b\n" * 1000 + '"}'
    assert JSONAdapter().parse(sig, with_newlines) == {"a": "b\n" * 1000}
    assert JSONAdapter().parse(sig, '{"a": "x"}' * 1000) == {"a": "x"}


def test_a_long_json_text_cut_off_at_the_end_is_closed() -> None:
    words = "word " * 2000
    assert loads_lenient('{"a": "' + words) == {"a": words.strip()}
    assert loads_lenient('Sure:\n```json\n{"a": [' + "1, " * 2000) == {"a": [1] * 2000}
    assert loads_lenient('{"a": "' + words + "\\") == {"a": words}
    assert loads_lenient('{"a": [' + "1, " * 2000 + "}") == ""  # brackets do not pair
    assert loads_lenient('{"a": "' + "w" * CLOSE_MAX_CHARS) == ""  # over the bound
    sig = make_signature("q -> a, b")
    cut = '{"a": "x", "b": "' + words
    assert JSONAdapter().parse(sig, cut) == {"a": "x", "b": words.strip()}


def test_json_repair_sees_only_texts_within_the_size_bound() -> None:
    def broken(length: int) -> str:
        head = '{"a": "'
        tail = '",}'  # trailing comma: json.loads rejects it, json_repair mends it
        return head + "x" * (length - len(head) - len(tail)) + tail

    assert loads_lenient(broken(REPAIR_MAX_CHARS)) == {"a": "x" * (REPAIR_MAX_CHARS - 10)}
    assert loads_lenient(broken(REPAIR_MAX_CHARS + 1)) == ""
    # Surrounding whitespace does not count against the bound.
    assert loads_lenient(" " * MB + broken(REPAIR_MAX_CHARS) + " " * MB) != ""


def test_json_repair_sees_only_texts_within_the_depth_bound() -> None:
    def broken(depth: int) -> str:
        return '{"a": ' + "[" * depth + "1" + "]" * depth + ",}"

    assert loads_lenient(broken(REPAIR_MAX_DEPTH - 1)) != ""
    assert loads_lenient(broken(REPAIR_MAX_DEPTH)) == ""


def test_python_literals_over_the_literal_bound_stay_text() -> None:
    def tuple_text(length: int) -> str:
        items = "1, " * (length // 3)
        return (items + "1" * (length - len(items)))[:length]

    short, long = tuple_text(LITERAL_EVAL_MAX_CHARS), tuple_text(LITERAL_EVAL_MAX_CHARS + 3)
    sig = make_signature("q -> n: list[int]")
    assert len(ChatAdapter().parse(sig, f"[[ ## n ## ]]\n{short}")["n"]) > 1000
    with pytest.raises(AdapterParseError):
        ChatAdapter().parse(sig, f"[[ ## n ## ]]\n{long}")


def reference_first_braced_span(text: str) -> str | None:
    """The leftmost-starting balanced {...}, by a plain stack matcher (one Python step a char)."""
    opens: list[int] = []
    best: tuple[int, int] | None = None
    for index, char in enumerate(text):
        if char == "{":
            opens.append(index)
        elif char == "}" and opens:
            start = opens.pop()
            if best is None or start < best[0]:
                best = (start, index + 1)
    return None if best is None else text[best[0] : best[1]]


def test_the_brace_search_agrees_with_a_stack_matcher_on_random_texts() -> None:
    rng = random.Random(20240907)
    for _ in range(20_000):
        text = "".join(rng.choice("{}{}a é") for _ in range(rng.randint(0, 16)))
        assert first_braced_span(text) == reference_first_braced_span(text), text


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ('Sure: {"a": {"b": 1}} and {"c": 2}', '{"a": {"b": 1}}'),
        ("{a{b}", "{b}"),
        ("}{ { }", "{ }"),
        ("{ {", None),
        ("no braces", None),
        ("{é}", "{é}"),
    ],
)
def test_the_brace_search_finds_what_dspys_recursive_regex_finds(
    text: str, span: str | None
) -> None:
    assert first_braced_span(text) == span
