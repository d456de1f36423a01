"""The lenient JSON path: LM output read as JSON the way DSPy 3.4.1 reads it, in linear time.

DSPy hands any text to ``json_repair.loads``, which is recursive and up to cubic on
crafted input (CPU for one pattern: 256 chars 0.05 s, 1 KiB 2.1 s, 4 KiB 98 s). Here
valid JSON of any size goes through ``json.loads``; ``json_repair`` sees only texts of at
most :data:`REPAIR_MAX_CHARS` characters nested at most :data:`REPAIR_MAX_DEPTH` deep.
Pure functions, safe from any thread; bad text gives ``""`` or ``None``, never an error.
"""

from __future__ import annotations

import json
import operator
import re
from array import array
from itertools import accumulate
from typing import Any

__all__ = [
    "CLOSE_MAX_CHARS",
    "REPAIR_MAX_CHARS",
    "REPAIR_MAX_DEPTH",
    "first_braced_span",
    "loads_lenient",
]

#: Longest text (stripped) given to ``json_repair``: the slowest text a fuzz found at
#: this size takes ~50 ms of CPU (x8 per doubling above it).
#: Broken JSON that is longer only gets the linear rescues of :func:`loads_lenient`.
REPAIR_MAX_CHARS = 256
#: Deepest bracket nesting given to ``json_repair`` (~5 frames per level). With the size
#: bound this keeps its stack under ~520 frames (the most a fuzz found), so that whether
#: a text repairs does not depend on the caller's stack depth (a RecursionError inside
#: it is caught all the same: the text is then not JSON).
REPAIR_MAX_DEPTH = 64

#: Longest text whose cut-off end is closed (a linear scan, one Python step per string
#: or bracket: 64 KiB of brackets is ~10 ms).
CLOSE_MAX_CHARS = 65_536
# A JSON string (its closing quote is group 1, absent if the text ends inside it) or a
# bracket. One quantifier over two disjoint alternatives: no backtracking.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*(")?|[\[\]{}]', re.DOTALL)
# Byte -> signed step: '{' -> +1, '}' -> -1 (0xff as a signed byte), anything else -> 0.
_BRACE_STEP = bytes(0xFF if byte == ord("}") else int(byte == ord("{")) for byte in range(256))


def loads_lenient(text: str) -> Any:
    """``text`` as JSON data, or ``""`` when it is not JSON (``json_repair.loads``' contract).

    Valid JSON (surrounding whitespace aside) is ``json.loads``'s result. Other text
    within the bounds above is ``json_repair.loads``' result, as in DSPy; longer text is
    rescued only by dropping a code fence, allowing raw control characters inside
    strings and closing a cut-off end. Linear in ``len(text)``; never raises.
    """
    stripped = text.strip()
    if not stripped:
        return ""
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        pass
    if len(stripped) <= REPAIR_MAX_CHARS and _nesting_depth(stripped) <= REPAIR_MAX_DEPTH:
        return _repair(stripped)
    return _rescue(stripped)


def _repair(text: str) -> Any:
    import json_repair  # imported on first use: it costs ~50 ms at import time

    try:
        return json_repair.loads(text)
    except Exception:  # a heuristic repairer may fail in undocumented ways: not JSON
        return ""


def _rescue(text: str) -> Any:
    """The linear repairs for text too long for ``json_repair``: the body of a code fence,
    raw control characters in strings, and (up to CLOSE_MAX_CHARS) a cut-off end closed.
    """
    candidates = [text]
    inner = _fenced(text)
    if inner is not None:
        candidates.append(inner)
    for candidate in candidates:
        try:
            return json.loads(candidate, strict=False)
        except (ValueError, RecursionError):
            pass
        closed = _closed(candidate) if len(candidate) <= CLOSE_MAX_CHARS else None
        if closed is not None:
            try:
                return json.loads(closed, strict=False)
            except (ValueError, RecursionError):
                pass
    return ""


def _closed(text: str) -> str | None:
    """``text`` from its first ``{``/``[``, completed as if it had been cut off: an open
    string closed, a trailing comma dropped, open brackets closed. ``None`` when nothing
    is open or the brackets do not pair up.
    """
    starts = [index for index in (text.find("{"), text.find("[")) if index >= 0]
    if not starts:
        return None
    text = text[min(starts) :]
    closers: list[str] = []
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            closers.append("]" if token == "[" else "}")
        elif token in "]}":
            if not closers or closers.pop() != token:
                return None
        elif match.group(1) is None:  # a string still open at the end of the text
            return text[: match.end()] + '"' + "".join(reversed(closers))
    if not closers:
        return None
    return text.rstrip().removesuffix(",") + "".join(reversed(closers))


def _fenced(text: str) -> str | None:
    """The body of the first ```` ```lang ... ``` ```` block (to the end if unclosed)."""
    start = text.find("```")
    if start < 0:
        return None
    body = start + 3
    line_end = text.find("\n", body)
    if line_end >= 0 and text[body:line_end].strip().isalnum():
        body = line_end + 1  # a language tag such as ```json
    end = text.find("```", body)
    return text[body:] if end < 0 else text[body:end]


def _nesting_depth(text: str) -> int:
    """The bracket nesting of ``text``: ``[``/``{`` and ``(`` counted separately (so ``)``
    never closes ``{``), brackets inside strings included.
    """
    brackets = parens = deepest = 0
    for char in text:
        if char in "[{":
            brackets += 1
        elif char in "]}":
            brackets = max(brackets - 1, 0)
        elif char == "(":
            parens += 1
        elif char == ")":
            parens = max(parens - 1, 0)
        else:
            continue
        deepest = max(deepest, brackets + parens)
    return deepest


def first_braced_span(text: str) -> str | None:
    """The leftmost balanced ``{...}`` in ``text`` (braces only, strings not excluded), or
    ``None``: what DSPy's recursive regex ``\\{(?:[^{}]|(?R))*\\}`` finds, in linear time.

    The leftmost ``{`` that has a partner is one of the ``{`` before the first ``}``: the
    ``j``-th of them (from 0) has one iff the depth later falls to ``j``, so it is the
    ``j = max(0, lowest later depth)``-th, and its partner is where the depth first
    returns to ``j``. Three C-level passes over parts of the text, none repeated.
    """
    first_open = text.find("{")
    first_close = text.find("}", first_open + 1) if first_open >= 0 else -1
    if first_close < 0:
        return None
    # One signed step per character from the first '{': +1 '{', -1 '}', 0 otherwise.
    steps = array("b", text[first_open:].encode("latin-1", "replace").translate(_BRACE_STEP))
    run = first_close - first_open  # the '{'s before the first '}' end here
    opens_before = text.count("{", first_open, first_close)
    target = max(0, min(accumulate(steps[run:], initial=opens_before)))
    # The depth first reaches target + 1 at the target-th '{' of the run.
    opening = operator.indexOf(accumulate(steps[:run]), target + 1)
    # accumulate(..., initial=d) yields d first, so index k is the step at opening + k.
    closing = opening + operator.indexOf(
        accumulate(steps[opening + 1 :], initial=target + 1), target
    )
    return text[first_open + opening : first_open + closing + 1]
