"""The lenient JSON reader for LM output: code fences, single quotes, trailing commas.

Pure functions over untrusted text; a text that is not JSON gives ``""`` (like
``json_repair``) or ``None``, never an exception.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["first_json_object", "loads_lenient"]


class _Unparsable(Exception):
    pass


_FENCE = re.compile(r"```[ \t]*(?:json|JSON|python)?[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_WORDS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class _LenientJSON:
    """A forgiving JSON reader for LM output (a subset of what ``json_repair`` accepts).

    Accepts single-quoted strings, trailing commas, missing closing brackets at the end,
    Python ``True``/``False``/``None``, and bare words inside containers (as strings).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def value(self, depth: int = 0) -> Any:
        if depth > 200:
            raise _Unparsable("too deep")
        self._skip()
        if self.pos >= len(self.text):
            raise _Unparsable("end of text")
        char = self.text[self.pos]
        if char == "{":
            return self._object(depth)
        if char == "[":
            return self._array(depth)
        if char in "\"'":
            return self._string(char)
        match = _NUMBER.match(self.text, self.pos)
        if match:
            end = match.end()
            if end >= len(self.text) or self.text[end] in " \t\r\n,]}:":
                self.pos = end
                number = match.group(0)
                return float(number) if any(c in number for c in ".eE") else int(number)
        return self._bare_word()

    def _bare_word(self) -> Any:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",]}:\n":
            self.pos += 1
        word = self.text[start : self.pos].strip()
        if not word:
            raise _Unparsable("empty value")
        return _WORDS.get(word, word)

    def _string(self, quote: str) -> str:
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                escaped = self.text[self.pos + 1]
                if escaped == "u" and self.pos + 6 <= len(self.text):
                    try:
                        out.append(chr(int(self.text[self.pos + 2 : self.pos + 6], 16)))
                        self.pos += 6
                        continue
                    except ValueError:
                        pass
                out.append(
                    {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(escaped, escaped)
                )
                self.pos += 2
                continue
            if char == quote:
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        raise _Unparsable("unterminated string")

    def _array(self, depth: int) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        while True:
            self._skip()
            if self.pos >= len(self.text) or self.text[self.pos] == "]":
                self.pos += 1
                return items
            if self.text[self.pos] == ",":
                self.pos += 1
                continue
            items.append(self.value(depth + 1))

    def _object(self, depth: int) -> dict[Any, Any]:
        self.pos += 1
        result: dict[Any, Any] = {}
        while True:
            self._skip()
            if self.pos >= len(self.text) or self.text[self.pos] == "}":
                self.pos += 1
                return result
            if self.text[self.pos] == ",":
                self.pos += 1
                continue
            key = self.value(depth + 1)
            self._skip()
            if self.pos >= len(self.text) or self.text[self.pos] != ":":
                raise _Unparsable("expected ':'")
            self.pos += 1
            try:
                result[key] = self.value(depth + 1)
            except TypeError as exc:  # unhashable key
                raise _Unparsable(str(exc)) from exc


def loads_lenient(text: str) -> Any:
    """JSON-decode ``text`` forgivingly; ``""`` when it is not JSON (like ``json_repair``)."""
    stripped = text.strip()
    if not stripped:
        return ""
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        pass
    fence = _FENCE.search(stripped)
    if fence:
        inner = fence.group(1).strip()
        try:
            return json.loads(inner)
        except (ValueError, RecursionError):
            stripped = inner
    if stripped[:1] in ("[", "{"):
        try:
            return _LenientJSON(stripped).value()
        except (_Unparsable, RecursionError):
            return ""
    return ""


def first_json_object(text: str) -> dict[Any, Any] | None:
    """The first ``{...}`` in ``text`` that reads as an object, or ``None``."""
    start = text.find("{")
    while start != -1:
        try:
            value = _LenientJSON(text[start:]).value()
        except (_Unparsable, RecursionError):
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None
