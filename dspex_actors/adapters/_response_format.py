"""The ``response_format`` of the JSON adapter's calls, as DSPy 3.4.1 sends it.

DSPy's ``JSONAdapter`` asks for OpenAI Structured Outputs when the model supports a
response schema: a pydantic model of the signature's output fields
(``DSPyProgramOutputs``, extra fields forbidden, every property required), which
litellm turns into ``{"type": "json_schema", "json_schema": {...}}`` through OpenAI's
strict-schema transform. It falls back to JSON mode (``{"type": "json_object"}``) for
an output field that is an open mapping (``dict[...]``) or a schema pydantic cannot
build, and sends nothing where the model takes no ``response_format``. Which models
support what is the LM's business (:attr:`dspex_actors.lm.LM.response_format_support`);
here is only the format. Checked against requests captured from real DSPy
(``tests/fixtures/gen_dspy_response_format_fixtures.py``).

Threading: pure functions; the schema of a signature is built once and cached.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Literal, get_origin

import pydantic
from pydantic_core import PydanticUndefined

from dspex_actors.signatures import Signature

__all__ = ["JSON_OBJECT", "Support", "response_format_for"]

#: What an LM takes as ``response_format``: a JSON schema, JSON mode, or nothing.
Support = Literal["json_schema", "json_object"] | None

JSON_OBJECT: dict[str, Any] = {"type": "json_object"}
_MODEL_NAME = "DSPyProgramOutputs"


def response_format_for(signature: type[Signature], support: Support) -> dict[str, Any] | None:
    """The ``response_format`` for ``signature`` on an LM with ``support`` (``None``:
    send none). Never raises: a schema that cannot be built means JSON mode."""
    if support is None:
        return None
    if support == "json_object" or _has_open_mapping(signature):
        return dict(JSON_OBJECT)
    try:
        built = _structured_outputs(signature)
    except (TypeError, ValueError, KeyError):  # a schema the strict transform cannot take
        built = None
    return copy.deepcopy(built) if built is not None else dict(JSON_OBJECT)


def _has_open_mapping(signature: type[Signature]) -> bool:
    return any(get_origin(f.annotation) is dict for f in signature.output_fields.values())


@functools.lru_cache(maxsize=512)
def _structured_outputs(signature: type[Signature]) -> dict[str, Any] | None:
    """DSPy's ``_get_structured_outputs_response_format`` + litellm's
    ``type_to_response_format_param``; ``None`` when pydantic cannot build it."""
    fields: dict[str, Any] = {}
    for name, spec in signature.output_fields.items():
        default = spec.info.default if spec.info is not None else PydanticUndefined
        fields[name] = (spec.annotation, default)
    try:
        model = pydantic.create_model(
            _MODEL_NAME, __config__=pydantic.ConfigDict(extra="forbid"), **fields
        )
        schema: dict[str, Any] = model.model_json_schema()
    except (
        ValueError,
        TypeError,
        pydantic.PydanticSchemaGenerationError,
        pydantic.PydanticInvalidForJsonSchema,
        pydantic.PydanticUserError,
    ):
        return None
    for prop in schema.get("properties", {}).values():
        prop.pop("json_schema_extra", None)
    _enforce_required(schema)
    strict = _ensure_strict(schema, root=schema)
    return {
        "type": "json_schema",
        "json_schema": {"name": _MODEL_NAME, "schema": strict, "strict": True},
    }


def _enforce_required(part: dict[str, Any]) -> None:
    """DSPy's ``enforce_required``: every object lists all its properties as required
    and forbids others, in nested arrays and definitions too."""
    if part.get("type") == "object":
        props = part.get("properties")
        if props is not None:
            part["required"] = list(props.keys())
            part["additionalProperties"] = False
            for sub in props.values():
                if isinstance(sub, dict):
                    _enforce_required(sub)
        else:
            part["properties"] = {}
            part["required"] = []
            part["additionalProperties"] = False
    if part.get("type") == "array" and isinstance(part.get("items"), dict):
        _enforce_required(part["items"])
    for key in ("$defs", "definitions"):
        for sub in part.get(key, {}).values():
            _enforce_required(sub)


def _ensure_strict(node: Any, *, root: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``_ensure_strict_json_schema`` (openai-python, Apache-2.0), which litellm
    applies: the same mutations, in the same order."""
    if not isinstance(node, dict):
        raise TypeError(f"expected a JSON schema object, got {type(node).__name__}")
    for key in ("$defs", "definitions"):
        defs = node.get(key)
        if isinstance(defs, dict):
            for sub in defs.values():
                _ensure_strict(sub, root=root)
    if node.get("type") == "object" and "additionalProperties" not in node:
        node["additionalProperties"] = False
    _strict_children(node, root)
    if "default" in node and node["default"] is None:
        node.pop("default")
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:
        resolved = _resolve(root, ref)
        node.update({**resolved, **node})
        node.pop("$ref")
        return _ensure_strict(node, root=root)
    return node


def _strict_children(node: dict[str, Any], root: dict[str, Any]) -> None:
    properties = node.get("properties")
    if isinstance(properties, dict):
        node["required"] = list(properties.keys())
        node["properties"] = {k: _ensure_strict(v, root=root) for k, v in properties.items()}
    if isinstance(node.get("items"), dict):
        node["items"] = _ensure_strict(node["items"], root=root)
    if isinstance(node.get("anyOf"), list):
        node["anyOf"] = [_ensure_strict(v, root=root) for v in node["anyOf"]]
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1:
            node.update(_ensure_strict(all_of[0], root=root))
            node.pop("allOf")
        else:
            node["allOf"] = [_ensure_strict(v, root=root) for v in all_of]


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"unexpected $ref {ref!r}")
    found: Any = root
    for key in ref[2:].split("/"):
        found = found[key]
    if not isinstance(found, dict):
        raise ValueError(f"$ref {ref!r} does not name a schema object")
    return found
