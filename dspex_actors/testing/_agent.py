"""The rule server playing a ReAct agent (DSPy's ``next_thought`` / ``next_tool_name`` /
``next_tool_args`` prompt). Pure functions of the request body, safe from any thread.

The rules (docs/testing.md):

* the tools are read from the numbered tool list of the system prompt;
* the plan is the tools named in the question, in order of mention (a repeated name
  is called again); a name may be followed by a JSON object of arguments,
  ``search {"query": "owls"}``; with no tool named, the first tool is called once;
* each step calls the next tool of the plan (the trajectory's ``tool_name_N``
  sections say how many ran), then ``finish``; arguments not given are made from the
  tool's schema (defaults left out; strings get the question);
* the extract step (a ``trajectory`` input, no tool outputs) answers with the last
  observation that is not ``Completed.``.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from typing import Any, Final

_TOOL_LINE: Final = re.compile(
    r"^\s*\(\d+\) (\w+)(?:, whose description is <desc>.*</desc>)?\. "
    r"It takes arguments (\{.*\})\.\s*$"
)
_SCHEMA_VALUES: Final[dict[str, Any]] = {
    "integer": 1,
    "number": 1.0,
    "boolean": True,
    "array": [],
    "object": {},
    "null": None,
}


def read_tools(system: str) -> dict[str, dict[str, Any]]:
    """Tool name -> argument schemas, from the ``(n) name, whose description...`` lines."""
    tools: dict[str, dict[str, Any]] = {}
    for line in system.splitlines():
        match = _TOOL_LINE.match(line)
        if match is None:
            continue
        try:
            args = ast.literal_eval(match.group(2))
        except (ValueError, SyntaxError, RecursionError):
            args = {}
        tools[match.group(1)] = args if isinstance(args, dict) else {}
    return tools


def plan(question: str, tools: Mapping[str, Any]) -> list[tuple[str, dict[str, Any] | None]]:
    """The tool calls the question asks for, in order (see the module's rules)."""
    names = [n for n in tools if n != "finish"]
    if not names:
        return []
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b(\s*\{[^{}]*\})?")
    steps: list[tuple[str, dict[str, Any] | None]] = []
    for match in pattern.finditer(question):
        given: dict[str, Any] | None = None
        if match.group(2):
            try:
                loaded = json.loads(match.group(2))
            except ValueError:
                loaded = None
            given = loaded if isinstance(loaded, dict) else None
        steps.append((match.group(1), given))
    return steps or [(names[0], None)]


def _args_from_schema(schemas: Mapping[str, Any], question: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name, schema in schemas.items():
        if not isinstance(schema, dict) or "default" in schema:
            continue
        kind = str(schema.get("type", "string"))
        args[name] = _SCHEMA_VALUES.get(kind, question)
    return args


def agent_step(system: str, blocks: Mapping[str, str], question: str) -> dict[str, Any]:
    """``next_thought``, ``next_tool_name``, ``next_tool_args`` for this turn."""
    tools = read_tools(system)
    steps = plan(question, tools)
    # Steps done: one past the highest step number (a truncated trajectory lacks the first).
    numbers = [int(m.group(1)) for n in blocks if (m := re.fullmatch(r"tool_name_(\d+)", n))]
    done = max(numbers) + 1 if numbers else 0
    if done >= len(steps):
        return {
            "next_thought": f"All {done} tool call(s) are done; finishing.",
            "next_tool_name": "finish",
            "next_tool_args": {},
        }
    name, given = steps[done]
    args = given if given is not None else _args_from_schema(tools.get(name, {}), question)
    return {
        "next_thought": f"Step {done + 1}: calling {name}.",
        "next_tool_name": name,
        "next_tool_args": args,
    }


def last_observation(blocks: Mapping[str, str]) -> str | None:
    """The last ``observation_N`` of the trajectory that is not ``Completed.``."""
    found: list[tuple[int, str]] = []
    for name, value in blocks.items():
        match = re.fullmatch(r"observation_(\d+)", name)
        if match and value.strip() != "Completed.":
            found.append((int(match.group(1)), value.strip()))
    return max(found)[1] if found else None


def agent_values(body: Mapping[str, Any], output_names: list[str]) -> dict[str, Any] | None:
    """The values the agent rules give for this request, or ``None`` if they do not apply.

    A ReAct step gets all three tool outputs; the extract step gets its ``answer`` (or
    its first output other than ``reasoning``) from the last observation.
    """
    from dspex_actors.testing._prompt import _strip_respond, content_text, split_blocks

    messages = [m for m in body.get("messages", ()) if isinstance(m, dict)]
    system = "\n\n".join(
        content_text(m.get("content")) for m in messages if m.get("role") == "system"
    )
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        return None
    blocks = split_blocks(_strip_respond(content_text(users[-1].get("content")))[0])
    if "trajectory" not in blocks:
        return None
    question = blocks.get("question") or next(iter(blocks.values()), "")
    if {"next_tool_name", "next_tool_args"} <= set(output_names):
        return agent_step(system, blocks, question)
    observation = last_observation(blocks)
    targets = [n for n in output_names if n == "answer"] or [
        n for n in output_names if n != "reasoning"
    ]
    if observation is None or not targets:
        return None
    return {targets[0]: observation}
