"""The string form of a signature: ``"context: list[str], question -> answer: int"``.

Each side of ``->`` is parsed with :mod:`ast` as a ``def``'s parameter list, and type
expressions are resolved against a fixed table of names (plus ``custom_types``), never
evaluated. Pure functions; a malformed string raises :class:`SignatureError`.
"""

from __future__ import annotations

import ast
import typing
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, cast, get_origin

from pydantic.fields import FieldInfo

from dspex_actors.signatures._errors import SignatureError
from dspex_actors.signatures._fields import IS_TYPE_UNDEFINED, InputField, OutputField

__all__ = ["check_name", "is_type_like", "parse_signature"]


def check_name(name: Any) -> str:
    """``name`` if it is a valid field name (an identifier not starting with ``_``).

    Raises :class:`SignatureError` otherwise.
    """
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise SignatureError(f"Field names must be identifiers not starting with '_', got {name!r}")
    return name


def is_type_like(value: Any) -> bool:
    """Whether ``value`` can be a field type: a class, a generic alias or ``Any``."""
    return isinstance(value, type) or get_origin(value) is not None or value is Any


_BUILTIN_NAMES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "bytes": bytes,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "NoneType": type(None),
}
_TYPING_NAMES: dict[str, Any] = {
    "List": typing.List,  # noqa: UP006
    "Dict": typing.Dict,  # noqa: UP006
    "Tuple": typing.Tuple,  # noqa: UP006
    "Set": typing.Set,  # noqa: UP006
    "FrozenSet": typing.FrozenSet,  # noqa: UP006
    "Optional": typing.Optional,
    "Union": typing.Union,
    "Literal": typing.Literal,
    "Any": typing.Any,
}
_GENERICS = {list, dict, tuple, set, frozenset}
# Typed Any: these are subscripted with runtime values, not used as annotations.
_LITERAL: Any = typing.Literal
_UNION: Any = typing.Union
_OPTIONAL: Any = typing.Optional
_ARITY = {list: 1, set: 1, frozenset: 1, dict: 2}


def parse_signature(text: str, custom_types: Mapping[str, Any]) -> dict[str, tuple[Any, FieldInfo]]:
    """``"a, b: int -> c"`` as ``name -> (type, FieldInfo)``, inputs first.

    Raises :class:`SignatureError` quoting ``text`` when it is malformed.
    """
    if text.count("->") != 1:
        raise SignatureError(f"Invalid signature {text!r}: it must contain exactly one '->'")
    inputs_text, outputs_text = text.split("->")
    try:
        inputs = list(_parse_field_list(inputs_text, text, custom_types))
        outputs = list(_parse_field_list(outputs_text, text, custom_types))
    except RecursionError as exc:  # a safety net: the parser itself bounds nesting
        raise SignatureError(f"Invalid signature {_excerpt(text)}: nested too deeply") from exc
    if not outputs:
        raise SignatureError(f"Invalid signature {text!r}: it has no output fields")
    counts = Counter(name for name, _, _ in inputs + outputs)  # linear, not names.count per name
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise SignatureError(
            f"Invalid signature {text!r}: duplicate field name(s) {', '.join(duplicates)}"
        )
    fields: dict[str, tuple[Any, FieldInfo]] = {}
    for name, type_, untyped in inputs:
        marker: dict[str, Any] = {IS_TYPE_UNDEFINED: untyped}
        fields[name] = (type_, InputField(**marker))
    for name, type_, _ in outputs:
        fields[name] = (type_, OutputField())
    return fields


def _parse_field_list(
    part: str, text: str, custom_types: Mapping[str, Any]
) -> Iterator[tuple[str, Any, bool]]:
    """``"a: int, b"`` -> ``("a", int, False), ("b", str, True)``, parsed as a def's parameters."""
    try:
        module = ast.parse(f"def f({part}): pass")
    except SyntaxError as exc:
        raise SignatureError(
            f"Invalid signature {text!r}: cannot parse fields {part.strip()!r} ({exc.msg})"
        ) from exc
    except (RecursionError, MemoryError, ValueError) as exc:  # e.g. a 3,000-way `a | b | ...`
        raise SignatureError(
            f"Invalid signature {_excerpt(text)}: the fields are nested too deeply to parse"
        ) from exc
    func = module.body[0] if len(module.body) == 1 else None
    if (
        not isinstance(func, ast.FunctionDef)
        or func.returns is not None
        or func.decorator_list
        or len(func.body) != 1
        or not isinstance(func.body[0], ast.Pass)
    ):
        raise SignatureError(f"Invalid signature {text!r}: cannot parse fields {part.strip()!r}")
    args = func.args
    if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs or args.defaults:
        raise SignatureError(
            f"Invalid signature {text!r}: fields {part.strip()!r} must be plain "
            "'name' or 'name: type' items (no defaults, '*', '**' or '/')"
        )
    for arg in args.args:
        check_name(arg.arg)
        if arg.annotation is None:
            yield arg.arg, str, True
        else:
            yield arg.arg, _resolve_type(arg.annotation, text, custom_types), False


def _resolve_type(node: ast.expr, text: str, custom_types: Mapping[str, Any]) -> Any:
    result = _type_node(node, text, custom_types)
    if not is_type_like(result):
        raise SignatureError(f"Invalid signature {text!r}: {ast.unparse(node)!r} is not a type")
    return result


def _excerpt(text: str, limit: int = 200) -> str:
    """``repr(text)``, cut to ``limit`` characters so an error about a huge string stays small."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} chars)"


def _type_error(node: ast.AST, text: str, why: str) -> SignatureError:
    try:
        shown = repr(ast.unparse(node))
    except RecursionError:
        shown = "<a deeply nested expression>"
    return SignatureError(f"Invalid signature {text!r}: {shown}: {why}")


def _union_operands(node: ast.BinOp) -> list[ast.expr]:
    """The operands of ``a | b | c`` left to right, walked without recursion (chains are long)."""
    operands: list[ast.expr] = []
    pending: list[ast.expr] = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, ast.BinOp) and isinstance(current.op, ast.BitOr):
            pending.extend((current.right, current.left))
        else:
            operands.append(current)
    return operands


def _apply(base: Any, args: Any, node: ast.AST, text: str) -> Any:
    """``base[args]``; typing's own complaints (``list[int][int]``...) become SignatureError."""
    try:
        return cast(Any, base)[args]
    except (TypeError, ValueError, IndexError, AssertionError) as exc:
        raise _type_error(node, text, f"cannot be built ({type(exc).__name__}: {exc})") from exc


def _type_node(node: ast.expr, text: str, custom_types: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        if node.id in custom_types:
            return custom_types[node.id]
        if node.id in _BUILTIN_NAMES:
            return _BUILTIN_NAMES[node.id]
        if node.id in _TYPING_NAMES:
            return _TYPING_NAMES[node.id]
        raise _type_error(node, text, "unknown type name")
    if isinstance(node, ast.Attribute):
        dotted = _dotted_name(node)
        if dotted is not None and dotted in custom_types:
            return custom_types[dotted]
        if (
            isinstance(node.value, ast.Name)
            and node.value.id == "typing"
            and node.attr in _TYPING_NAMES
        ):
            return _TYPING_NAMES[node.attr]
        raise _type_error(node, text, "unknown type name")
    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    if isinstance(node, ast.Constant):
        raise _type_error(node, text, "not a type")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        members = tuple(_resolve_type(each, text, custom_types) for each in _union_operands(node))
        return _apply(_UNION, members, node, text)  # Optional[int] for `int | None`, as in DSPy
    if isinstance(node, ast.Subscript):
        return _subscript(node, text, custom_types)
    raise _type_error(node, text, "not a supported type expression")


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return f"{base}.{node.attr}" if base is not None else None
    return None


def _literal_value(node: ast.expr, text: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(
        node.value, (str, int, bool, bytes, type(None))
    ):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) is int
    ):
        return -node.operand.value
    raise _type_error(node, text, "Literal values must be str, int, bool, bytes or None constants")


def _subscript(node: ast.Subscript, text: str, custom_types: Mapping[str, Any]) -> Any:
    base = _type_node(node.value, text, custom_types)
    elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    if not elements:  # tuple[()], Literal[()], Union[()]
        raise _type_error(node, text, "needs at least one argument")
    if base is typing.Literal:
        values = tuple(_literal_value(element, text) for element in elements)
        return _apply(_LITERAL, values, node, text)
    generic = get_origin(base) or base  # typing.List -> list
    if (
        generic is tuple
        and len(elements) == 2
        and isinstance(elements[1], ast.Constant)
        and elements[1].value is Ellipsis
    ):
        return _apply(base, (_resolve_type(elements[0], text, custom_types), ...), node, text)
    args = tuple(_resolve_type(element, text, custom_types) for element in elements)
    if base is typing.Optional:
        if len(args) != 1:
            raise _type_error(node, text, "Optional takes exactly one type")
        return _OPTIONAL[args[0]]
    if base is typing.Union:
        return _apply(_UNION, args, node, text)
    if generic in _GENERICS:
        arity = _ARITY.get(generic)
        if arity is not None and len(args) != arity:
            raise _type_error(node, text, f"expected {arity} type argument(s), got {len(args)}")
        return _apply(base, args if len(args) > 1 else args[0], node, text)
    if isinstance(base, type) and hasattr(base, "__class_getitem__"):
        # A user type from custom_types that is generic (e.g. a pydantic generic model).
        return _apply(base, args if len(args) > 1 else args[0], node, text)
    raise _type_error(node, text, "this type cannot be subscripted")
