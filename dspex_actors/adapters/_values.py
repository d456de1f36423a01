"""Field values and their types, as DSPy 3.4.1 writes and reads them.

Type names and type notes for prompts, values rendered as prompt text, and text read
back into typed values (``parse_value``). Pure functions; shared caches are plain dicts
whose races are harmless. ``parse_value`` raises ``ValueError`` when a value does not fit.
"""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import json
import math
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import TypeAdapter

from dspex_actors.adapters._lenient import loads_lenient
from dspex_actors.signatures import FieldSpec, Signature, annotation_allows_none

__all__ = [
    "LITERAL_EVAL_MAX_CHARS",
    "apply_output_field_defaults",
    "field_description_string",
    "format_field_value",
    "get_annotation_name",
    "parse_value",
    "serialize_for_json",
    "translate_field_type",
    "type_info",
]


# --------------------------------------------------------------------------- type names


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


def field_description_string(fields: Mapping[str, FieldSpec]) -> str:
    """The numbered ``1. `name` (type): desc`` list of the system prompt."""
    lines = []
    for index, (name, spec) in enumerate(fields.items()):
        desc = spec.desc if spec.desc != f"${{{name}}}" else ""
        line = f"{index + 1}. `{name}` ({get_annotation_name(spec.annotation)}): {desc}"
        if spec.constraints:
            line += f"\nConstraints: {spec.constraints}"
        lines.append(line)
    return "\n".join(lines).strip()


def type_info(spec: FieldSpec) -> str:
    """The ``(must be formatted as a valid Python T)`` note for non-``str`` outputs."""
    if spec.annotation is not str:
        return f" (must be formatted as a valid Python {get_annotation_name(spec.annotation)})"
    return ""


# --------------------------------------------------------------------------- values -> text


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


# --------------------------------------------------------------------------- text -> values

#: Longest text ``parse_value`` gives to ``ast.literal_eval`` (linear, but ~4 us and
#: ~500 bytes per character: 16 KiB is ~60 ms and ~8 MB).
LITERAL_EVAL_MAX_CHARS = 16_384


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
    if isinstance(identifier, str) and identifier in enum_type.__members__:  # a dict is unhashable
        return enum_type[identifier]
    raise ValueError(
        f"{_excerpt(identifier)} is not a valid name or value for the enum {enum_type.__name__}"
    )


def _excerpt(value: Any, limit: int = 200) -> str:
    """``value`` as short text for an error: cut to ``limit`` characters, never raising
    (``str`` of a 5,000-digit int raises ``ValueError``)."""
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception:  # any failure to show a value only hides it
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def parse_value(value: Any, annotation: Any) -> Any:
    """Convert an LM-produced value (usually text) to ``annotation``, as DSPy does.

    ``str`` keeps the text; ``Literal`` accepts the value bare, quoted or as
    ``Literal['x']``; other types read the text as JSON (forgivingly), then as a Python
    literal, then as the plain string, and validate the result with pydantic (lax mode:
    ``"42"`` -> 42, ``"yes"`` -> True). Time is linear in the text's length (see the
    bounds in ``_lenient`` and :data:`LITERAL_EVAL_MAX_CHARS`). Raises ``ValueError``
    (pydantic's ``ValidationError`` is one) when the value does not fit; the adapters
    turn any failure here into ``AdapterParseError``.
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
    candidate = loads_lenient(value)
    if isinstance(candidate, str) and candidate == "" and value != "":
        candidate = _literal_or_text(value)
    return _validate(annotation, candidate)


def _literal_or_text(value: str) -> Any:
    """``value`` as a Python literal (``(1, 2)``, ``{'a': 1}``), else ``value`` itself.

    Texts over ``LITERAL_EVAL_MAX_CHARS`` stay text: ``ast.literal_eval`` is linear but
    heavy (about 4 us and 500 bytes per character).
    """
    if len(value) > LITERAL_EVAL_MAX_CHARS:
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


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
