"""Adapters: turn (signature, demos, inputs) into chat messages and completions back into fields.

:class:`ChatAdapter` produces exactly the messages DSPy 3.4's ``dspy.ChatAdapter``
produces (byte for byte: prompts, demos and saved programs move between the two), and
parses completions the same way: the text is split on ``[[ ## name ## ]]`` header lines,
the first section of each output field wins, each value is converted to the field's
type, and a missing output field raises :class:`~dspex_actors.primitives._errors.AdapterParseError`
carrying the raw text. :class:`JSONAdapter` is DSPy's JSON variant, used as the fallback.

The fallback protocol (what DSPy's ``ChatAdapter.__call__`` does), for the caller that
owns the LM call::

    messages = adapter.format(signature, demos, inputs)
    try:
        return adapter.parse(signature, lm(messages))
    except AdapterParseError:
        fallback = adapter.fallback()          # JSONAdapter, or None
        if fallback is None:
            raise
        return fallback.parse(signature, lm(fallback.format(signature, demos, inputs)))

Adapters hold no mutable state: one instance can serve any number of threads. No method
does I/O. ``format`` raises only for values that cannot be rendered at all; ``parse``
raises :class:`AdapterParseError` and nothing else for bad completions.

Known differences from DSPy 3.4.1, all in parsing (formatting has none for the types
supported here): DSPy repairs malformed JSON with the ``json_repair`` package; this
module has a smaller built-in repair (code fences, single quotes, trailing commas,
Python literals, bare words inside ``[...]``/``{...}``, text after the value), so very
broken JSON that DSPy would still rescue fails here. A header line with leading spaces
is parsed correctly here (DSPy 3.4.1 keeps a stray ``"]]"`` in the value).
DSPy's special types (``dspy.Image``, ``History``, ``Tool``...) are not supported.
"""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import json
import math
import re
import textwrap
import types
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import TypeAdapter

from dspex_actors.primitives import AdapterParseError, Example
from dspex_actors.signatures import FieldSpec, Signature, annotation_allows_none

__all__ = [
    "ChatAdapter",
    "JSONAdapter",
    "Message",
    "apply_output_field_defaults",
    "format_field_value",
    "get_annotation_name",
    "parse_value",
    "serialize_for_json",
    "translate_field_type",
]

#: One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``.
Message = dict[str, str]
#: A demo: a dict or an :class:`Example` with input and output field values.
Demo = Mapping[str, Any] | Example

_STRUCTURE_HEADER = (
    "All interactions will be structured in the following way, "
    "with the appropriate values filled in."
)
_FIELD_HEADER = re.compile(r"\[\[ ## (\w+) ## \]\]")
_INCOMPLETE_DEMO_PREFIX = (
    "This is an example of the task, though some input or output fields are not supplied."
)
_MISSING_IN_INCOMPLETE_DEMO = "Not supplied for this particular example. "
_MISSING_IN_COMPLETE_DEMO = "Not supplied for this conversation history message. "


# =========================================================================== type names


def get_annotation_name(annotation: Any) -> str:
    """DSPy's rendering of a type in prompts: ``list[str]``, ``Union[int, NoneType]``,
    ``Literal['a', 'b']``, ``dict[str, int]``.
    """
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is types.UnionType:
        origin = Union
    if origin is None:
        if hasattr(annotation, "__name__"):
            return str(annotation.__name__)
        return str(annotation)
    if origin is Literal:
        args_str = ", ".join(
            _quoted_literal(a) if isinstance(a, str) else get_annotation_name(a) for a in args
        )
    else:
        args_str = ", ".join(get_annotation_name(a) for a in args)
    return f"{get_annotation_name(origin)}[{args_str}]"


def _quoted_literal(s: str) -> str:
    has_single, has_double = "'" in s, '"' in s
    if has_single and not has_double:
        return f'"{s}"'
    if has_double and not has_single:
        return f"'{s}'"
    if has_single and has_double:
        escaped = s.replace("'", "\\'")
        return f"'{escaped}'"
    return f"'{s}'"


def _is_enum_type(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, enum.Enum)


def _move_type_to_front(d: Any) -> Any:
    if isinstance(d, Mapping):
        return {
            k: _move_type_to_front(v)
            for k, v in sorted(d.items(), key=lambda item: (item[0] != "type", item[0]))
        }
    if isinstance(d, list):
        return [_move_type_to_front(item) for item in d]
    return d


@functools.lru_cache(maxsize=512)
def _json_schema_text(annotation: Any) -> str:
    schema = _move_type_to_front(TypeAdapter(annotation).json_schema())
    return json.dumps(schema, ensure_ascii=False)


def translate_field_type(field_name: str, spec: FieldSpec) -> str:
    """The ``{name}`` placeholder of the system prompt, with DSPy's type note for outputs."""
    field_type = spec.annotation
    if spec.kind == "input" or field_type is str:
        desc = ""
    elif field_type is bool:
        desc = "must be True or False"
    elif field_type in (int, float):
        desc = f"must be a single {field_type.__name__} value"
    elif _is_enum_type(field_type):
        desc = "must be one of: " + "; ".join(str(member.value) for member in field_type)
    elif get_origin(field_type) is Literal:
        desc = "must exactly match (no extra characters) one of: " + "; ".join(
            str(x) for x in get_args(field_type)
        )
    else:
        try:
            schema = _json_schema_text(field_type)
        except TypeError:  # unhashable annotation: no caching
            schema = json.dumps(
                _move_type_to_front(TypeAdapter(field_type).json_schema()), ensure_ascii=False
            )
        desc = f"must adhere to the JSON schema: {schema}"
    note = (" " * 8) + f"# note: the value you produce {desc}" if desc else ""
    return f"{{{field_name}}}{note}"


def _field_description_string(fields: Mapping[str, FieldSpec]) -> str:
    lines = []
    for index, (name, spec) in enumerate(fields.items()):
        desc = spec.desc if spec.desc != f"${{{name}}}" else ""
        line = f"{index + 1}. `{name}` ({get_annotation_name(spec.annotation)}): {desc}"
        if spec.constraints:
            line += f"\nConstraints: {spec.constraints}"
        lines.append(line)
    return "\n".join(lines).strip()


# =========================================================================== values -> text


_TYPE_ADAPTERS: dict[Any, TypeAdapter[Any] | None] = {}


def _type_adapter_for(cls: Any) -> TypeAdapter[Any] | None:
    """A cached pydantic TypeAdapter for ``cls`` (``None`` if pydantic cannot handle it).

    The cache is a plain dict: concurrent misses may build an adapter twice, harmlessly.
    """
    try:
        return _TYPE_ADAPTERS[cls]
    except KeyError:
        pass
    try:
        adapter: TypeAdapter[Any] | None = TypeAdapter(cls)
    except Exception:
        adapter = None
    if len(_TYPE_ADAPTERS) > 512:
        _TYPE_ADAPTERS.clear()
    _TYPE_ADAPTERS[cls] = adapter
    return adapter


def _is_plain_json(value: Any, depth: int = 0) -> bool:
    """True when ``json.dumps(value)`` equals what pydantic's JSON-mode dump would give."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if depth > 50:
        return False
    if kind is list:
        return all(_is_plain_json(item, depth + 1) for item in value)
    if kind is dict:
        return all(type(k) is str and _is_plain_json(v, depth + 1) for k, v in value.items())
    return False


def serialize_for_json(value: Any) -> Any:
    """``value`` as JSON-compatible data, the way DSPy does it (pydantic JSON mode,
    ``str()`` for what pydantic cannot serialise). Never raises.
    """
    if _is_plain_json(value):
        return value
    try:
        adapter = _type_adapter_for(type(value))
    except TypeError:  # unhashable type object
        adapter = None
    if adapter is None:
        return str(value)
    try:
        return adapter.dump_python(value, mode="json", fallback=str)
    except Exception:
        return str(value)


def _format_blob(blob: Any) -> str:
    text = blob if isinstance(blob, str) else str(blob)
    if "\n" not in text and "«" not in text and "»" not in text:
        return f"«{text}»"
    modified = text.replace("\n", "\n    ")
    return f"«««\n    {modified}\n»»»"


def _format_list_for_str_field(value: list[Any]) -> str:
    if len(value) == 0:
        return "N/A"
    if len(value) == 1:
        return _format_blob(value[0])
    return "\n".join(f"[{index + 1}] {_format_blob(item)}" for index, item in enumerate(value))


def format_field_value(spec: FieldSpec, value: Any) -> str:
    """A field value as prompt text: lists in ``str`` fields become a numbered «…» list,
    dicts/lists JSON (non-ASCII kept), everything else ``str()`` of its JSON form.
    """
    if isinstance(value, list) and spec.annotation is str:
        return _format_list_for_str_field(value)
    jsonable = serialize_for_json(value)
    if isinstance(jsonable, (dict, list)):
        return json.dumps(jsonable, ensure_ascii=False)
    return str(jsonable)


# =========================================================================== text -> values


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


def _loads_lenient(text: str) -> Any:
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


def _first_json_object(text: str) -> dict[Any, Any] | None:
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


@functools.lru_cache(maxsize=512)
def _validator_for(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _validate(annotation: Any, value: Any) -> Any:
    try:
        adapter = _validator_for(annotation)
    except TypeError:  # unhashable annotation
        adapter = TypeAdapter(annotation)
    return adapter.validate_python(value)


def _find_enum_member(enum_type: type[enum.Enum], identifier: Any) -> enum.Enum:
    for member in enum_type:
        if member.value == identifier:
            return member
    if identifier in enum_type.__members__:
        return enum_type[identifier]
    raise ValueError(f"{identifier} is not a valid name or value for the enum {enum_type.__name__}")


def parse_value(value: Any, annotation: Any) -> Any:
    """Convert an LM-produced value (usually text) to ``annotation``, as DSPy does.

    ``str`` keeps the text; ``Literal`` accepts the value bare, quoted or as
    ``Literal['x']``; other types read the text as JSON (forgivingly), then as a Python
    literal, then as the plain string, and validate the result with pydantic (lax mode:
    ``"42"`` -> 42, ``"yes"`` -> True). Raises ``ValueError`` (pydantic's
    ``ValidationError`` is one) when the value does not fit.
    """
    if annotation is str:
        return str(value)
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return _find_enum_member(annotation, value)
    origin = get_origin(annotation)
    if origin is Literal:
        allowed = get_args(annotation)
        if value in allowed:
            return value
        if isinstance(value, str):
            v = value.strip()
            if v.startswith(("Literal[", "str[")) and v.endswith("]"):
                v = v[v.find("[") + 1 : -1]
            if len(v) > 1 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            if v in allowed:
                return v
            value = v
    if not isinstance(value, str):
        return _validate(annotation, value)
    args = get_args(annotation)
    if origin in (Union, types.UnionType) and type(None) in args and str in args:
        return _validate(annotation, value)
    candidate = _loads_lenient(value)
    if isinstance(candidate, str) and candidate == "" and value != "":
        try:
            candidate = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            candidate = value
    return _validate(annotation, candidate)


def apply_output_field_defaults(
    signature: type[Signature], fields: Mapping[str, Any]
) -> dict[str, Any]:
    """Complete parsed outputs in signature order: a missing field with a default gets the
    default, one whose type admits ``None`` gets ``None``, others stay missing.
    """
    completed: dict[str, Any] = {}
    for name, spec in signature.output_fields.items():
        if name in fields:
            completed[name] = fields[name]
        elif spec.has_default:
            completed[name] = spec.default
        elif annotation_allows_none(spec.annotation):
            completed[name] = None
    return completed


def _parse_error(
    adapter: str,
    signature: type[Signature],
    completion: str,
    *,
    detail: str | None = None,
    parsed: Mapping[str, Any] | None = None,
) -> AdapterParseError:
    message = f"{detail}. " if detail else ""
    message += (
        f"{adapter} failed to parse the LM response; expected output fields "
        f"[{', '.join(signature.output_fields)}]"
    )
    if parsed is not None:
        message += f", found [{', '.join(parsed)}]"
    return AdapterParseError(message, text=completion)


# =========================================================================== adapters


class ChatAdapter:
    """DSPy's default adapter: ``[[ ## field ## ]]`` sections, byte-identical to DSPy 3.4.

    Args:
        use_json_adapter_fallback: whether :meth:`fallback` offers a :class:`JSONAdapter`
            for one more LM call after a parse failure (DSPy's default, ``True``).

    Stateless and thread-safe; methods never do I/O.
    """

    name = "ChatAdapter"

    def __init__(self, *, use_json_adapter_fallback: bool = True) -> None:
        self.use_json_adapter_fallback = use_json_adapter_fallback

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def fallback(self) -> ChatAdapter | None:
        """The adapter to retry with (one more LM call) after :class:`AdapterParseError`:
        a :class:`JSONAdapter`, or ``None`` when disabled (DSPy's rule).
        """
        return JSONAdapter() if self.use_json_adapter_fallback else None

    # ------------------------------------------------------------------ format

    def format(
        self,
        signature: type[Signature],
        demos: Sequence[Demo],
        inputs: Mapping[str, Any],
    ) -> list[Message]:
        """The chat messages for one call: system prompt, demo turns, then the inputs.

        Inputs missing from ``inputs`` are left out of the last user turn; names that
        are not input fields are ignored (validate with ``Signature.validate_inputs``).
        Demos with every field set (not ``None``) become plain user/assistant turns;
        demos with at least one input and one output field but not all of them come
        first, marked as incomplete; other demos are dropped (DSPy's rules).
        """
        messages: list[Message] = [
            {"role": "system", "content": self.format_system_message(signature)}
        ]
        messages.extend(self.format_demos(signature, demos))
        content = self.format_user_message_content(signature, inputs, main_request=True)
        if content:
            messages.append({"role": "user", "content": content})
        return messages

    def format_system_message(self, signature: type[Signature]) -> str:
        """Field list, the structure of a turn, and the instructions."""
        return (
            f"{self.format_field_description(signature)}\n"
            f"{self.format_field_structure(signature)}\n"
            f"{self.format_task_description(signature)}"
        )

    def format_field_description(self, signature: type[Signature]) -> str:
        """``Your input fields are:`` / ``Your output fields are:`` numbered lists."""
        return (
            f"Your input fields are:\n{_field_description_string(signature.input_fields)}\n"
            f"Your output fields are:\n{_field_description_string(signature.output_fields)}"
        )

    def format_field_structure(self, signature: type[Signature]) -> str:
        """The ``[[ ## name ## ]]`` skeleton with type notes, ending with ``completed``."""
        parts = [_STRUCTURE_HEADER]
        for fields in (signature.input_fields, signature.output_fields):
            parts.append(
                self.format_field_with_value(
                    [
                        (name, spec, translate_field_type(name, spec))
                        for name, spec in fields.items()
                    ]
                )
            )
        parts.append("[[ ## completed ## ]]\n")
        return "\n\n".join(parts).strip()

    def format_task_description(self, signature: type[Signature]) -> str:
        """``In adhering to this structure, your objective is:`` and the instructions."""
        instructions = textwrap.dedent(signature.instructions)
        objective = ("\n" + " " * 8).join(["", *instructions.splitlines()])
        return f"In adhering to this structure, your objective is: {objective}"

    def format_user_message_content(
        self,
        signature: type[Signature],
        inputs: Mapping[str, Any] | Example,
        prefix: str = "",
        suffix: str = "",
        main_request: bool = False,
    ) -> str:
        """The input sections present in ``inputs`` (plus the output reminder for the call)."""
        parts = [prefix]
        for name, spec in signature.input_fields.items():
            if name in inputs:
                parts.append(f"[[ ## {name} ## ]]\n{format_field_value(spec, inputs.get(name))}")
        if main_request:
            parts.append(self.user_message_output_requirements(signature))
        parts.append(suffix)
        return "\n\n".join(parts).strip()

    def user_message_output_requirements(self, signature: type[Signature]) -> str:
        """The reminder of the expected output sections, at the end of the last user turn."""
        message = "Respond with the corresponding output fields, starting with the field "
        message += ", then ".join(
            f"`[[ ## {name} ## ]]`{_type_info(spec)}"
            for name, spec in signature.output_fields.items()
        )
        message += ", and then ending with the marker for `[[ ## completed ## ]]`."
        return message

    def format_assistant_message_content(
        self,
        signature: type[Signature],
        outputs: Mapping[str, Any] | Example,
        missing_field_message: str | None = None,
    ) -> str:
        """A demo's assistant turn: output sections then ``[[ ## completed ## ]]``."""
        content = self.format_field_with_value(
            [
                (name, spec, outputs.get(name, missing_field_message))
                for name, spec in signature.output_fields.items()
            ]
        )
        return content + "\n\n[[ ## completed ## ]]\n"

    def format_field_with_value(
        self, fields_with_values: Sequence[tuple[str, FieldSpec, Any]], role: str = "user"
    ) -> str:
        """``[[ ## name ## ]]\\nvalue`` sections separated by blank lines."""
        return "\n\n".join(
            f"[[ ## {name} ## ]]\n{format_field_value(spec, value)}"
            for name, spec, value in fields_with_values
        ).strip()

    def format_demos(self, signature: type[Signature], demos: Sequence[Demo]) -> list[Message]:
        """User/assistant turn pairs for the demos: incomplete ones first, then complete."""
        fields = signature.fields
        input_names = signature.input_fields
        output_names = signature.output_fields
        complete: list[Demo] = []
        incomplete: list[Demo] = []
        for demo in demos:
            if all(name in demo and demo[name] is not None for name in fields):
                complete.append(demo)
            elif any(name in demo for name in input_names) and any(
                name in demo for name in output_names
            ):
                incomplete.append(demo)
        messages: list[Message] = []
        for demo in incomplete:
            messages.append(
                {
                    "role": "user",
                    "content": self.format_user_message_content(
                        signature, demo, prefix=_INCOMPLETE_DEMO_PREFIX
                    ),
                }
            )
            messages.append(
                {
                    "role": "assistant",
                    "content": self.format_assistant_message_content(
                        signature, demo, missing_field_message=_MISSING_IN_INCOMPLETE_DEMO
                    ),
                }
            )
        for demo in complete:
            messages.append(
                {"role": "user", "content": self.format_user_message_content(signature, demo)}
            )
            messages.append(
                {
                    "role": "assistant",
                    "content": self.format_assistant_message_content(
                        signature, demo, missing_field_message=_MISSING_IN_COMPLETE_DEMO
                    ),
                }
            )
        return messages

    # ------------------------------------------------------------------ parse

    def parse(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        """The output fields found in ``completion``, converted to their types.

        Text before the first header and sections of unknown names are ignored; the
        first section of a field wins; values are stripped. Output fields that are
        missing but have a default (or admit ``None``) get it. Raises
        :class:`AdapterParseError` (``.text`` = ``completion``) when a value does not
        convert or a required output field is missing.
        """
        sections: list[tuple[str | None, list[str]]] = [(None, [])]
        for line in completion.splitlines():
            stripped = line.strip()
            match = _FIELD_HEADER.match(stripped)
            if match:
                remaining = stripped[match.end() :].strip()
                sections.append((match.group(1), [remaining] if remaining else []))
            else:
                sections[-1][1].append(line)
        output_fields = signature.output_fields
        fields: dict[str, Any] = {}
        for name, lines in sections:
            if name is None or name in fields or name not in output_fields:
                continue
            text = "\n".join(lines).strip()
            try:
                fields[name] = parse_value(text, output_fields[name].annotation)
            except ValueError as exc:
                raise _parse_error(
                    self.name,
                    signature,
                    completion,
                    detail=f"Failed to parse field {name} with value {text!r} "
                    f"from the LM response: {exc}",
                ) from exc
        fields = apply_output_field_defaults(signature, fields)
        if fields.keys() != output_fields.keys():
            raise _parse_error(self.name, signature, completion, parsed=fields)
        return fields


def _type_info(spec: FieldSpec) -> str:
    if spec.annotation is not str:
        return f" (must be formatted as a valid Python {get_annotation_name(spec.annotation)})"
    return ""


class JSONAdapter(ChatAdapter):
    """DSPy's ``JSONAdapter``: same system prompt idea, outputs as one JSON object.

    Used as :class:`ChatAdapter`'s fallback; it has no fallback of its own. (DSPy also
    asks the LM for ``response_format`` JSON when it can; that belongs to the LM call,
    not to this class.) Stateless and thread-safe.
    """

    name = "JSONAdapter"

    def __init__(self) -> None:
        super().__init__(use_json_adapter_fallback=False)

    def fallback(self) -> ChatAdapter | None:
        """``None``: the JSON adapter is the last resort."""
        return None

    def format_field_structure(self, signature: type[Signature]) -> str:
        """Input sections, then the JSON object the outputs will be."""
        parts = [
            _STRUCTURE_HEADER,
            "Inputs will have the following structure:",
            self.format_field_with_value(
                [(n, s, translate_field_type(n, s)) for n, s in signature.input_fields.items()],
                role="user",
            ),
            "Outputs will be a JSON object with the following fields.",
            self.format_field_with_value(
                [(n, s, translate_field_type(n, s)) for n, s in signature.output_fields.items()],
                role="assistant",
            ),
        ]
        return "\n\n".join(parts).strip()

    def user_message_output_requirements(self, signature: type[Signature]) -> str:
        """The reminder of the expected JSON keys, at the end of the last user turn."""
        message = "Respond with a JSON object in the following order of fields: "
        message += ", then ".join(
            f"`{name}`{_type_info(spec)}" for name, spec in signature.output_fields.items()
        )
        return message + "."

    def format_assistant_message_content(
        self,
        signature: type[Signature],
        outputs: Mapping[str, Any] | Example,
        missing_field_message: str | None = None,
    ) -> str:
        """A demo's assistant turn: the outputs as an indented JSON object."""
        return self.format_field_with_value(
            [
                (name, spec, outputs.get(name, missing_field_message))
                for name, spec in signature.output_fields.items()
            ],
            role="assistant",
        )

    def format_field_with_value(
        self, fields_with_values: Sequence[tuple[str, FieldSpec, Any]], role: str = "user"
    ) -> str:
        """Sections for the user role; a JSON object (indent 2) for the assistant role."""
        if role == "user":
            return super().format_field_with_value(fields_with_values, role)
        data = {name: value for name, _, value in fields_with_values}
        return json.dumps(serialize_for_json(data), indent=2, ensure_ascii=False)

    def parse(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        """The output fields of the JSON object in ``completion``, converted to their types.

        The object may be wrapped in a code fence or surrounded by text; keys that are
        not output fields are dropped. Raises :class:`AdapterParseError` when no object
        is found, a value does not convert, or a required output field is missing.
        """
        data = _loads_lenient(completion)
        if not isinstance(data, dict):
            data = _first_json_object(completion)
        if not isinstance(data, dict):
            raise _parse_error(
                self.name,
                signature,
                completion,
                detail="LM response cannot be serialized to a JSON object",
            )
        output_fields = signature.output_fields
        fields = {k: v for k, v in data.items() if k in output_fields}
        for name, value in list(fields.items()):
            try:
                fields[name] = parse_value(value, output_fields[name].annotation)
            except ValueError as exc:
                raise _parse_error(
                    self.name,
                    signature,
                    completion,
                    detail=f"Failed to parse field {name}: {exc}",
                    parsed=fields,
                ) from exc
        fields = apply_output_field_defaults(signature, fields)
        if fields.keys() != output_fields.keys():
            raise _parse_error(self.name, signature, completion, parsed=fields)
        return fields
