"""``dx.ReAct``: DSPy 3.4.1's reason-and-act agent, its tool calls run by tool workers.

The prompts (the ``next_thought`` / ``next_tool_name`` / ``next_tool_args`` step,
the tool list, the ``finish`` tool, the trajectory and the final ``ChainOfThought``
extract) are DSPy's byte for byte (``tests/fixtures/dspy/react.json``). What differs
is where a tool runs: each call is an I/O task of the request's program actor, in
its own short-lived worker (see ``runtime/_tool_worker.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from dspex_actors.adapters import ChatAdapter
from dspex_actors.modules._module import ChainOfThought, Module, Predict
from dspex_actors.modules._tool import Tool, ToolArgsError
from dspex_actors.primitives import AdapterParseError, LMBadRequest, Prediction, logger
from dspex_actors.runtime import ToolFailure, call_tool, current_program
from dspex_actors.signatures import InputField, OutputField, Signature, ensure_signature

__all__ = ["ContextWindowExceeded", "ReAct"]

_CONTEXT_WINDOW_MARKERS = (
    "context_length_exceeded",
    "context window",
    "context length",
    "maximum context",
    "too many tokens",
)


class ContextWindowExceeded(LMBadRequest):
    """The prompt does not fit the model's context window, even with the trajectory cut."""


def is_context_window_error(error: BaseException) -> bool:
    """Whether an LM error says the prompt was too long for the context window."""
    if isinstance(error, ContextWindowExceeded):
        return True
    text = str(error).lower()
    return isinstance(error, LMBadRequest) and any(m in text for m in _CONTEXT_WINDOW_MARKERS)


def _finish() -> str:
    return "Completed."


class ReAct(Module):
    """Reason and act with tools (DSPy's ``dspy.ReAct``): ``ReAct(signature, tools, max_iters=20)``.

    ``tools`` are functions, callables or :class:`Tool` objects. Calling the agent
    returns a :class:`Prediction` with the signature's outputs and ``trajectory``
    (``thought_i``, ``tool_name_i``, ``tool_args_i``, ``observation_i``). A tool that
    raises, times out or gets bad arguments becomes an ``Execution error in
    {name}: ...`` observation and the loop goes on. Saved predictors: ``react`` and
    ``extract.predict`` (DSPy's layout).

    Threading: as every module, callable from many threads; a run never mutates it.

    Raises, at construction: ``SignatureError`` for a bad signature, ``ValueError`` for
    two tools of one name or ``max_iters < 1``.
    """

    def __init__(
        self,
        signature: str | type[Signature],
        tools: list[Callable[..., Any] | Tool],
        max_iters: int = 20,
    ) -> None:
        if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
            raise ValueError(f"max_iters must be an int >= 1, got {max_iters!r}")
        self.signature = signature = ensure_signature(signature)
        self.max_iters = max_iters
        made = [t if isinstance(t, Tool) else Tool(t) for t in tools]
        by_name: dict[str, Tool] = {}
        for tool in made:
            if tool.name in by_name or tool.name == "finish":
                raise ValueError(f"two tools are named {tool.name!r} (finish is ReAct's own)")
            by_name[tool.name] = tool
        inputs = ", ".join(f"`{k}`" for k in signature.input_fields)
        outputs = ", ".join(f"`{k}`" for k in signature.output_fields)
        by_name["finish"] = Tool(
            _finish,
            name="finish",
            desc="Marks the task as complete. That is, signals that all information for "
            f"producing the outputs, i.e. {outputs}, are now available to be extracted.",
            args={},
        )
        self.tools = by_name
        self.react = Predict(_react_signature(signature, by_name, inputs, outputs))
        fallback = Signature(
            {**signature.input_fields, **signature.output_fields}, signature.instructions
        ).append("trajectory", InputField(), type_=str)
        self.extract = ChainOfThought(fallback)

    def __repr__(self) -> str:
        return f"ReAct({self.signature.signature!r}, tools={list(self.tools)})"

    def _check_inputs(self, inputs: Mapping[str, Any]) -> None:
        self.signature.validate_inputs({k: v for k, v in inputs.items() if k != "max_iters"})

    # ------------------------------------------------------------------ running

    def forward(self, **input_args: Any) -> Prediction:
        trajectory: dict[str, Any] = {}
        max_iters = input_args.pop("max_iters", self.max_iters)
        for idx in range(max_iters):
            try:
                pred = self._call_truncating(self.react, trajectory, **input_args)
            except ContextWindowExceeded as err:
                logger.warning("react.trajectory_ended", reason=str(err))
                break
            except AdapterParseError as err:  # DSPy: a ValueError, "failed to select a tool"
                logger.warning("react.invalid_tool", error=str(err)[:200])
                break
            trajectory[f"thought_{idx}"] = pred.next_thought
            trajectory[f"tool_name_{idx}"] = pred.next_tool_name
            trajectory[f"tool_args_{idx}"] = pred.next_tool_args
            trajectory[f"observation_{idx}"] = self._observe(
                pred.next_tool_name, pred.next_tool_args
            )
            if pred.next_tool_name == "finish":
                break
        extract = self._call_truncating(self.extract, trajectory, **input_args)
        return Prediction(trajectory=trajectory, **dict(extract.items()))

    def _observe(self, name: str, args: Any) -> Any:
        """What calling tool ``name`` gives: its result or DSPy's execution-error text."""
        tool = self.tools[name]
        try:
            parsed = tool.validate_args(args if isinstance(args, Mapping) else {})
        except ToolArgsError as err:
            return f"Execution error in {name}: {err}"
        if name == "finish":
            return tool.invoke(**parsed)
        program = current_program()
        if program is None:  # forward called outside a program actor: run inline
            try:
                return tool.invoke(**parsed)
            except Exception as err:
                from dspex_actors.runtime import format_error_for_lm

                return f"Execution error in {name}: {format_error_for_lm(err, 5)}"
        outcome = call_tool(
            program,
            lambda: tool.invoke(**parsed),
            label=name,
            timeout=tool.timeout,
            max_retries=tool.max_retries,
        )
        if isinstance(outcome, ToolFailure):
            if outcome.kind == "timeout":
                return f"Execution error in {name}: TimeoutError: {name} {outcome.detail}"
            return f"Execution error in {name}: {outcome.detail}"
        return outcome

    def _format_trajectory(self, trajectory: Mapping[str, Any]) -> str:
        if not trajectory:
            return ""
        adapter = _adapter()
        signature = Signature(f"{', '.join(trajectory)} -> x")
        return adapter.format_user_message_content(signature, trajectory)

    def _call_truncating(
        self, module: Module, trajectory: dict[str, Any], **input_args: Any
    ) -> Prediction:
        """DSPy's ``_call_with_potential_trajectory_truncation``: 3 tries, oldest step cut."""
        last: BaseException | None = None
        for _ in range(3):
            try:
                result: Prediction = module(
                    **input_args, trajectory=self._format_trajectory(trajectory)
                )
                return result
            except LMBadRequest as err:
                if not is_context_window_error(err):
                    raise
                logger.warning("react.trajectory_truncated", steps=len(trajectory) // 4)
                last = err
                trajectory = self.truncate_trajectory(trajectory)
        raise ContextWindowExceeded(
            "The context window was exceeded even after 3 attempts to truncate the trajectory."
        ) from last

    def truncate_trajectory(self, trajectory: dict[str, Any]) -> dict[str, Any]:
        """Drop the oldest tool call (its 4 keys) in place; override for your own rule.

        Raises:
            ContextWindowExceeded: only one tool call is left.
        """
        keys = list(trajectory)
        if len(keys) <= 4:
            raise ContextWindowExceeded(
                "The trajectory is too long so your prompt exceeded the context window, but "
                "the trajectory cannot be truncated because it only has one tool call."
            )
        for key in keys[:4]:
            trajectory.pop(key)
        return trajectory


def _adapter() -> ChatAdapter:
    program = current_program()
    if program is not None:
        return program.runtime.adapter
    return ChatAdapter()


def _react_signature(
    signature: type[Signature], tools: Mapping[str, Tool], inputs: str, outputs: str
) -> type[Signature]:
    instr = [f"{signature.instructions}\n"] if signature.instructions else []
    instr.extend(
        [
            f"You are an Agent. In each episode, you will be given the fields {inputs} as "
            "input. And you can see your past trajectory so far.",
            "Your goal is to use one or more of the supplied tools to collect any necessary "
            f"information for producing {outputs}.\n",
            "To do this, you will interleave next_thought, next_tool_name, and next_tool_args "
            "in each turn, and also when finishing the task.",
            "After each tool call, you receive a resulting observation, which gets appended "
            "to your trajectory.\n",
            "When writing next_thought, you may reason about the current situation and plan "
            "for future steps.",
            "When selecting the next_tool_name and its next_tool_args, the tool must be one of:\n",
        ]
    )
    for idx, tool in enumerate(tools.values()):
        instr.append(f"({idx + 1}) {tool}")
    instr.append(
        "When providing `next_tool_args`, the value inside the field must be in JSON format"
    )
    names: Any = Literal[tuple(tools)]
    return (
        Signature({**signature.input_fields}, "\n".join(instr))
        .append("trajectory", InputField(), type_=str)
        .append("next_thought", OutputField(), type_=str)
        .append("next_tool_name", OutputField(), type_=names)
        .append("next_tool_args", OutputField(), type_=dict[str, Any])
    )
