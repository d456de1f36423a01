"""Signature fields: ``InputField`` / ``OutputField`` and the read-only :class:`FieldSpec` view.

A field is declared exactly as in DSPy 3.x::

    class QA(Signature):
        question: str = InputField(desc="a trivia question")
        answer: str = OutputField()

``InputField`` and ``OutputField`` return a pydantic ``FieldInfo`` whose
``json_schema_extra`` holds the DSPy metadata under DSPy's own keys, so the layout of
a field is the one DSPy has (and dumps into saved programs):

* ``"__dspy_field_type"``: ``"input"`` or ``"output"``;
* ``"desc"``: the description; when not given, the signature sets it to ``"${name}"``;
* ``"prefix"``: when not given, the signature infers it from the name
  (``"search_query"`` -> ``"Search Query:"``, see :func:`infer_prefix`);
* ``"constraints"``: a human-readable rendering of pydantic constraints
  (``ge=1`` -> ``"greater than or equal to: 1"``), shown in prompts;
* ``"IS_TYPE_UNDEFINED"``: set by the signature for fields declared without a type.

Other keyword arguments go to ``pydantic.Field`` (``default``, ``description``, ``ge``...);
``description`` doubles as ``desc`` when ``desc`` is not given (DSPy does the same).
The prefix is kept and saved, but (as in DSPy 3.x) no prompt uses it.

Everything here is pure: no I/O, no shared mutable state. Field objects are copied
when a signature class is built, so reusing one ``OutputField()`` object in several
signatures is safe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = [
    "IS_TYPE_UNDEFINED",
    "FieldKind",
    "FieldSpec",
    "InputField",
    "OutputField",
    "field_extra",
    "field_kind",
    "infer_prefix",
]

FieldKind = Literal["input", "output"]

#: Marker DSPy puts in ``json_schema_extra`` of fields whose type was not written.
IS_TYPE_UNDEFINED = "IS_TYPE_UNDEFINED"
#: Key of the input/output marker in ``json_schema_extra`` (DSPy's name).
FIELD_TYPE_KEY = "__dspy_field_type"

# Arguments that belong to DSPy (stored in json_schema_extra), not to pydantic.Field.
_DSPY_FIELD_ARG_NAMES = frozenset(
    {"desc", "prefix", "format", "parser", FIELD_TYPE_KEY, IS_TYPE_UNDEFINED}
)

# DSPy's rendering of pydantic constraints (dspy/signatures/field.py), in DSPy's order
# of the keyword arguments as given.
_CONSTRAINT_TEXT = {
    "gt": "greater than: ",
    "ge": "greater than or equal to: ",
    "lt": "less than: ",
    "le": "less than or equal to: ",
    "min_length": "minimum length: ",
    "max_length": "maximum length: ",
    "multiple_of": "a multiple of the given number: ",
    "allow_inf_nan": "allow 'inf', '-inf', 'nan' values: ",
}

_pydantic_field: Any = pydantic.Field  # called with a **dict; typed overloads do not apply


def _make_field(
    kind: FieldKind, desc: str | None, prefix: str | None, extra: dict[str, Any]
) -> Any:
    json_schema_extra: dict[str, Any] = {}
    pydantic_kwargs: dict[str, Any] = {}
    if desc is not None:
        json_schema_extra["desc"] = desc
    if prefix is not None:
        json_schema_extra["prefix"] = prefix
    for key, value in extra.items():
        if key in _DSPY_FIELD_ARG_NAMES:
            json_schema_extra[key] = value
        else:
            pydantic_kwargs[key] = value
    if "description" in extra and "desc" not in json_schema_extra:
        json_schema_extra["desc"] = extra["description"]
    constraints = ", ".join(
        f"{_CONSTRAINT_TEXT[key]}{value}" for key, value in extra.items() if key in _CONSTRAINT_TEXT
    )
    if constraints:
        json_schema_extra["constraints"] = constraints
    json_schema_extra[FIELD_TYPE_KEY] = kind
    pydantic_kwargs["json_schema_extra"] = json_schema_extra
    return _pydantic_field(**pydantic_kwargs)


def InputField(desc: str | None = None, prefix: str | None = None, **extra: Any) -> Any:
    """Declare an input field of a signature (DSPy's ``dspy.InputField``).

    Args:
        desc: what the field holds; shown in the system prompt. Defaults to ``"${name}"``
            (which the prompt shows as an empty description).
        prefix: legacy DSPy prefix; saved with the program, not used in prompts.
        **extra: passed to ``pydantic.Field`` (``default=...``, ``ge=...``), except DSPy's
            own keys (``format``, ``parser``) which are kept in ``json_schema_extra``.

    Returns a pydantic ``FieldInfo`` (typed ``Any`` so that ``x: str = InputField()``
    type-checks). Raises whatever ``pydantic.Field`` raises for bad arguments.
    """
    return _make_field("input", desc, prefix, extra)


def OutputField(desc: str | None = None, prefix: str | None = None, **extra: Any) -> Any:
    """Declare an output field of a signature (DSPy's ``dspy.OutputField``).

    Same arguments as :func:`InputField`. A ``default=`` (or an ``Optional`` type) makes
    the output optional: a completion that lacks it parses to the default (or ``None``).
    """
    return _make_field("output", desc, prefix, extra)


def field_extra(info: FieldInfo) -> dict[str, Any]:
    """The ``json_schema_extra`` dict of a field (empty if it has none or a callable)."""
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def field_kind(info: FieldInfo) -> FieldKind | None:
    """``"input"`` / ``"output"`` for fields made by InputField/OutputField, else ``None``."""
    kind = field_extra(info).get(FIELD_TYPE_KEY)
    if kind == "input":
        return "input"
    if kind == "output":
        return "output"
    return None


def infer_prefix(attribute_name: str) -> str:
    """DSPy's prefix inference: ``"camelCaseText"`` -> ``"Camel Case Text"``.

    ``"snake_case_text"`` -> ``"Snake Case Text"``, ``"text2number"`` -> ``"Text 2 Number"``,
    ``"HTMLParser"`` -> ``"HTML Parser"``. (The signature appends ``":"``.)
    """
    s1 = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", attribute_name)
    intermediate = re.sub("([a-z0-9])([A-Z])", r"\1_\2", s1)
    spaced = re.sub(r"([a-zA-Z])(\d)", r"\1_\2", intermediate)
    spaced = re.sub(r"(\d)([a-zA-Z])", r"\1_\2", spaced)
    words = spaced.split("_")
    return " ".join(word if word.isupper() else word.capitalize() for word in words)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Read-only view of one field of a signature class.

    Attributes:
        name: the field name.
        kind: ``"input"`` or ``"output"``.
        annotation: the field's type (``str`` when none was written).
        desc: the description (``"${name}"`` when none was given, as in DSPy).
        prefix: the (legacy) prefix, e.g. ``"Question:"``.
        info: the underlying pydantic ``FieldInfo``; treat it as read-only (signature
            classes are shared between threads and never mutated).
    """

    name: str
    kind: FieldKind
    annotation: Any
    desc: str
    prefix: str
    info: FieldInfo

    @property
    def json_schema_extra(self) -> Mapping[str, Any]:
        """DSPy's metadata dict for the field (a copy; DSPy keys ``desc``, ``prefix``...)."""
        return dict(field_extra(self.info))

    @property
    def constraints(self) -> str | None:
        """Human-readable pydantic constraints (``"greater than: 0"``), or ``None``."""
        value = field_extra(self.info).get("constraints")
        return str(value) if value else None

    @property
    def type_undefined(self) -> bool:
        """Whether the field was declared without a type (and defaulted to ``str``)."""
        return bool(field_extra(self.info).get(IS_TYPE_UNDEFINED, False))

    @property
    def has_default(self) -> bool:
        """Whether the field declares a default or a default factory."""
        return not self.info.is_required()

    @property
    def default(self) -> Any:
        """The default value (factory called), or ``PydanticUndefined`` when there is none."""
        if self.info.is_required():
            return PydanticUndefined
        return self.info.get_default(call_default_factory=True)
