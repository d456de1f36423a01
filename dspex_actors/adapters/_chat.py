"""ChatAdapter (DSPy's ``[[ ## field ## ]]`` sections) and JSONAdapter, its JSON fallback.

Both produce exactly the messages DSPy 3.4.1's adapters produce (byte for byte: prompts,
demos and saved programs move between the two) and parse completions the same way. They
share a module because each needs the other: JSONAdapter is a ChatAdapter (as in DSPy)
and ChatAdapter.fallback() makes one.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dspex_actors.adapters._lenient import first_braced_span, loads_lenient
from dspex_actors.adapters._response_format import JSON_OBJECT, Support, response_format_for
from dspex_actors.adapters._values import (
    apply_output_field_defaults,
    field_description_string,
    format_field_value,
    parse_value,
    serialize_for_json,
    translate_field_type,
    type_info,
)
from dspex_actors.primitives import AdapterParseError, Example
from dspex_actors.signatures import FieldSpec, Signature

__all__ = ["ChatAdapter", "Demo", "JSONAdapter", "Message"]

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


#: System prompts by (adapter class, signature class). Dict reads and writes are atomic
#: under the GIL; two threads formatting the same new key both store the same text.
_SYSTEM_MESSAGES: dict[tuple[type[Any], type[Signature]], str] = {}
_SYSTEM_MESSAGES_MAX = 4096


class ChatAdapter:
    """DSPy's default adapter: ``[[ ## field ## ]]`` sections, byte-identical to DSPy 3.4.

    Args:
        use_json_adapter_fallback: whether :meth:`fallback` offers a :class:`JSONAdapter`
            for one more LM call after a parse failure (DSPy's default, ``True``).

    Stateless and thread-safe; methods never do I/O. DSPy's special types
    (``dspy.Image``, ``History``, ``Tool``...) are not supported.
    """

    name = "ChatAdapter"

    def __init__(self, *, use_json_adapter_fallback: bool = True) -> None:
        self.use_json_adapter_fallback = use_json_adapter_fallback

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def fallback(self) -> ChatAdapter | None:
        """The adapter to retry with (one more LM call) after :class:`AdapterParseError`:
        a :class:`JSONAdapter`, or ``None`` when disabled (DSPy's rule). The protocol, for
        the caller that owns the LM call::

            messages = adapter.format(signature, demos, inputs)
            try:
                return adapter.parse(signature, lm(messages))
            except AdapterParseError:
                fallback = adapter.fallback()
                if fallback is None:
                    raise
                return fallback.parse(signature, lm(fallback.format(signature, demos, inputs)))
        """
        return JSONAdapter() if self.use_json_adapter_fallback else None

    # ------------------------------------------------------------------ format

    def request_overrides(
        self, signature: type[Signature] | None = None, support: Support = "json_object"
    ) -> dict[str, Any]:
        """Request parameters this adapter's LM calls need (none for the chat format).

        ``support`` is what the LM takes as ``response_format``
        (:attr:`dspex_actors.lm.LM.response_format_support`). The predictor's own
        ``config`` wins over these.
        """
        return {}

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
        """Field list, the structure of a turn, and the instructions.

        Remembered per adapter class and signature (both immutable; the text depends
        on nothing else), so a module called many times formats it once.
        """
        key = (type(self), signature)
        text = _SYSTEM_MESSAGES.get(key)
        if text is None:
            text = (
                f"{self.format_field_description(signature)}\n"
                f"{self.format_field_structure(signature)}\n"
                f"{self.format_task_description(signature)}"
            )
            if len(_SYSTEM_MESSAGES) >= _SYSTEM_MESSAGES_MAX:
                _SYSTEM_MESSAGES.clear()  # signatures made per call (string form) must not pile up
            _SYSTEM_MESSAGES[key] = text
        return text

    def format_field_description(self, signature: type[Signature]) -> str:
        """``Your input fields are:`` / ``Your output fields are:`` numbered lists."""
        return (
            f"Your input fields are:\n{field_description_string(signature.input_fields)}\n"
            f"Your output fields are:\n{field_description_string(signature.output_fields)}"
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
            f"`[[ ## {name} ## ]]`{type_info(spec)}"
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
        output_fields = signature.output_fields
        fields: dict[str, Any] = {}
        for name, text in _sections(completion):
            if name in fields or name not in output_fields:
                continue
            try:
                fields[name] = parse_value(text, output_fields[name].annotation)
            except Exception as exc:  # as DSPy: any failure to convert is a parse error
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


def _sections(completion: str) -> Iterator[tuple[str, str]]:
    """``(name, stripped text)`` of each ``[[ ## name ## ]]`` section, in order.

    A header is a line that is, once stripped, the header and maybe text after it (which
    starts the section). Text before the first header is dropped. Linear: only lines
    containing ``[[ ## `` are matched against the header pattern.
    """
    lines = completion.splitlines()
    headers: list[tuple[int, str, str]] = []
    for index in [i for i, line in enumerate(lines) if "[[ ## " in line]:
        stripped = lines[index].strip()
        match = _FIELD_HEADER.match(stripped)
        if match:
            headers.append((index, match.group(1), stripped[match.end() :].strip()))
    ends = [index for index, _, _ in headers[1:]] + [len(lines)] if headers else []
    for (index, name, rest), end in zip(headers, ends, strict=True):
        body = lines[index + 1 : end]
        yield name, "\n".join([rest, *body] if rest else body).strip()


class JSONAdapter(ChatAdapter):
    """DSPy's ``JSONAdapter``: same system prompt idea, outputs as one JSON object.

    Used as :class:`ChatAdapter`'s fallback; it has no fallback of its own. As DSPy
    does, its calls ask the LM for JSON (:meth:`request_overrides`: a strict JSON schema
    of the outputs where the model supports Structured Outputs, else JSON mode
    ``{"type": "json_object"}``, else nothing). Stateless and thread-safe.
    """

    name = "JSONAdapter"

    def __init__(self) -> None:
        super().__init__(use_json_adapter_fallback=False)

    def fallback(self) -> ChatAdapter | None:
        """``None``: the JSON adapter is the last resort."""
        return None

    def request_overrides(
        self, signature: type[Signature] | None = None, support: Support = "json_object"
    ) -> dict[str, Any]:
        """The ``response_format`` DSPy sends for ``signature`` on an LM with ``support``:
        a strict JSON schema of the outputs (``"json_schema"``; JSON mode for an open
        mapping), JSON mode (``"json_object"``, also without a signature), or nothing
        (``None``)."""
        if signature is None:
            return {} if support is None else {"response_format": dict(JSON_OBJECT)}
        response_format = response_format_for(signature, support)
        return {} if response_format is None else {"response_format": response_format}

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
            f"`{name}`{type_info(spec)}" for name, spec in signature.output_fields.items()
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
        data = loads_lenient(completion)
        if not isinstance(data, dict):
            span = first_braced_span(completion)  # DSPy's second try: the first {...}
            if span is not None:
                data = loads_lenient(span)
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
            except Exception as exc:  # any failure to convert is a parse error
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
