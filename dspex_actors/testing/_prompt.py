"""Reading the prompts the server receives: DSPy's ChatAdapter and JSONAdapter formats.

:func:`read_prompt` turns a chat-completions body into a :class:`Prompt` (the
output fields asked for, JSON or not, the question, the demos' turns). Parsed
here independently of the package's own adapters. Pure functions, thread-safe.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

_HEADER_RE: Final = re.compile(r"\[\[ ## (\w+) ## \]\]")
_FIELD_LINE_RE: Final = re.compile(r"^\s*\d+\.\s+`(\w+)`\s*\((.*)$")
_NOTE_RE: Final = re.compile(r"\{(\w+)\} {2,}# note: the value you produce (.+)")
_CHAT_REQ_RE: Final = re.compile(
    r"`\[\[ ## (\w+) ## \]\]`(?: \(must be formatted as a valid Python (.+?)\))?(?=,|\.|$)"
)
_JSON_REQ_RE: Final = re.compile(
    r"`(\w+)`(?: \(must be formatted as a valid Python (.+?)\))?(?=,|\.|$)"
)
_QUESTION_NAMES: Final = ("question", "query", "input", "text", "prompt", "problem", "claim")
_NOT_SUPPLIED: Final = "Not supplied for this"
_RESPOND_MARKERS: Final = (
    "Respond with the corresponding output fields",
    "Respond with a JSON object",
)
_SCHEMA_TYPES: Final = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
}


@dataclass(frozen=True)
class OutField:
    """One output field as read from the prompt: name, type text, and allowed options."""

    name: str
    type_text: str = "str"
    options: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SystemSpec:
    """What the system message says: input names, output fields, JSON mode."""

    input_names: tuple[str, ...]
    outputs: tuple[OutField, ...]
    json_mode: bool


@dataclass(frozen=True)
class Prompt:
    """A request as the rules see it.

    ``outputs`` are the fields to answer (empty: answer in plain text),
    ``json_mode`` whether to answer with a JSON object, ``question`` the text
    to solve, ``all_text`` all input values joined, ``history`` the messages
    before the final user turn (the demos), ``system`` the system message text.
    """

    outputs: tuple[OutField, ...]
    json_mode: bool
    question: str
    all_text: str
    history: tuple[Mapping[str, Any], ...]
    system: str = ""


def content_text(content: object) -> str:
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


def split_blocks(text: str) -> dict[str, str]:
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


def base_type(type_text: str) -> str:
    """The type without ``Optional``/``Union[..., None]``/``| None`` wrappers."""
    t = type_text.strip()
    for prefix in ("Optional[", "Union[", "UnionType["):
        if t.startswith(prefix) and t.endswith("]"):
            args = [a for a in _split_top(t[len(prefix) : -1]) if a not in ("NoneType", "None")]
            return base_type(args[0]) if args else "str"
    if "|" in t and "[" not in t:
        args = [a.strip() for a in t.split("|") if a.strip() not in ("NoneType", "None")]
        return args[0] if args else "str"
    return t


def _notes(system: str) -> dict[str, str]:
    """Per-field ``# note: the value you produce ...`` texts of the field-structure block."""
    notes: dict[str, str] = {}
    marker = "Outputs will be a JSON object with the following fields."
    idx = system.find(marker)
    start = system.find("{", idx) if idx >= 0 else -1
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
    base = base_type(type_text)
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
def _parse_system(system: str) -> SystemSpec:
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
        OutField(
            name=name,
            type_text=type_text,
            options=_options_from(type_text, notes.get(name, "")),
            schema=_schema_from(notes.get(name, "")),
        )
        for name, type_text in outputs
    )
    json_mode = "Outputs will be a JSON object" in system
    return SystemSpec(tuple(name for name, _ in inputs), fields, json_mode)


def _fields_from_requirement(sentence: str) -> tuple[tuple[OutField, ...], bool]:
    """Output fields named by a final ``Respond with ...`` sentence; whether it asks for JSON."""
    if sentence.startswith("Respond with a JSON object"):
        tail = sentence.split(":", 1)[1] if ":" in sentence else ""
        found = [(m.group(1), m.group(2) or "str") for m in _JSON_REQ_RE.finditer(tail)]
        json_mode = True
    else:
        found = [(m.group(1), m.group(2) or "str") for m in _CHAT_REQ_RE.finditer(sentence)]
        found = [(n, t) for n, t in found if n != "completed"]
        json_mode = False
    fields = tuple(OutField(name=n, type_text=t, options=_options_from(t, "")) for n, t in found)
    return fields, json_mode


def _schema_type(prop: object) -> str:
    """The type text of one JSON-schema property (``list[...]`` for arrays)."""
    kind = prop.get("type") if isinstance(prop, dict) else None
    type_text = _SCHEMA_TYPES.get(kind, "str") if isinstance(kind, str) else "str"
    if type_text == "list" and isinstance(prop, dict):
        items = prop.get("items")
        item_kind = items.get("type") if isinstance(items, dict) else None
        item_type = _SCHEMA_TYPES.get(item_kind, "str") if isinstance(item_kind, str) else "str"
        type_text = f"list[{item_type}]"
    return type_text


def _fields_from_schema(response_format: object) -> tuple[OutField, ...]:
    """Output fields from an OpenAI ``json_schema`` response format."""
    if not isinstance(response_format, dict):
        return ()
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return ()
    fields = []
    for name, prop in props.items():
        options = tuple(str(o) for o in prop.get("enum", ())) if isinstance(prop, dict) else ()
        fields.append(OutField(name=str(name), type_text=_schema_type(prop), options=options))
    return tuple(fields)


def _output_fields(
    spec: SystemSpec, requirement: str, response_format: object
) -> tuple[tuple[OutField, ...], bool]:
    """The fields to answer and JSON mode: the system message's, else the final
    ``Respond with ...`` sentence's, else a ``json_schema`` response format's."""
    outputs = spec.outputs
    json_mode = spec.json_mode
    if requirement:
        req_fields, req_json = _fields_from_requirement(requirement.strip())
        json_mode = json_mode or req_json
        if not outputs:
            outputs = req_fields
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        json_mode = True
        if not outputs:
            outputs = _fields_from_schema(response_format)
    return outputs, json_mode


def _question(inputs: Mapping[str, str], input_names: Sequence[str], raw: str) -> str:
    """The text to solve: the first question-like input, else all inputs, else the raw turn."""
    for name in _QUESTION_NAMES:
        if inputs.get(name):
            return inputs[name]
    if inputs:
        ordered = [inputs[n] for n in input_names if n in inputs] or list(inputs.values())
        return "\n".join(ordered)
    return raw.strip()


def read_prompt(body: Mapping[str, Any]) -> Prompt:
    """Read a chat-completions request body (never raises on odd prompts)."""
    messages = [m for m in body.get("messages", ()) if isinstance(m, dict)]
    system = "\n\n".join(
        content_text(m.get("content")) for m in messages if m.get("role") == "system"
    )
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    final = content_text(messages[last_user].get("content")) if last_user >= 0 else ""
    input_part, requirement = _strip_respond(final)
    spec = _parse_system(system) if system else SystemSpec((), (), False)
    outputs, json_mode = _output_fields(spec, requirement, body.get("response_format"))
    inputs = split_blocks(input_part)
    question = _question(inputs, spec.input_names, input_part)
    all_text = "\n".join(v for v in inputs.values()) if inputs else question
    history = tuple(messages[: max(last_user, 0)])
    return Prompt(outputs, json_mode, question, all_text, history, system)


def demo_values(history: Sequence[Mapping[str, Any]], json_mode: bool) -> dict[str, list[str]]:
    """Output-field values shown in earlier assistant turns (the demos), per field name."""
    found: dict[str, list[str]] = {}
    for message in history:
        if message.get("role") != "assistant":
            continue
        text = content_text(message.get("content"))
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
            blocks = split_blocks(text)
        for name, value in blocks.items():
            if name == "completed" or not value or value.startswith(_NOT_SUPPLIED):
                continue
            found.setdefault(name, []).append(value)
    return found
