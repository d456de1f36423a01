"""A rule-based, OpenAI-compatible chat-completions server on 127.0.0.1.

What it is for
--------------
The demo, the test suite and the benchmarks need an LM endpoint that speaks real
HTTP, answers in microseconds, never reaches the internet and always gives the
same answer to the same prompt. :class:`RuleBasedLMServer` is that endpoint.
**There is no model behind it**: every completion is produced by the fixed rules
below, the model id defaults to ``"rule-based/echo-1"``, every response carries
the header ``x-dspex-rule-based: true`` and ``"system_fingerprint": "rule-based"``.

Endpoints: ``POST /v1/chat/completions`` (also ``/chat/completions``),
``GET /v1/models`` (also ``/models``) and ``GET /health``. A body that is not
JSON, or not a JSON object with a non-empty ``messages`` list, gets 400; an
unknown path gets 404.

The rules (deterministic; the prompt text is parsed here, independently of the
package's own adapters)
----------------------------------------------------------------------------
*Prompt formats.* DSPy's ChatAdapter format is recognised: the system message
lists ``Your output fields are:`` with lines like ``1. `answer` (str): desc``;
user turns hold ``[[ ## field ## ]]`` blocks; the final user turn ends with
``Respond with the corresponding output fields, ...``. Earlier user/assistant
pairs are few-shot demos (their assistant turns hold ``[[ ## field ## ]]``
blocks and ``[[ ## completed ## ]]``). If the system message has no field list,
the output fields are read from the final ``Respond with ...`` sentence. DSPy's
JSONAdapter format (``Outputs will be a JSON object ...`` / ``Respond with a
JSON object ...``, or a ``response_format`` of type ``json_object`` or
``json_schema``) is answered with a JSON object instead. A prompt in neither
format gets a plain-text answer to the last user message.

*Solving the question.* The question is the ``question`` input field (else the
first of ``query``, ``input``, ``text``, ``prompt``, ``problem``, ``claim``,
else all input values joined). In order:

1. knowledge table: case-insensitive match of a key as a phrase inside the
   question (``"capital of France"`` -> ``Paris``), else all the key's content
   words present in it (``"France's capital?"``); the longest key wins. The
   table is :data:`DEFAULT_KNOWLEDGE` (~30 capitals and facts) updated with the
   ``knowledge`` mapping given to the server;
2. arithmetic: the longest run of numbers and ``+ - * / // % ( )`` (also the
   words *plus*, *minus*, *times*, *multiplied by*, *divided by* and ``x``
   between numbers), evaluated safely (``"What is 17 + 25?"`` -> ``42``);
3. the knowledge table again, over all input values (for example a context);
4. fallback: the last word of the question (``"unknown"`` if there is none).

*Answering each output field.*

* ``reasoning`` / ``rationale`` / ``thought`` / ``thoughts`` /
  ``explanation``: one short sentence naming the rule that fired.
* any other ``str`` field is answer-like: see "demo-following" below.
* ``int``: the number found (rounded) if any, else the number of words in the
  question; ``float``: the number found, else 0.9 / 0.5 for fields named like
  confidence/probability/score (matched / not matched), else the word count.
* ``bool``: ``True`` unless the question contains a negation
  (*not, no, never, false, isn't, ...*).
* ``list[str]``: up to three distinct content words of the question, as a JSON
  list (``["a", "b"]`` if there are none); ``list[int]``/``list[float]``: the
  numbers in the question (``[1, 2]`` if none); ``dict[...]``: ``{}``.
* ``Literal[...]`` and enums (``must be one of: ...`` notes): the option that
  occurs in the question, else the option equal to the answer, else the first.
* a type with a JSON-schema note (a pydantic model): a minimal instance of the
  schema (strings get the answer, numbers 0, booleans true, arrays []).

*Demo-following* -- what "a model that follows the format shown in the prompt"
means here, and how the test suite shows that few-shot demos matter:

* with **no demos** in the prompt an answer-like field is verbose:
  ``The answer is Paris.``;
* with demos present (and ``follow_demos=True``, the default) the server
  imitates the demos' answers for that field: if every demo answer has at most
  three words it answers with the bare answer, in the demos' case (all demo
  answers lower-case -> lower-case, all upper-case -> upper-case, otherwise
  as-is): ``paris`` / ``PARIS`` / ``Paris``. If any demo answer is longer, or
  ``follow_demos=False``, the answer stays verbose.

In ChatAdapter mode the completion always ends with ``[[ ## completed ## ]]``.
``n`` > 1 returns ``n`` identical choices; ``max_tokens`` (or
``max_completion_tokens``) cuts the completion after that many whitespace
tokens with ``finish_reason="length"``. ``usage`` counts whitespace tokens.

Faults
------
:meth:`RuleBasedLMServer.inject` queues faults (FIFO, one per chat-completions
request whose body parsed); :meth:`RuleBasedLMServer.set_fault_rates` draws
random faults from a seeded RNG when the queue is empty. Kinds: ``"500"``,
``"503"``, ``"429"`` (with ``Retry-After``), ``"400"``, ``"401"`` (OpenAI-style
JSON error bodies), ``"drop"`` (socket closed without a response), ``"hang"``
(no response for ``hang_seconds``, then the normal answer; woken and dropped by
:meth:`~RuleBasedLMServer.stop`), ``"garbage"`` (200 with a non-JSON body),
``"bad_format"`` (200, valid JSON, content ignoring the requested format) and
``"slow"`` (extra ``delay``, then the normal answer).

Threading
---------
The server runs ``serve_forever`` on one daemon thread and each connection on
its own daemon handler thread (HTTP/1.1 keep-alive, so a pooled
``requests.Session`` keeps one connection per pooled socket). Every wait
(latency, ``slow``, ``hang``) is a wait on the server's stop event, so
:meth:`~RuleBasedLMServer.stop` returns promptly: it stops the accept loop,
shuts every open connection down and joins all the threads. Counters, the
request log and the fault queue are protected by one lock; all public methods
may be called from any thread.

Run it standalone with ``python -m dspex_actors.testing._rule_server --port 8000
--latency 0.05``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import json
import logging
import math
import operator
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self

__all__ = [
    "DEFAULT_KNOWLEDGE",
    "DEFAULT_MODEL",
    "FAULT_KINDS",
    "Fault",
    "RuleBasedLMServer",
    "main",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "rule-based/echo-1"
"""The model id the server reports (it says so: there is no model)."""

FAULT_KINDS: Final = frozenset(
    {"500", "503", "429", "400", "401", "drop", "hang", "garbage", "bad_format", "slow"}
)
"""Every fault kind :class:`Fault` accepts."""

_MAX_BODY_BYTES: Final = 32 * 1024 * 1024
_COMPLETED: Final = "[[ ## completed ## ]]"


@dataclass(frozen=True)
class Fault:
    """One injected fault, applied to one chat-completions request.

    ``kind`` is one of :data:`FAULT_KINDS`. ``retry_after`` (seconds) is sent as
    the ``Retry-After`` header of a ``"429"``; ``hang_seconds`` is how long a
    ``"hang"`` withholds its response; ``delay`` is the extra wait of a
    ``"slow"``. Raises :class:`ValueError` on an unknown kind or a negative or
    non-finite duration.
    """

    kind: str
    retry_after: float = 1.0
    hang_seconds: float = 30.0
    delay: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}"
            )
        for name in ("retry_after", "hang_seconds", "delay"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"Fault.{name} must be a finite number >= 0, got {value!r}")


DEFAULT_KNOWLEDGE: Final[Mapping[str, str]] = MappingProxyType(
    {
        "capital of France": "Paris",
        "capital of Germany": "Berlin",
        "capital of Italy": "Rome",
        "capital of Spain": "Madrid",
        "capital of Portugal": "Lisbon",
        "capital of the United Kingdom": "London",
        "capital of England": "London",
        "capital of Ireland": "Dublin",
        "capital of the Netherlands": "Amsterdam",
        "capital of Sweden": "Stockholm",
        "capital of Norway": "Oslo",
        "capital of Poland": "Warsaw",
        "capital of Greece": "Athens",
        "capital of Russia": "Moscow",
        "capital of Japan": "Tokyo",
        "capital of China": "Beijing",
        "capital of India": "New Delhi",
        "capital of Egypt": "Cairo",
        "capital of Kenya": "Nairobi",
        "capital of Canada": "Ottawa",
        "capital of the United States": "Washington, D.C.",
        "capital of Mexico": "Mexico City",
        "capital of Brazil": "Brasilia",
        "capital of Argentina": "Buenos Aires",
        "capital of Australia": "Canberra",
        "largest planet": "Jupiter",
        "red planet": "Mars",
        "chemical symbol for gold": "Au",
        "chemical formula of water": "H2O",
        "wrote Hamlet": "William Shakespeare",
        "author of Hamlet": "William Shakespeare",
        "first president of the United States": "George Washington",
        "largest ocean": "Pacific Ocean",
        "tallest mountain": "Mount Everest",
        "boiling point of water in Celsius": "100",
        "speed of light in km/s": "299792",
    }
)
"""The built-in knowledge table: question phrase -> answer (matched case-insensitively)."""


# --------------------------------------------------------------------------------------
# Prompt parsing (pure functions; thread-safe)
# --------------------------------------------------------------------------------------

_HEADER_RE: Final = re.compile(r"\[\[ ## (\w+) ## \]\]")
_FIELD_LINE_RE: Final = re.compile(r"^\s*\d+\.\s+`(\w+)`\s*\((.*)$")
_NOTE_RE: Final = re.compile(r"\{(\w+)\} {2,}# note: the value you produce (.+)")
_CHAT_REQ_RE: Final = re.compile(
    r"`\[\[ ## (\w+) ## \]\]`(?: \(must be formatted as a valid Python (.+?)\))?(?=,|\.|$)"
)
_JSON_REQ_RE: Final = re.compile(
    r"`(\w+)`(?: \(must be formatted as a valid Python (.+?)\))?(?=,|\.|$)"
)
_WORD_RE: Final = re.compile(r"[A-Za-z0-9][\w'-]*")
_TOKEN_RE: Final = re.compile(r"[a-z0-9]+")
_NUMBER_RE: Final = re.compile(r"-?\d+(?:\.\d+)?")
_EXPR_RUN_RE: Final = re.compile(r"[\d.\s()+\-*/%]+")

_REASONING_NAMES: Final = frozenset(
    {"reasoning", "rationale", "thought", "thoughts", "explanation"}
)
_QUESTION_NAMES: Final = ("question", "query", "input", "text", "prompt", "problem", "claim")
_CONFIDENCE_HINTS: Final = ("confidence", "probability", "prob", "score", "certainty")
_STOPWORDS: Final = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from",
        "how", "i", "in", "is", "it", "of", "on", "or", "s", "the", "to", "was", "were",
        "what", "when", "where", "which", "who", "whom", "whose", "why", "will", "with",
        "you", "your",
    }
)  # fmt: skip
_NEGATIONS: Final = frozenset(
    {"not", "no", "never", "false", "isn't", "aren't", "doesn't", "don't"}
)
_NOT_SUPPLIED: Final = "Not supplied for this"
_RESPOND_MARKERS: Final = (
    "Respond with the corresponding output fields",
    "Respond with a JSON object",
)


@dataclass(frozen=True)
class _OutField:
    """One output field as read from the prompt: name, type text, and allowed options."""

    name: str
    type_text: str = "str"
    options: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class _SystemSpec:
    """What the system message says: input names, output fields, JSON mode."""

    input_names: tuple[str, ...]
    outputs: tuple[_OutField, ...]
    json_mode: bool


def _content_text(content: object) -> str:
    """The text of an OpenAI message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return ""


def _split_blocks(text: str) -> dict[str, str]:
    """``[[ ## name ## ]]`` blocks of ``text``; the first occurrence of a name wins."""
    pieces = _HEADER_RE.split(text)
    blocks: dict[str, str] = {}
    for i in range(1, len(pieces) - 1, 2):
        name = pieces[i]
        if name not in blocks:
            blocks[name] = pieces[i + 1].strip()
    return blocks


def _strip_respond(text: str) -> tuple[str, str]:
    """Split a final user turn into (input part, trailing ``Respond with ...`` paragraph)."""
    best = -1
    for marker in _RESPOND_MARKERS:
        idx = text.rfind(marker)
        if idx > best and (idx == 0 or text[idx - 1] == "\n"):
            best = idx
    if best < 0:
        return text, ""
    return text[:best], text[best:]


def _section(text: str, start: str, ends: Sequence[str]) -> str:
    """The text after ``start`` up to the first of ``ends`` ("" if ``start`` is absent)."""
    idx = text.find(start)
    if idx < 0:
        return ""
    body = text[idx + len(start) :]
    cut = len(body)
    for end in ends:
        j = body.find(end)
        if 0 <= j < cut:
            cut = j
    return body[:cut]


def _type_from_rest(rest: str) -> str:
    """The type text inside the parentheses that open just before ``rest``."""
    depth = 0
    for i, ch in enumerate(rest):
        if ch in "([":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == ")":
            if depth == 0:
                return rest[:i].strip()
            depth -= 1
    return rest.strip()


def _field_list(section: str) -> list[tuple[str, str]]:
    """``(name, type)`` pairs from a numbered ``1. `name` (type): desc`` list."""
    fields = []
    for line in section.splitlines():
        match = _FIELD_LINE_RE.match(line)
        if match:
            fields.append((match.group(1), _type_from_rest(match.group(2))))
    return fields


def _split_top(text: str) -> list[str]:
    """Split ``text`` on commas that are not nested in brackets or quotes."""
    parts: list[str] = []
    depth = 0
    quote = ""
    cur: list[str] = []
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    tail = "".join(cur).strip()
    if tail:
        parts.append(tail)
    return parts


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _base_type(type_text: str) -> str:
    """The type without ``Optional``/``Union[..., None]``/``| None`` wrappers."""
    t = type_text.strip()
    for prefix in ("Optional[", "Union[", "UnionType["):
        if t.startswith(prefix) and t.endswith("]"):
            args = [a for a in _split_top(t[len(prefix) : -1]) if a not in ("NoneType", "None")]
            return _base_type(args[0]) if args else "str"
    if "|" in t and "[" not in t:
        args = [a.strip() for a in t.split("|") if a.strip() not in ("NoneType", "None")]
        return args[0] if args else "str"
    return t


def _notes(system: str) -> dict[str, str]:
    """Per-field ``# note: the value you produce ...`` texts of the field-structure block."""
    notes: dict[str, str] = {}
    marker = "Outputs will be a JSON object with the following fields."
    idx = system.find(marker)
    if idx >= 0:
        start = system.find("{", idx)
        if start >= 0:
            try:
                obj, _ = json.JSONDecoder().raw_decode(system, start)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                for value in obj.values():
                    if isinstance(value, str):
                        for m in _NOTE_RE.finditer(value):
                            notes.setdefault(m.group(1), m.group(2).strip())
    for m in _NOTE_RE.finditer(system):
        notes.setdefault(m.group(1), m.group(2).strip())
    return notes


def _options_from(type_text: str, note: str) -> tuple[str, ...]:
    base = _base_type(type_text)
    if base.startswith("Literal[") and base.endswith("]"):
        return tuple(_unquote(a) for a in _split_top(base[len("Literal[") : -1]))
    for lead in ("must exactly match (no extra characters) one of: ", "must be one of: "):
        if note.startswith(lead):
            return tuple(o.strip() for o in note[len(lead) :].split(";") if o.strip())
    return ()


def _schema_from(note: str) -> Mapping[str, Any] | None:
    lead = "must adhere to the JSON schema: "
    if not note.startswith(lead):
        return None
    try:
        schema = json.loads(note[len(lead) :])
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


@functools.lru_cache(maxsize=256)
def _parse_system(system: str) -> _SystemSpec:
    """Parse a (DSPy-format) system message; cached because programs repeat it."""
    inputs = _field_list(_section(system, "Your input fields are:", ("Your output fields are:",)))
    outputs = _field_list(
        _section(
            system,
            "Your output fields are:",
            ("All interactions will be structured", "In adhering to this structure"),
        )
    )
    notes = _notes(system) if outputs else {}
    fields = tuple(
        _OutField(
            name=name,
            type_text=type_text,
            options=_options_from(type_text, notes.get(name, "")),
            schema=_schema_from(notes.get(name, "")),
        )
        for name, type_text in outputs
    )
    json_mode = "Outputs will be a JSON object" in system
    return _SystemSpec(tuple(name for name, _ in inputs), fields, json_mode)


def _fields_from_requirement(sentence: str) -> tuple[tuple[_OutField, ...], bool]:
    """Output fields named by a final ``Respond with ...`` sentence; whether it asks for JSON."""
    if sentence.startswith("Respond with a JSON object"):
        tail = sentence.split(":", 1)[1] if ":" in sentence else ""
        found = [(m.group(1), m.group(2) or "str") for m in _JSON_REQ_RE.finditer(tail)]
        json_mode = True
    else:
        found = [(m.group(1), m.group(2) or "str") for m in _CHAT_REQ_RE.finditer(sentence)]
        found = [(n, t) for n, t in found if n != "completed"]
        json_mode = False
    fields = tuple(_OutField(name=n, type_text=t, options=_options_from(t, "")) for n, t in found)
    return fields, json_mode


def _fields_from_schema(response_format: object) -> tuple[_OutField, ...]:
    """Output fields from an OpenAI ``json_schema`` response format."""
    if not isinstance(response_format, dict):
        return ()
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return ()
    names = {
        "string": "str",
        "integer": "int",
        "number": "float",
        "boolean": "bool",
        "array": "list",
    }
    fields = []
    for name, prop in props.items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        type_text = names.get(kind, "str") if isinstance(kind, str) else "str"
        if type_text == "list":
            items = prop.get("items")
            item_kind = items.get("type") if isinstance(items, dict) else None
            item_type = names.get(item_kind, "str") if isinstance(item_kind, str) else "str"
            type_text = f"list[{item_type}]"
        options = tuple(str(o) for o in prop.get("enum", ())) if isinstance(prop, dict) else ()
        fields.append(_OutField(name=str(name), type_text=type_text, options=options))
    return tuple(fields)


# --------------------------------------------------------------------------------------
# Solving (pure functions; thread-safe)
# --------------------------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower())


@dataclass(frozen=True)
class _Entry:
    key: str
    phrase: str
    content: frozenset[str]
    answer: str


@dataclass(frozen=True)
class _Solution:
    """The solved question: the bare answer, how it was found, and a number if any."""

    answer: str
    how: str
    detail: str
    number: float | None


_BINOPS: Final[dict[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def _eval_node(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ValueError("not arithmetic")
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval_node(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval_node(node.left), _eval_node(node.right)
        result = float(_BINOPS[type(node.op)](left, right))
        if not math.isfinite(result) or abs(result) > 1e18:
            raise ValueError("result out of range")
        return result
    raise ValueError("not arithmetic")


def _format_number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{round(value, 6):f}".rstrip("0").rstrip(".")
    return text or "0"


def _arithmetic(text: str) -> tuple[str, float] | None:
    """The longest evaluable arithmetic expression in ``text``: (expression, value)."""
    t = re.sub(r"\bmultiplied by\b", "*", text, flags=re.IGNORECASE)
    t = re.sub(r"\bdivided by\b", "/", t, flags=re.IGNORECASE)
    t = re.sub(r"\btimes\b", "*", t, flags=re.IGNORECASE)
    t = re.sub(r"\bplus\b", "+", t, flags=re.IGNORECASE)
    t = re.sub(r"\bminus\b", "-", t, flags=re.IGNORECASE)
    t = re.sub(r"(?<=\d)\s*[xX\u00d7]\s*(?=\d)", " * ", t).replace("\u00f7", "/")
    best: tuple[str, float] | None = None
    for run in _EXPR_RUN_RE.findall(t):
        expr = " ".join(run.split()).strip(" .")
        if not re.search(r"\d\s*[-+*/%]+\s*[-(]*\s*\d", expr):
            continue
        try:
            value = _eval_node(ast.parse(expr, mode="eval"))
        except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
            continue
        if best is None or len(expr) > len(best[0]):
            best = (expr, value)
    return best


class _Rules:
    """The rule engine: turns a chat-completions body into completion text.

    Stateless after construction (the knowledge table is read-only), so one
    instance serves all handler threads. Never raises on odd prompts: anything
    it cannot parse is answered by the fallback rules.
    """

    def __init__(self, knowledge: Mapping[str, str], follow_demos: bool) -> None:
        self.follow_demos = follow_demos
        entries = []
        for key, answer in knowledge.items():
            toks = _tokens(key)
            if not toks:
                continue
            content = frozenset(t for t in toks if t not in _STOPWORDS) or frozenset(toks)
            entries.append(_Entry(key, " ".join(toks), content, str(answer)))
        self._entries = tuple(entries)

    # -- knowledge and solving ---------------------------------------------------------

    def lookup(self, text: str) -> _Entry | None:
        """The best knowledge entry for ``text`` (phrase match beats keyword match)."""
        toks = _tokens(text)
        if not toks:
            return None
        joined = f" {' '.join(toks)} "
        token_set = frozenset(toks)
        best: tuple[tuple[int, int], _Entry] | None = None
        for entry in self._entries:
            if f" {entry.phrase} " in joined:
                score = (2, len(entry.phrase))
            elif entry.content <= token_set:
                score = (1, len(entry.phrase))
            else:
                continue
            if best is None or score > best[0]:
                best = (score, entry)
        return best[1] if best else None

    def solve(self, question: str, all_text: str) -> _Solution:
        """Apply the rules in order: knowledge, arithmetic, knowledge over all inputs, fallback."""
        entry = self.lookup(question)
        if entry is None:
            arith = _arithmetic(question)
            if arith is not None:
                expr, value = arith
                return _Solution(_format_number(value), "arithmetic", expr, value)
            if all_text and all_text != question:
                entry = self.lookup(all_text)
        if entry is not None:
            number = None
            if _NUMBER_RE.fullmatch(entry.answer.strip()):
                number = float(entry.answer)
            return _Solution(entry.answer, "knowledge", entry.key, number)
        words = _WORD_RE.findall(question) or _WORD_RE.findall(all_text)
        last = words[-1].strip("'-") if words else "unknown"
        return _Solution(last or "unknown", "fallback", last or "unknown", None)

    @staticmethod
    def reasoning(sol: _Solution) -> str:
        if sol.how == "knowledge":
            return f"Rule-based: the knowledge table entry '{sol.detail}' gives {sol.answer}."
        if sol.how == "arithmetic":
            return f"Rule-based: evaluating {sol.detail} gives {sol.answer}."
        return (
            f"Rule-based: no rule matched, so the last word of the input, '{sol.answer}', is used."
        )

    # -- prompt -> completion ----------------------------------------------------------

    def complete(self, body: Mapping[str, Any], *, bad_format: bool = False) -> str:
        """The completion text for a request body (``bad_format``: ignore the format)."""
        messages = [m for m in body.get("messages", ()) if isinstance(m, dict)]
        system = "\n\n".join(
            _content_text(m.get("content")) for m in messages if m.get("role") == "system"
        )
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        final = _content_text(messages[last_user].get("content")) if last_user >= 0 else ""
        input_part, requirement = _strip_respond(final)

        spec = _parse_system(system) if system else _SystemSpec((), (), False)
        outputs = spec.outputs
        json_mode = spec.json_mode
        if requirement:
            req_fields, req_json = _fields_from_requirement(requirement.strip())
            json_mode = json_mode or req_json
            if not outputs:
                outputs = req_fields
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") in (
            "json_object",
            "json_schema",
        ):
            json_mode = True
            if not outputs:
                outputs = _fields_from_schema(response_format)

        inputs = _split_blocks(input_part)
        question = self._question(inputs, spec.input_names, input_part)
        all_text = "\n".join(v for v in inputs.values()) if inputs else question
        sol = self.solve(question, all_text)

        if bad_format:
            return f"Sure! I think it is {sol.answer}, but I will not use the requested format."
        if not outputs:
            if json_mode:
                return json.dumps(
                    {"answer": self._verbose(sol.answer)}, indent=2, ensure_ascii=False
                )
            return self._verbose(sol.answer)

        demo_values = self._demo_values(messages[: max(last_user, 0)], json_mode)
        values: dict[str, Any] = {}
        for field in outputs:
            values[field.name] = self._value(field, sol, question, demo_values.get(field.name))
        if json_mode:
            return json.dumps(values, indent=2, ensure_ascii=False)
        parts = [f"[[ ## {name} ## ]]\n{self._render(value)}" for name, value in values.items()]
        parts.append(_COMPLETED)
        return "\n\n".join(parts)

    @staticmethod
    def _question(inputs: Mapping[str, str], input_names: Sequence[str], raw: str) -> str:
        for name in _QUESTION_NAMES:
            if inputs.get(name):
                return inputs[name]
        if inputs:
            ordered = [inputs[n] for n in input_names if n in inputs] or list(inputs.values())
            return "\n".join(ordered)
        return raw.strip()

    def _demo_values(
        self, history: Sequence[Mapping[str, Any]], json_mode: bool
    ) -> dict[str, list[str]]:
        """Output-field values shown in earlier assistant turns (the demos)."""
        found: dict[str, list[str]] = {}
        for message in history:
            if message.get("role") != "assistant":
                continue
            text = _content_text(message.get("content"))
            blocks: dict[str, str] = {}
            if json_mode or text.lstrip().startswith("{"):
                try:
                    obj = json.loads(text)
                except ValueError:
                    obj = None
                if isinstance(obj, dict):
                    blocks = {
                        str(k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()
                    }
            if not blocks:
                blocks = _split_blocks(text)
            for name, value in blocks.items():
                if name == "completed" or not value or value.startswith(_NOT_SUPPLIED):
                    continue
                found.setdefault(name, []).append(value)
        return found

    @staticmethod
    def _verbose(answer: str) -> str:
        return f"The answer is {answer.rstrip('.')}."

    def _styled(self, answer: str, demos: Sequence[str] | None) -> str:
        """Verbose without demos; the demos' bare style and case when they are short."""
        if not self.follow_demos or not demos:
            return self._verbose(answer)
        if any(len(d.split()) > 3 for d in demos):
            return self._verbose(answer)
        lettered = [d for d in demos if any(c.isalpha() for c in d)]
        if lettered and all(d == d.lower() for d in lettered):
            return answer.lower()
        if lettered and all(d == d.upper() for d in lettered):
            return answer.upper()
        return answer

    def _value(
        self, field: _OutField, sol: _Solution, question: str, demos: Sequence[str] | None
    ) -> Any:
        name = field.name.lower()
        base = _base_type(field.type_text)
        words = _WORD_RE.findall(question)
        if field.options:
            return self._pick_option(field.options, question, sol.answer)
        if base == "bool":
            return not any(w.lower() in _NEGATIONS for w in words)
        if base == "int":
            return round(sol.number) if sol.number is not None else len(words)
        if base == "float":
            if sol.number is not None:
                return sol.number
            if any(h in name for h in _CONFIDENCE_HINTS):
                return 0.9 if sol.how != "fallback" else 0.5
            return float(len(words))
        if base.startswith(("list[", "List[", "tuple[", "set[")) or base in ("list", "tuple"):
            inner = base[base.find("[") + 1 : -1].strip() if "[" in base else "str"
            if inner in ("int", "float"):
                nums = [float(n) for n in _NUMBER_RE.findall(question)] or [1.0, 2.0]
                return [round(n) if inner == "int" else n for n in nums]
            seen: list[str] = []
            for w in words:
                if len(w) >= 3 and w.lower() not in _STOPWORDS and w not in seen:
                    seen.append(w)
                if len(seen) == 3:
                    break
            return seen or ["a", "b"]
        if base.startswith(("dict[", "Dict[")) or base == "dict":
            return {}
        if field.schema is not None and base != "str":
            return self._from_schema(field.schema, field.schema, sol, 0)
        if name in _REASONING_NAMES:
            return self.reasoning(sol)
        return self._styled(sol.answer, demos)

    @staticmethod
    def _pick_option(options: Sequence[str], question: str, answer: str) -> str:
        low = f" {' '.join(_tokens(question))} "
        for option in options:
            toks = _tokens(option)
            if toks and f" {' '.join(toks)} " in low:
                return option
        for option in options:
            if option.lower() == answer.lower():
                return option
        return options[0]

    def _from_schema(
        self, schema: Mapping[str, Any], root: Mapping[str, Any], sol: _Solution, depth: int
    ) -> Any:
        """A minimal instance of a JSON schema (strings get the answer)."""
        if depth > 8:
            return None
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            return self._from_schema(target, root, sol, depth + 1)
        for key in ("anyOf", "oneOf", "allOf"):
            alts = schema.get(key)
            if isinstance(alts, list) and alts:
                usable = [a for a in alts if isinstance(a, dict) and a.get("type") != "null"]
                return self._from_schema(usable[0] if usable else alts[0], root, sol, depth + 1)
        if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
            return schema["enum"][0]
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            return {
                str(k): self._from_schema(v, root, sol, depth + 1)
                for k, v in props.items()
                if isinstance(v, dict)
            }
        if kind == "array":
            return []
        if kind == "integer":
            return round(sol.number) if sol.number is not None else 0
        if kind == "number":
            return sol.number if sol.number is not None else 0.0
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return sol.answer

    @staticmethod
    def _render(value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "True" if value else "False"
        if isinstance(value, float):
            return _format_number(value) if not value.is_integer() else f"{value:.1f}"
        if isinstance(value, int):
            return str(value)
        return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    """The socket server: threaded, daemonic, deep accept queue, quiet."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True
    owner: RuleBasedLMServer

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's socket.getfqdn(), which may do a slow DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Transport errors (client went away, shutdown during stop) are normal here.
        logger.debug("rule server connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """One connection (HTTP/1.1 keep-alive); runs on its own daemon thread."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "dspex-rule-server/1"
    sys_version = ""
    server: _HTTPServer

    # -- lifecycle ---------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.owner._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Per-request logging is off (the base class would write to stderr)."""

    # -- responses ---------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Write status line, headers and body in one ``send`` (Content-Length always set)."""
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            f"Server: {self.server_version}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "x-dspex-rule-based: true",
            "Connection: close" if self.close_connection else "Connection: keep-alive",
        ]
        lines.extend(f"{k}: {v}" for k, v in headers)
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)

    def _send_json(self, status: int, obj: object, headers: Sequence[tuple[str, str]] = ()) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), headers=headers)

    def _send_error_json(
        self,
        status: int,
        message: str,
        err_type: str,
        code: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        error = {"message": message, "type": err_type, "param": None, "code": code}
        self._send_json(status, {"error": error}, headers)

    def _drop(self) -> None:
        """Close the connection without writing any response."""
        self.close_connection = True
        _shutdown_socket(self.connection)

    # -- request body ------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked); None after an error was sent."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(65537)
                try:
                    size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
                except ValueError:
                    self.close_connection = True
                    self._send_error_json(400, "bad chunked encoding", "invalid_request_error")
                    return None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > _MAX_BODY_BYTES:
                    self.close_connection = True
                    self._send_error_json(413, "request body too large", "invalid_request_error")
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_BODY_BYTES:
            self.close_connection = True
            self._send_error_json(
                400 if length < 0 else 413, "bad Content-Length", "invalid_request_error"
            )
            return None
        return self.rfile.read(length) if length else b""

    # -- routing -----------------------------------------------------------------------

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self._path()
        if path == "/health":
            self._send_json(200, {"status": "ok", "rule_based": True, "model": owner.model})
        elif path in ("/v1/models", "/models"):
            self._send_json(200, owner._models_payload())
        else:
            owner._count("not_found")
            self._send_error_json(
                404, f"no route for GET {path}", "invalid_request_error", "not_found"
            )

    def do_POST(self) -> None:
        owner = self.server.owner
        raw = self._read_body()
        if raw is None:
            owner._count("bad_request")
            return
        path = self._path()
        if path not in ("/v1/chat/completions", "/chat/completions"):
            owner._count("not_found")
            self._send_error_json(
                404, f"no route for POST {path}", "invalid_request_error", "not_found"
            )
            return
        try:
            self._completion(owner, raw)
        except OSError:
            raise
        except Exception:
            logger.exception("rule server: internal error while answering a request")
            owner._count("internal_error")
            self._send_error_json(500, "internal error in the rule-based server", "server_error")

    def _completion(self, owner: RuleBasedLMServer, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            owner._record(None)
            owner._count("bad_request")
            self._send_error_json(400, "request body is not valid JSON", "invalid_request_error")
            return
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            owner._record(body if isinstance(body, dict) else None)
            owner._count("bad_request")
            self._send_error_json(
                400,
                "'messages' must be a non-empty list",
                "invalid_request_error",
                "invalid_messages",
            )
            return
        seq = owner._record(body)
        fault = owner._next_fault()
        if not owner._wait(owner.latency):
            owner._count("aborted")
            self._drop()
            return
        kind = fault.kind if fault else None
        if fault is not None:
            owner._count(f"fault:{fault.kind}")
            if kind == "drop":
                self._drop()
                return
            if kind == "hang" and not owner._wait(fault.hang_seconds):
                self._drop()
                return
            if kind == "slow" and not owner._wait(fault.delay):
                self._drop()
                return
            if kind in ("500", "503", "429", "400", "401"):
                self._fault_status(fault)
                return
            if kind == "garbage":
                self._send(200, b"<html>502 upstream garbage \x00\xff not json", headers=())
                return
        else:
            owner._count("ok")
        self._send_json(200, owner._completion_payload(body, seq, bad_format=kind == "bad_format"))

    def _fault_status(self, fault: Fault) -> None:
        note = "(injected fault; rule-based server, no model)"
        if fault.kind == "429":
            self._send_error_json(
                429,
                f"Rate limit reached {note}",
                "requests",
                "rate_limit_exceeded",
                headers=[("Retry-After", format(fault.retry_after, "g"))],
            )
        elif fault.kind == "500":
            self._send_error_json(500, f"The server had an error {note}", "server_error")
        elif fault.kind == "503":
            self._send_error_json(
                503, f"The server is overloaded {note}", "server_error", "service_unavailable"
            )
        elif fault.kind == "400":
            self._send_error_json(
                400, f"Bad request {note}", "invalid_request_error", "bad_request"
            )
        else:
            self._send_error_json(
                401,
                f"Incorrect API key provided {note}",
                "invalid_request_error",
                "invalid_api_key",
            )


def _count_tokens(text: str) -> int:
    return len(text.split())


def _truncate(text: str, max_tokens: int) -> str:
    """``text`` cut after ``max_tokens`` whitespace tokens (layout before the cut kept)."""
    matches: Iterator[re.Match[str]] = re.finditer(r"\S+", text)
    end = 0
    for i, m in enumerate(matches):
        if i == max_tokens:
            break
        end = m.end()
    return text[:end]


class RuleBasedLMServer:
    """An OpenAI-compatible chat-completions server on a loopback port, with no model.

    See the module docstring for the rules and fault kinds. ``port=0`` picks a
    free port; :attr:`url` and :attr:`api_base` are valid after :meth:`start`.
    ``latency`` (seconds) is added to every chat-completions request and may be
    changed while running. ``seed`` seeds the RNG of :meth:`set_fault_rates`.
    ``knowledge`` extends (and overrides) :data:`DEFAULT_KNOWLEDGE`.
    ``follow_demos`` switches demo-following on or off. ``model`` is the id
    reported in responses. ``request_log_size`` bounds :attr:`requests`.

    Threading: all methods may be called from any thread. :meth:`start` spawns
    a daemon serve thread; handler threads are daemonic too, and :meth:`stop`
    shuts them down and joins them. A server is started at most once.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        seed: int = 0,
        knowledge: Mapping[str, str] | None = None,
        follow_demos: bool = True,
        model: str = DEFAULT_MODEL,
        request_log_size: int = 1000,
    ) -> None:
        if request_log_size < 0:
            raise ValueError("request_log_size must be >= 0")
        self.host = host
        self.port = port
        self.seed = seed
        self.model = model
        table = dict(DEFAULT_KNOWLEDGE)
        if knowledge:
            table.update(knowledge)
        self._rules = _Rules(table, follow_demos)
        self._latency = 0.0
        self.latency = latency

        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._request_count = 0
        self._outcomes: Counter[str] = Counter()
        self._log: deque[dict[str, Any]] = deque(maxlen=request_log_size)
        self._faults: deque[Fault] = deque()
        self._rates: tuple[tuple[Fault, float], ...] = ()
        self._rng = random.Random(seed)

        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._started = False
        self._stopped = False

    # -- configuration -----------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds added to every chat-completions request (settable while running)."""
        return self._latency

    @latency.setter
    def latency(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"latency must be a finite number >= 0, got {value!r}")
        self._latency = value

    @property
    def follow_demos(self) -> bool:
        """Whether answers imitate the demos' style (see the module docstring)."""
        return self._rules.follow_demos

    @follow_demos.setter
    def follow_demos(self, value: bool) -> None:
        self._rules.follow_demos = bool(value)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve on a daemon thread; returns ``self``.

        Raises :class:`RuntimeError` if already started (a stopped server cannot
        be restarted) and :class:`OSError` if the address cannot be bound.
        """
        with self._lock:
            if self._started:
                raise RuntimeError("RuleBasedLMServer can be started only once")
            self._started = True
        httpd = _HTTPServer((self.host, self.port), _Handler, bind_and_activate=True)
        httpd.owner = self
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"dspex-rule-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, wake sleeping handlers, close connections, join threads.

        Idempotent, and a no-op on a server never started. Handlers waiting
        (latency, ``slow``, ``hang``) wake at once and drop their connection.
        Waits at most about ``timeout`` seconds for the threads; a thread still
        alive after that is daemonic and is left behind (never raises).
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            httpd, thread = self._httpd, self._thread
        self._stop_event.set()
        if httpd is None or thread is None:
            return
        deadline = time.monotonic() + max(timeout, 0.0)
        if thread.is_alive():
            httpd.shutdown()
        httpd.server_close()
        thread.join(max(deadline - time.monotonic(), 0.0))
        with self._lock:
            conns = list(self._connections.items())
        for sock, _ in conns:
            _shutdown_socket(sock)
        for _, handler in conns:
            if handler is not threading.current_thread():
                handler.join(max(deadline - time.monotonic(), 0.0))

    def __enter__(self) -> Self:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://HOST:PORT``; raises :class:`RuntimeError` before :meth:`start`."""
        if self._httpd is None:
            raise RuntimeError("the server has not been started")
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """``url + "/v1"``, what OpenAI-style clients take as their base URL."""
        return self.url + "/v1"

    # -- faults ------------------------------------------------------------------------

    def inject(self, *faults: str | Fault) -> None:
        """Queue faults: the next chat-completions requests get them, in order.

        A string is a kind with default parameters. Raises :class:`ValueError`
        (and queues nothing) if any kind is unknown.
        """
        parsed = [f if isinstance(f, Fault) else Fault(kind=f) for f in faults]
        with self._lock:
            self._faults.extend(parsed)

    def set_fault_rates(
        self,
        rates: Mapping[str, float],
        seed: int | None = None,
        *,
        templates: Mapping[str, Fault] | None = None,
    ) -> None:
        """Give each request a random fault: ``{"429": 0.1, "500": 0.05}``.

        Drawn from ``random.Random(seed)`` (the server's ``seed`` if None), so a
        sequence of requests sees a reproducible sequence of faults. Queued
        faults (:meth:`inject`) take precedence. ``templates`` give the
        parameters per kind (default: ``Fault(kind)``). Raises
        :class:`ValueError` on an unknown kind, a rate outside [0, 1], or rates
        summing to more than 1. An empty mapping turns random faults off.
        """
        templates = templates or {}
        table = []
        total = 0.0
        for kind, raw_rate in sorted(rates.items()):
            fault = templates.get(kind) or Fault(kind=kind)
            if fault.kind != kind:
                raise ValueError(f"template for {kind!r} has kind {fault.kind!r}")
            rate = float(raw_rate)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate for {kind!r} must be in [0, 1], got {rate!r}")
            total += rate
            if rate > 0:
                table.append((fault, rate))
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates sum to {total}, more than 1")
        with self._lock:
            self._rates = tuple(table)
            self._rng = random.Random(self.seed if seed is None else seed)

    def clear_faults(self) -> None:
        """Drop queued faults and turn random faults off."""
        with self._lock:
            self._faults.clear()
            self._rates = ()

    # -- statistics --------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Chat-completions requests received (valid or not) since start / reset."""
        with self._lock:
            return self._request_count

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of the last received JSON request bodies (bounded, oldest first)."""
        with self._lock:
            return list(self._log)

    def stats(self) -> dict[str, int]:
        """Counts by outcome: ``requests``, ``connections``, ``ok``, ``bad_request``,
        ``not_found``, ``aborted`` (stopped while waiting), ``internal_error`` and
        ``fault:<kind>`` for each fault served. Keys with a zero count may be absent
        except ``requests``, ``connections`` and ``ok``."""
        with self._lock:
            out = {"requests": self._request_count, "connections": 0, "ok": 0}
            out.update(self._outcomes)
            return out

    def reset_stats(self) -> None:
        """Zero the counters and empty the request log (faults are kept)."""
        with self._lock:
            self._request_count = 0
            self._outcomes.clear()
            self._log.clear()

    # -- internals used by the handler threads -----------------------------------------

    def _register(self, sock: socket.socket) -> None:
        with self._lock:
            stopping = self._stopped
            if not stopping:
                self._connections[sock] = threading.current_thread()
                self._outcomes["connections"] += 1
        if stopping:
            _shutdown_socket(sock)

    def _unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self._outcomes[outcome] += 1

    def _record(self, body: dict[str, Any] | None) -> int:
        with self._lock:
            self._request_count += 1
            if body is not None:
                self._log.append(body)
            return self._request_count

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if not self._rates:
                return None
            draw = self._rng.random()
            for fault, rate in self._rates:
                if draw < rate:
                    return fault
                draw -= rate
            return None

    def _wait(self, seconds: float) -> bool:
        """Wait on the stop event; False if the server is stopping."""
        if seconds > 0:
            return not self._stop_event.wait(seconds)
        return not self._stop_event.is_set()

    def _models_payload(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": self.model,
                    "object": "model",
                    "created": 0,
                    "owned_by": "dspex-actors (rule-based; no model)",
                }
            ],
        }

    def _completion_payload(
        self, body: Mapping[str, Any], seq: int, *, bad_format: bool = False
    ) -> dict[str, Any]:
        content = self._rules.complete(body, bad_format=bad_format)
        finish = "stop"
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if (
            isinstance(limit, int)
            and not isinstance(limit, bool)
            and 0 < limit < _count_tokens(content)
        ):
            content = _truncate(content, limit)
            finish = "length"
        n = body.get("n", 1)
        n = n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 128 else 1
        prompt_tokens = sum(
            _count_tokens(_content_text(m.get("content")))
            for m in body.get("messages", ())
            if isinstance(m, dict)
        )
        completion_tokens = _count_tokens(content) * n
        return {
            "id": f"chatcmpl-rule-{seq:08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "rule-based",
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for i in range(n)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _shutdown_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until Ctrl-C or SIGTERM; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m dspex_actors.testing._rule_server",
        description="Rule-based (no model) OpenAI-compatible chat-completions server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--no-follow-demos", action="store_true")
    parser.add_argument(
        "--fault-rate",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="random fault rate, e.g. --fault-rate 429=0.1 (repeatable)",
    )
    args = parser.parse_args(argv)
    rates: dict[str, float] = {}
    for item in args.fault_rate:
        kind, sep, rate = item.partition("=")
        if not sep:
            parser.error(f"--fault-rate expects KIND=RATE, got {item!r}")
        try:
            rates[kind] = float(rate)
        except ValueError:
            parser.error(f"--fault-rate: bad rate in {item!r}")
    server = RuleBasedLMServer(
        args.host,
        args.port,
        latency=args.latency,
        seed=args.seed,
        follow_demos=not args.no_follow_demos,
        model=args.model,
    )
    try:
        if rates:
            server.set_fault_rates(rates)
    except ValueError as exc:
        parser.error(str(exc))
    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    # Ctrl-C and SIGTERM only set the event, so no KeyboardInterrupt can escape mid-print.
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(
            f"rule-based LM server (no model) at {server.url}  api_base={server.api_base}",
            flush=True,
        )
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
