"""Signature classes: the typed input -> output contract of an LM call, as in DSPy 3.x.

:class:`Signature` (a pydantic model class, never instantiated) and its metaclass, which
turns the declared fields into ordered :class:`FieldSpec` views; the string form is parsed
in ``_parse``. Signature classes are immutable values, shared freely between threads.
"""

from __future__ import annotations

import copy
import inspect
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any, Union, cast, get_args, get_origin

from pydantic import BaseModel, create_model
from pydantic._internal._model_construction import ModelMetaclass
from pydantic.fields import FieldInfo

if sys.version_info >= (3, 14):  # pragma: no cover - PEP 649 class namespaces
    import annotationlib

from dspex_actors.signatures._errors import InputFieldsError, SignatureError
from dspex_actors.signatures._fields import (
    FIELD_TYPE_KEY,
    IS_TYPE_UNDEFINED,
    FieldKind,
    FieldSpec,
    field_extra,
    field_kind,
    infer_prefix,
)
from dspex_actors.signatures._parse import check_name, is_type_like, parse_signature

__all__ = [
    "InputFieldsError",
    "Signature",
    "SignatureError",
    "SignatureMeta",
    "annotation_allows_none",
    "ensure_signature",
    "make_signature",
]


# --------------------------------------------------------------------------- helpers


def annotation_allows_none(annotation: Any) -> bool:
    """Whether a type admits ``None`` (``Optional[X]``, ``X | None``, ``None``); DSPy's rule."""
    if annotation is None or annotation is type(None):
        return True
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        args = get_args(annotation)
        return bool(args) and annotation_allows_none(args[0])
    if origin is Union or origin is types.UnionType:
        return any(annotation_allows_none(arg) for arg in get_args(annotation))
    return False


def _default_instructions(inputs: list[str], outputs: list[str]) -> str:
    inputs_ = ", ".join(f"`{name}`" for name in inputs)
    outputs_ = ", ".join(f"`{name}`" for name in outputs)
    return f"Given the fields {inputs_}, produce the fields {outputs_}."


def _root_signature(cls: type) -> bool:
    return cls.__dict__.get("_dspex_root_signature", False) is True


def _raw_annotations(namespace: dict[str, Any]) -> dict[str, Any]:
    annotations = namespace.get("__annotations__")
    if annotations is None and sys.version_info >= (3, 14):  # pragma: no cover - PEP 649
        annotate = annotationlib.get_annotate_from_class_namespace(namespace)
        annotations = (
            annotationlib.call_annotate_function(annotate, format=annotationlib.Format.FORWARDREF)
            if annotate
            else {}
        )
    return dict(annotations or {})


# --------------------------------------------------------------------------- metaclass

# Names of SignatureMeta's properties: as fields they would be hidden by the properties.
_RESERVED_FIELD_NAMES = frozenset(
    {"instructions", "fields", "input_fields", "output_fields", "signature"}
)


class SignatureMeta(ModelMetaclass):
    """Metaclass of :class:`Signature`: class-level properties and ``Signature("a -> b")``.

    Calling ``Signature(...)`` itself builds a new signature class (see
    :func:`make_signature`); calling a subclass instantiates the pydantic model as usual
    (nothing in this package does that). ``Signature`` declares a typing-only ``__new__``
    so that type checkers see ``Signature("a -> b")`` as ``type[Signature]``.
    """

    _signature_fields: dict[str, FieldSpec]

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if _root_signature(cls):
            return make_signature(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def __new__(
        mcs,
        cls_name: str,
        bases: tuple[type[Any], ...],
        namespace: dict[str, Any],
        **kwargs: Any,
    ) -> SignatureMeta:
        if not any(isinstance(base, SignatureMeta) for base in bases):
            # The root `Signature` class itself.
            cls = cast("SignatureMeta", super().__new__(mcs, cls_name, bases, namespace, **kwargs))
            type.__setattr__(cls, "_dspex_root_signature", True)
            cls._signature_fields = {}
            return cls
        untyped = _prepare_namespace(cls_name, namespace)
        try:
            cls = cast("SignatureMeta", super().__new__(mcs, cls_name, bases, namespace, **kwargs))
        except (TypeError, NameError) as exc:
            raise SignatureError(f"Invalid signature class {cls_name!r}: {exc}") from exc
        if cls.__doc__ is None:
            cls.__doc__ = _inherited_instructions(bases)
        specs = _field_specs(cast("type[BaseModel]", cls), cls_name, untyped)
        inputs = [name for name, spec in specs.items() if spec.kind == "input"]
        outputs = [name for name, spec in specs.items() if spec.kind == "output"]
        cls._signature_fields = {name: specs[name] for name in inputs + outputs}
        if cls.__doc__ is None:
            cls.__doc__ = _default_instructions(inputs, outputs)
        return cls

    @property
    def instructions(cls) -> str:
        """The instructions (the docstring, ``inspect.cleandoc``-ed, as in DSPy)."""
        return inspect.cleandoc(cls.__doc__ or "")

    @property
    def fields(cls) -> dict[str, FieldSpec]:
        """All fields, inputs first then outputs, each in declaration order (a new dict)."""
        return dict(cls._signature_fields)

    @property
    def input_fields(cls) -> dict[str, FieldSpec]:
        """The input fields in declaration order (a new dict)."""
        return {n: s for n, s in cls._signature_fields.items() if s.kind == "input"}

    @property
    def output_fields(cls) -> dict[str, FieldSpec]:
        """The output fields in declaration order (a new dict)."""
        return {n: s for n, s in cls._signature_fields.items() if s.kind == "output"}

    @property
    def signature(cls) -> str:
        """The ``"a, b -> c"`` string form (names only)."""
        fields = cls._signature_fields.values()
        inputs = ", ".join(s.name for s in fields if s.kind == "input")
        outputs = ", ".join(s.name for s in fields if s.kind == "output")
        return f"{inputs} -> {outputs}"

    def __repr__(cls) -> str:
        if _root_signature(cls):
            return super().__repr__()
        field_reprs = "\n    ".join(
            f"{s.name}: {_type_text(s.annotation)} = {s.kind.capitalize()}Field(desc={s.desc!r})"
            for s in cls._signature_fields.values()
        )
        return (
            f"{cls.__name__}({cls.signature}\n"
            f"    instructions={cls.instructions!r}\n    {field_reprs}\n)"
        )


def _prepare_namespace(cls_name: str, namespace: dict[str, Any]) -> set[str]:
    """Step 1 of a signature class: check field names, copy the field objects, give
    untyped fields ``str`` and order ``__annotations__`` by declaration. Returns the
    names of the fields declared without a type. Mutates ``namespace``.
    """
    field_order = [name for name, value in namespace.items() if isinstance(value, FieldInfo)]
    reserved = sorted(set(field_order) & _RESERVED_FIELD_NAMES)
    if reserved:
        raise SignatureError(
            f"Invalid signature class {cls_name!r}: field name(s) {', '.join(reserved)} "
            "are reserved (class-level Signature attributes)"
        )
    annotations = _raw_annotations(namespace)
    untyped: set[str] = set()
    for name in field_order:
        # Private copies: the caller's FieldInfo objects are never touched.
        namespace[name] = copy.deepcopy(namespace[name])
        if not name.startswith("__") and name not in annotations:
            annotations[name] = str
            untyped.add(name)
    ordered = {name: annotations[name] for name in field_order if name in annotations}
    ordered.update({k: v for k, v in annotations.items() if k not in ordered})
    namespace["__annotations__"] = ordered
    return untyped


def _inherited_instructions(bases: tuple[type[Any], ...]) -> str | None:
    """Step 2: the docstring of the first parent signature that has one (not the root's)."""
    for base in bases:
        if isinstance(base, SignatureMeta) and not _root_signature(base):
            doc = base.__doc__
            if doc is not None and doc != "":
                return doc
    return None


def _field_specs(model: type[BaseModel], cls_name: str, untyped: set[str]) -> dict[str, FieldSpec]:
    """Step 3: a :class:`FieldSpec` per model field, filling in DSPy's default ``prefix``
    and ``desc`` (each field gets its own metadata dict). Raises :class:`SignatureError`
    for a field not made by InputField/OutputField.
    """
    specs: dict[str, FieldSpec] = {}
    for name, info in model.model_fields.items():
        extra = dict(field_extra(info))  # fresh dict: never shared with another class
        kind = extra.get(FIELD_TYPE_KEY)
        if kind not in ("input", "output"):
            raise SignatureError(
                f"Field `{name}` in `{cls_name}` must be declared with InputField or OutputField"
            )
        if name in untyped:
            extra[IS_TYPE_UNDEFINED] = True
        extra.setdefault("prefix", infer_prefix(name) + ":")
        extra.setdefault("desc", f"${{{name}}}")
        info.json_schema_extra = extra
        specs[name] = FieldSpec(
            name=name,
            kind=cast("FieldKind", kind),
            annotation=info.annotation if info.annotation is not None else type(None),
            desc=extra["desc"],
            prefix=extra["prefix"],
            info=info,
        )
    return specs


def _type_text(annotation: Any) -> str:
    if isinstance(annotation, type) and get_origin(annotation) is None:
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


# --------------------------------------------------------------------------- Signature


class Signature(BaseModel, metaclass=SignatureMeta):
    """Base class of all signatures; ``Signature("a -> b", instructions)`` makes a new one.

    Declare one as a class (the docstring is the instructions)::

        class QA(Signature):
            \"\"\"Answer questions with short factoid answers.\"\"\"

            question: str = InputField()
            answer: str = OutputField(desc="often between 1 and 5 words")

    or from a string, which returns a new class like ``dspy.Signature(...)`` does::

        QA = Signature("context: list[str], question -> answer: int", "Answer briefly.")

    Fields written without a type are ``str``. Without instructions the instructions are
    DSPy's default, ``Given the fields `a`, `b`, produce the fields `c`.``. Type names in
    strings are resolved from a fixed table (``str int float bool bytes list dict tuple
    set frozenset``, ``List Dict Tuple Set FrozenSet Optional Union Literal Any``, also as
    ``typing.X``, and ``X | None``) or ``custom_types=``; nothing is imported or
    evaluated, unlike DSPy. Every "modifier" below returns a new class. A malformed
    signature raises :class:`SignatureError`. This docstring is *not* inherited as
    instructions.
    """

    if typing.TYPE_CHECKING:
        # Only for type checkers: `Signature("a -> b")` returns a class (see SignatureMeta).
        def __new__(  # type: ignore[misc]
            cls,
            signature: str | Mapping[str, Any],
            instructions: str | None = None,
            signature_name: str = "StringSignature",
            custom_types: Mapping[str, Any] | None = None,
        ) -> type[Signature]: ...

    @classmethod
    def with_instructions(cls, instructions: str) -> type[Signature]:
        """A new signature class with the same fields and ``instructions``."""
        return make_signature(cls.fields, instructions)

    @classmethod
    def append_instructions(cls, instructions: str) -> type[Signature]:
        """A new signature class with ``instructions`` added after a blank line."""
        return make_signature(cls.fields, f"{cls.instructions}\n\n{instructions}")

    @classmethod
    def with_updated_fields(cls, name: str, type_: Any = None, **kwargs: Any) -> type[Signature]:
        """A new signature class where field ``name`` has ``kwargs`` merged into its metadata.

        ``desc=``/``prefix=`` (DSPy's keys in ``json_schema_extra``) are the usual ones;
        ``type_`` replaces the annotation. Raises :class:`SignatureError` for an unknown name.
        """
        fields = cls.fields
        if name not in fields:
            raise SignatureError(f"{cls.__name__} has no field {name!r}; fields: {list(fields)}")
        info = copy.deepcopy(fields[name].info)
        info.json_schema_extra = {**field_extra(info), **kwargs}
        new_fields: dict[str, Any] = {
            n: ((type_ if type_ is not None else s.annotation), info) if n == name else s
            for n, s in fields.items()
        }
        return make_signature(new_fields, cls.instructions)

    @classmethod
    def prepend(cls, name: str, field: Any, type_: Any = None) -> type[Signature]:
        """A new signature class with ``field`` first among the inputs or outputs (by its kind).

        ``ChainOfThought`` is ``sig.prepend("reasoning", OutputField(desc="${reasoning}"), str)``.
        """
        return cls.insert(0, name, field, type_)

    @classmethod
    def append(cls, name: str, field: Any, type_: Any = None) -> type[Signature]:
        """A new signature class with ``field`` last among the inputs or outputs (by its kind)."""
        return cls.insert(-1, name, field, type_)

    @classmethod
    def insert(cls, index: int, name: str, field: Any, type_: Any = None) -> type[Signature]:
        """A new signature class with ``field`` at ``index`` among the inputs or outputs.

        Negative indices count from the end (``-1`` appends). ``type_`` defaults to the
        field's own annotation, else ``str``. Raises :class:`SignatureError` when ``field``
        is not an InputField/OutputField, the name exists, or the index is out of range.
        """
        if not isinstance(field, FieldInfo) or field_kind(field) is None:
            raise SignatureError(f"Field {name!r} must be made by InputField() or OutputField()")
        if name in cls._signature_fields:
            raise SignatureError(f"{cls.__name__} already has a field {name!r}")
        if type_ is None:
            type_ = field.annotation if field.annotation is not None else str
        kind = field_kind(field)
        inputs: list[tuple[str, Any]] = list(cls.input_fields.items())
        outputs: list[tuple[str, Any]] = list(cls.output_fields.items())
        target = inputs if kind == "input" else outputs
        position = index + len(target) + 1 if index < 0 else index
        if position < 0 or position > len(target):
            raise SignatureError(
                f"Invalid index to insert: {index}, index must be in the range of "
                f"[{-len(target) - 1}, {len(target)}] for {kind} fields"
            )
        target.insert(position, (name, (type_, field)))
        return make_signature(dict(inputs + outputs), cls.instructions)

    @classmethod
    def delete(cls, name: str) -> type[Signature]:
        """A new signature class without field ``name`` (unchanged fields if it is absent)."""
        return make_signature({n: s for n, s in cls.fields.items() if n != name}, cls.instructions)

    @classmethod
    def equals(cls, other: Any) -> bool:
        """Whether ``other`` is a signature with the same instructions and fields.

        Fields must match in name, order, kind, type, desc, prefix and constraints.
        (DSPy compares instructions and the raw metadata dicts only; it ignores types.)
        """
        if not isinstance(other, SignatureMeta) or _root_signature(other):
            return False
        if cls.instructions != other.instructions:
            return False
        mine, theirs = cls.fields, other.fields
        if list(mine) != list(theirs):
            return False
        return all(
            (a.kind, a.annotation, a.desc, a.prefix, a.constraints)
            == (b.kind, b.annotation, b.desc, b.prefix, b.constraints)
            for a, b in zip(mine.values(), theirs.values(), strict=True)
        )

    @classmethod
    def validate_inputs(cls, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Check call inputs against the input fields; return them with defaults filled in.

        An input field may be left out when it has a default (which is filled in) or a
        type that admits ``None`` (left out). Raises :class:`InputFieldsError` (a
        :class:`SignatureError`, a ``ValueError``) naming every missing and unknown field.
        """
        fields = cls.input_fields
        values = dict(inputs)
        unknown = tuple(k for k in values if k not in fields)
        for name, spec in fields.items():
            if name not in values and spec.has_default:
                values[name] = spec.default
        missing = tuple(
            name
            for name, spec in fields.items()
            if name not in values and not annotation_allows_none(spec.annotation)
        )
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing input field(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown input field(s) {', '.join(unknown)}")
            shown = cls.signature if cls.__name__ == "StringSignature" else cls.__name__
            raise InputFieldsError(
                f"signature {shown!r}: {'; '.join(parts)}; "
                f"expected input fields: {', '.join(fields) or '(none)'}",
                missing=missing,
                unknown=unknown,
            )
        return values

    @classmethod
    def dump_state(cls) -> dict[str, Any]:
        """DSPy's saved state of a signature: instructions and each field's prefix/description.

        ``{"instructions": str, "fields": [{"prefix": str, "description": str}, ...]}``,
        fields inputs first, in order (names and types are not saved).
        """
        return {
            "instructions": cls.instructions,
            "fields": [{"prefix": s.prefix, "description": s.desc} for s in cls.fields.values()],
        }

    @classmethod
    def load_state(cls, state: Mapping[str, Any]) -> type[Signature]:
        """A new signature class with instructions and field prefix/desc taken from ``state``.

        Fields are matched by position, as DSPy does (extra saved fields are ignored).
        Raises :class:`SignatureError` when ``state`` does not have DSPy's layout.
        """
        try:
            instructions = state["instructions"]
            saved_fields = list(state["fields"])
            updates = [(str(f["prefix"]), str(f["description"])) for f in saved_fields]
        except (KeyError, TypeError) as exc:
            raise SignatureError(f"Invalid saved signature state: {exc!r}") from exc
        if not isinstance(instructions, str):
            raise SignatureError("Invalid saved signature state: instructions must be a string")
        new_fields: dict[str, Any] = {}
        for index, (name, spec) in enumerate(cls.fields.items()):
            info = copy.deepcopy(spec.info)
            if index < len(updates):
                prefix, desc = updates[index]
                info.json_schema_extra = {**field_extra(info), "prefix": prefix, "desc": desc}
            new_fields[name] = (spec.annotation, info)
        return make_signature(new_fields, instructions, signature_name=cls.__name__)


# --------------------------------------------------------------------------- construction


def ensure_signature(
    signature: str | type[Signature], instructions: str | None = None
) -> type[Signature]:
    """Return ``signature`` as a signature class, parsing it if it is a string.

    Raises :class:`SignatureError` for a malformed string, for ``instructions`` given
    with a class (as DSPy does), or for anything that is neither.
    """
    if isinstance(signature, str):
        return make_signature(signature, instructions)
    if isinstance(signature, SignatureMeta) and not _root_signature(signature):
        if instructions is not None:
            raise SignatureError("Don't specify instructions when initializing with a Signature")
        return signature
    raise SignatureError(f"Expected a signature string or Signature class, got {signature!r}")


def make_signature(
    signature: str | Mapping[str, Any],
    instructions: str | None = None,
    signature_name: str = "StringSignature",
    custom_types: Mapping[str, Any] | None = None,
) -> type[Signature]:
    """Build a new signature class (what ``Signature(...)`` does).

    Args:
        signature: ``"a, b: int -> c: list[str]"``, or a mapping ``name ->`` ``FieldInfo``
            (from InputField/OutputField), ``(type, FieldInfo)``, or :class:`FieldSpec`.
        instructions: the instructions; ``None`` means DSPy's default text.
        signature_name: the class name (DSPy's default ``"StringSignature"``).
        custom_types: extra type names usable in a signature string, e.g.
            ``{"Doc": Doc}`` for ``"doc: Doc -> summary"`` (dotted names allowed).

    Raises :class:`SignatureError` for a malformed string or field.
    """
    if isinstance(signature, str):
        fields: dict[str, tuple[Any, FieldInfo]] = parse_signature(signature, custom_types or {})
    elif isinstance(signature, Mapping):
        fields = {}
        for name, value in signature.items():
            fields[check_name(name)] = _coerce_field(name, value)
    else:
        raise SignatureError(
            f"Expected a signature string or a mapping of fields, got {signature!r}"
        )
    if instructions is None:
        instructions = _default_instructions(
            [n for n, (_, f) in fields.items() if field_kind(f) == "input"],
            [n for n, (_, f) in fields.items() if field_kind(f) == "output"],
        )
    factory: Any = create_model  # create_model's typed overloads do not cover **fields
    return cast(
        "type[Signature]",
        factory(signature_name, __base__=Signature, __doc__=instructions, **fields),
    )


def _coerce_field(name: str, value: Any) -> tuple[Any, FieldInfo]:
    if isinstance(value, FieldSpec):
        return value.annotation, value.info
    if isinstance(value, FieldInfo):
        type_, info = value.annotation, value
    elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], FieldInfo):
        type_, info = value
    else:
        raise SignatureError(
            f"Field {name!r} must be a FieldInfo (InputField()/OutputField()) or a "
            f"(type, FieldInfo) tuple, got {value!r}"
        )
    if field_kind(info) is None:
        raise SignatureError(f"Field {name!r} must be declared with InputField or OutputField")
    if type_ is None:
        type_ = str
    if not is_type_like(type_):
        raise SignatureError(
            f"Field types must be types, but received: {type_!r} for field {name!r}"
        )
    return type_, info
