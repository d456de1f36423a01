"""The answering rules: a value for each output field, rendered in the prompt's format.

:class:`Rules` turns a chat-completions body into completion text (ChatAdapter
``[[ ## field ## ]]`` blocks, a JSON object, or plain text). docs/testing.md
lists what each field type gets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from dspex_actors.testing._agent import agent_values
from dspex_actors.testing._knowledge import STOPWORDS, Knowledge, tokens
from dspex_actors.testing._prompt import OutField, Prompt, base_type, demo_values, read_prompt
from dspex_actors.testing._solve import (
    NUMBER_RE,
    WORD_RE,
    Solution,
    format_number,
    reasoning,
    solve,
)

COMPLETED: Final = "[[ ## completed ## ]]"
"""The marker that ends every ChatAdapter-format completion."""

_REASONING_NAMES: Final = frozenset(
    {"reasoning", "rationale", "thought", "thoughts", "explanation"}
)
_CONFIDENCE_HINTS: Final = ("confidence", "probability", "prob", "score", "certainty")
_NEGATIONS: Final = frozenset(
    {"not", "no", "never", "false", "isn't", "aren't", "doesn't", "don't"}
)
_SEQUENCE_PREFIXES: Final = ("list[", "List[", "tuple[", "set[")

BARE_ANSWER: Final = "reply with the bare answer"
"""An instruction holding this phrase (any case) gets bare answers (``Paris``, not a sentence)."""

PROPOSALS: Final = {
    "Keep the instruction clear and concise.": (
        "Reply with the bare answer only: no sentence and no final period."
    ),
    "": "Read the question carefully and answer it in a full sentence.",
}
"""What a ``proposed_instruction`` output field gets, by the tip found among the inputs
(DSPy's proposer tips); any other tip gets :data:`OTHER_PROPOSAL`."""

OTHER_PROPOSAL: Final = "Think about the question, then state the answer as a sentence."
_OTHER_TIPS: Final = (
    "Don't be afraid to be creative",
    "very informative and descriptive",
    "high stakes scenario",
    "Include a persona",
)


def _verbose(answer: str) -> str:
    return f"The answer is {answer.rstrip('.')}."


def _render(value: Any) -> str:
    """A field value as ChatAdapter text (Python-style bools, JSON for containers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return format_number(value) if not value.is_integer() else f"{value:.1f}"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _pick_option(options: Sequence[str], question: str, answer: str) -> str:
    """The option named in the question, else the one equal to the answer, else the first."""
    low = f" {' '.join(tokens(question))} "
    for option in options:
        toks = tokens(option)
        if toks and f" {' '.join(toks)} " in low:
            return option
    for option in options:
        if option.lower() == answer.lower():
            return option
    return options[0]


def _number_value(base: str, name: str, sol: Solution, words: Sequence[str]) -> Any:
    """An ``int``/``float`` field: the number found, a confidence, or the word count."""
    if base == "int":
        return round(sol.number) if sol.number is not None else len(words)
    if sol.number is not None:
        return sol.number
    if any(h in name for h in _CONFIDENCE_HINTS):
        return 0.9 if sol.how != "fallback" else 0.5
    return float(len(words))


def _sequence_value(base: str, question: str, words: Sequence[str]) -> list[Any]:
    """A list-like field: the question's numbers, or up to three distinct content words."""
    inner = base[base.find("[") + 1 : -1].strip() if "[" in base else "str"
    if inner in ("int", "float"):
        nums = [float(n) for n in NUMBER_RE.findall(question)] or [1.0, 2.0]
        return [round(n) if inner == "int" else n for n in nums]
    seen: list[str] = []
    for w in words:
        if len(w) >= 3 and w.lower() not in STOPWORDS and w not in seen:
            seen.append(w)
        if len(seen) == 3:
            break
    return seen or ["a", "b"]


def _schema_scalar(kind: object, sol: Solution) -> Any:
    """A minimal value of a non-object JSON-schema type (strings get the answer)."""
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


def _from_schema(
    schema: Mapping[str, Any], root: Mapping[str, Any], sol: Solution, depth: int
) -> Any:
    """A minimal instance of a JSON schema (``$ref``, ``anyOf`` and enums followed)."""
    if depth > 8:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _from_schema(target, root, sol, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        alts = schema.get(key)
        if isinstance(alts, list) and alts:
            usable = [a for a in alts if isinstance(a, dict) and a.get("type") != "null"]
            return _from_schema(usable[0] if usable else alts[0], root, sol, depth + 1)
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {
            str(k): _from_schema(v, root, sol, depth + 1)
            for k, v in props.items()
            if isinstance(v, dict)
        }
    return _schema_scalar(kind, sol)


def _proposal(text: str) -> str:
    """An instruction proposal: by the first known non-empty tip in the inputs, else the default."""
    for tip, proposal in PROPOSALS.items():
        if tip and tip in text:
            return proposal
    if any(tip in text for tip in _OTHER_TIPS):
        return OTHER_PROPOSAL
    return PROPOSALS[""]


class Rules:
    """The rule engine: turns a chat-completions body into completion text.

    Stateless after construction (the knowledge table is read-only;
    ``follow_demos`` is a plain flag), so one instance serves all handler
    threads. Never raises on odd prompts: anything it cannot parse is answered
    by the fallback rules.
    """

    def __init__(self, knowledge: Mapping[str, str], follow_demos: bool) -> None:
        self.follow_demos = follow_demos
        self._knowledge = Knowledge(knowledge)

    def complete(self, body: Mapping[str, Any], *, bad_format: bool = False) -> str:
        """The completion text for a request body (``bad_format``: ignore the format)."""
        prompt = read_prompt(body)
        sol = solve(self._knowledge, prompt.question, prompt.all_text)
        if bad_format:
            return f"Sure! I think it is {sol.answer}, but I will not use the requested format."
        if not prompt.outputs:
            if prompt.json_mode:
                return json.dumps({"answer": _verbose(sol.answer)}, indent=2, ensure_ascii=False)
            return _verbose(sol.answer)
        values = self._values(prompt, sol)
        agent = agent_values(body, list(values))
        if agent is not None:
            values.update(agent)
        if prompt.json_mode:
            return json.dumps(values, indent=2, ensure_ascii=False)
        parts = [f"[[ ## {name} ## ]]\n{_render(value)}" for name, value in values.items()]
        parts.append(COMPLETED)
        return "\n\n".join(parts)

    def _values(self, prompt: Prompt, sol: Solution) -> dict[str, Any]:
        """A value for every output field of ``prompt``, in field order."""
        demos = demo_values(prompt.history, prompt.json_mode)
        bare = BARE_ANSWER in prompt.system.lower()
        values = {
            field.name: self._value(field, sol, prompt.question, demos.get(field.name))
            for field in prompt.outputs
        }
        for field in prompt.outputs:
            name = field.name
            if name == "proposed_instruction" and isinstance(values[name], str):
                values[name] = _proposal(prompt.all_text)
            elif bare and values[name] == self._styled(sol.answer, demos.get(name)):
                values[name] = sol.answer  # the instruction asked for the bare answer
        return values

    def _styled(self, answer: str, demos: Sequence[str] | None) -> str:
        """Verbose without demos; the demos' bare style and case when they are short."""
        if not self.follow_demos or not demos:
            return _verbose(answer)
        if any(len(d.split()) > 3 for d in demos):
            return _verbose(answer)
        lettered = [d for d in demos if any(c.isalpha() for c in d)]
        if lettered and all(d == d.lower() for d in lettered):
            return answer.lower()
        if lettered and all(d == d.upper() for d in lettered):
            return answer.upper()
        return answer

    def _value(
        self, field: OutField, sol: Solution, question: str, demos: Sequence[str] | None
    ) -> Any:
        """The value of one output field, by its options, type and name."""
        name = field.name.lower()
        base = base_type(field.type_text)
        words = WORD_RE.findall(question)
        if field.options:
            return _pick_option(field.options, question, sol.answer)
        if base == "bool":
            return not any(w.lower() in _NEGATIONS for w in words)
        if base in ("int", "float"):
            return _number_value(base, name, sol, words)
        if base.startswith(_SEQUENCE_PREFIXES) or base in ("list", "tuple"):
            return _sequence_value(base, question, words)
        if base.startswith(("dict[", "Dict[")) or base == "dict":
            return {}
        if field.schema is not None and base != "str":
            return _from_schema(field.schema, field.schema, sol, 0)
        if name in _REASONING_NAMES:
            return reasoning(sol)
        return self._styled(sol.answer, demos)
