"""MIPROv2's grounded instruction proposer (DSPy 3.4.1's ``propose/grounded_proposer.py``).

The signatures' instructions and field descriptions are DSPy's, byte for byte
(tests compare the prompts with ones DSPy formats). Each proposer step is one
request module, run like any other request in a program actor through the
compile job's fan-out: :class:`DataSummaryRun` (DSPy's ``create_dataset_summary``,
several prompt-model calls in one request) and :class:`ProposalRun` (describe the
program, describe the module, propose: DSPy's ``GenerateModuleInstruction``).

Differences from DSPy, on purpose:

* ``program_code`` is DSPy's ``get_dspy_source_code`` (:func:`program_code`) but for
  a class whose source cannot be read: DSPy then tries IPython's cell history, here
  program awareness is dropped at once (DSPy drops it when that fails too).
* No ``rollout_id``: proposals are made at ``init_temperature``; with the cache
  on, two identical proposal prompts get the same answer.

Threading: the ``*Run`` modules' ``forward`` runs in a program actor; the helpers
are pure functions.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator, Sequence
from typing import Any

from dspex_actors.modules import Module, Predict
from dspex_actors.primitives import Example, LMError, Prediction
from dspex_actors.signatures import InputField, OutputField, Signature

__all__ = [
    "TIPS",
    "DataSummaryRun",
    "DatasetDescriptor",
    "DatasetDescriptorWithPriorObservations",
    "DescribeModule",
    "DescribeProgram",
    "ObservationSummarizer",
    "ProposalRun",
    "create_example_string",
    "instruction_signature",
    "program_code",
    "strip_prefix",
    "task_demos",
]

TIPS = {
    "none": "",
    "creative": "Don't be afraid to be creative when creating the new instruction!",
    "simple": "Keep the instruction clear and concise.",
    "description": "Make sure your instruction is very informative and descriptive.",
    "high_stakes": (
        "The instruction should include a high stakes scenario in which the LM must solve the task!"
    ),
    "persona": (
        'Include a persona that is relevant to the task in the instruction (ie. "You are a ...")'
    ),
}
"""DSPy's proposer tips, in DSPy's order (the RNG picks one per proposal)."""

MAX_SUMMARY_CALLS = 10
"""DSPy's ``max_calls`` of ``create_dataset_summary`` (batches viewed, the first included)."""


class ObservationSummarizer(Signature):
    """Given a series of observations I have made about my dataset, please summarize them into a brief 2-3 sentence summary which highlights only the most important details."""  # noqa: E501

    observations: str = InputField(desc="Observations I have made about my dataset")
    summary: str = OutputField(
        desc="Two to Three sentence summary of only the most significant highlights of my observations"  # noqa: E501
    )


class DatasetDescriptor(Signature):
    """Given several examples from a dataset please write observations about trends that hold for most or all of the samples. Some areas you may consider in your observations: topics, content, syntax, conciseness, etc. It will be useful to make an educated guess as to the nature of the task this dataset will enable. Don't be afraid to be creative"""  # noqa: E501

    examples: str = InputField(desc="Sample data points from the dataset")
    observations: str = OutputField(
        desc="Somethings that holds true for most or all of the data you observed"
    )


class DatasetDescriptorWithPriorObservations(Signature):
    """Given several examples from a dataset please write observations about trends that hold for most or all of the samples. I will also provide you with a few observations I have already made.  Please add your own observations or if you feel the observations are comprehensive say 'COMPLETE' Some areas you may consider in your observations: topics, content, syntax, conciceness, etc. It will be useful to make an educated guess as to the nature of the task this dataset will enable. Don't be afraid to be creative"""  # noqa: E501

    examples: str = InputField(desc="Sample data points from the dataset")
    prior_observations: str = InputField(desc="Some prior observations I made about the data")
    observations: str = OutputField(
        desc="Somethings that holds true for most or all of the data you observed or COMPLETE if you have nothing to add"  # noqa: E501
    )


class DescribeProgram(Signature):
    """Below is some pseudo-code for a pipeline that solves tasks with calls to language models. Please describe what type of task this program appears to be designed to solve, and how it appears to work."""  # noqa: E501

    program_code: str = InputField(
        desc="Pseudocode for a language model program designed to solve a particular task."
    )
    program_example: str = InputField(desc="An example of the program in use.")
    program_description: str = OutputField(
        desc="Describe what task the program is designed to solve, and how it goes about solving this task."  # noqa: E501
    )


class DescribeModule(Signature):
    """Below is some pseudo-code for a pipeline that solves tasks with calls to language models. Please describe the purpose of one of the specified module in this pipeline."""  # noqa: E501

    program_code: str = InputField(
        desc="Pseudocode for a language model program designed to solve a particular task."
    )
    program_example: str = InputField(desc="An example of the program in use.")
    program_description: str = InputField(
        desc="Summary of the task the program is designed to solve, and how it goes about solving it."  # noqa: E501
    )
    module: str = InputField(desc="The module in the program that we want to describe.")
    module_description: str = OutputField(
        desc="Description of the module's role in the broader program."
    )


_GENERATE_INSTRUCTIONS = "Use the information below to learn about a task that we are trying to solve using calls to an LM, then generate a new instruction that will be used to prompt a Language Model to better solve the task."  # noqa: E501


def instruction_signature(
    *, use_dataset_summary: bool, program_aware: bool, use_tip: bool
) -> type[Signature]:
    """DSPy's ``GenerateSingleModuleInstruction`` with the fields these settings include.

    (MIPROv2 never uses the instruction history, so ``previous_instructions`` is absent.)
    """
    ns: dict[str, Any] = {"__doc__": _GENERATE_INSTRUCTIONS, "__annotations__": {}}

    def add(name: str, field: Any) -> None:
        ns["__annotations__"][name] = str
        ns[name] = field

    if use_dataset_summary:
        add(
            "dataset_description",
            InputField(desc="A description of the dataset that we are using."),
        )
    if program_aware:
        add(
            "program_code",
            InputField(desc="Language model program designed to solve a particular task."),
        )
        add(
            "program_description",
            InputField(
                desc="Summary of the task the program is designed to solve, and how it goes about solving it."  # noqa: E501
            ),
        )
        add("module", InputField(desc="The module to create an instruction for."))
        add(
            "module_description",
            InputField(desc="Description of the module to create an instruction for."),
        )
    add("task_demos", InputField(desc="Example inputs/outputs of our module."))
    add("basic_instruction", InputField(desc="Basic instruction."))
    if use_tip:
        add(
            "tip",
            InputField(desc="A suggestion for how to go about generating the new instruction."),
        )
    add(
        "proposed_instruction",
        OutputField(
            desc="Propose an instruction that will be used to prompt a Language Model to perform this task."  # noqa: E501
        ),
    )
    return type("GenerateSingleModuleInstruction", (Signature,), ns)


_PREFIX_RE = re.compile(r"^[\*\s]*(([\w\'\-]+\s+){0,4}[\w\'\-]+):\s*")


def strip_prefix(text: str) -> str:
    """DSPy's ``strip_prefix``: drop a leading ``Some Label:`` and surrounding quotes."""
    return _PREFIX_RE.sub("", text, count=1).strip('"')


def create_example_string(signature: type[Signature], example: Example) -> str:
    """DSPy's ``create_example_string``: ``<prefix> <value>`` per signature field."""
    lines = []
    for name, spec in signature.fields.items():
        prefix = spec.json_schema_extra.get("prefix")
        lines.append(f"{prefix} {example.get(name)}")
    return "\n".join(lines)


def task_demos(
    signature: type[Signature], sets: Sequence[Sequence[Example]], demo_set_i: int, count: int
) -> str:
    """The ``task_demos`` text for proposal ``demo_set_i`` (DSPy's adjacent-sets gathering).

    Up to ``count`` bootstrapped (``augmented``) demos from set ``demo_set_i``, then the
    sets after it, then those before it; ``"No task demos provided."`` for none or set 0.
    """

    def gather() -> Iterator[str]:
        n = 0
        ordered = [sets[demo_set_i], *sets[demo_set_i + 1 :], *sets[:demo_set_i]]
        for demos in ordered:
            for demo in demos:
                if "augmented" in demo:
                    yield create_example_string(signature, demo)
                    n += 1
                    if n >= count:
                        return

    text = "\n\n".join(gather()) + "\n\n"
    if not text.strip() or demo_set_i == 0:
        return "No task demos provided."
    return text


def program_code(program: Module) -> str:
    """DSPy's ``get_dspy_source_code(program)``, byte for byte (``program_code`` of the proposer).

    The program class's source (not for a bare ``Predict``/``ChainOfThought``), after
    a header walked from the module's attributes as DSPy walks them: a predictor's
    signature as its class source or DSPy's ``repr`` (:func:`dspy_signature_repr`),
    once per signature name (DSPy's dedup key: the class name of a signature class,
    ``"Signature"`` for every built one); a sub-module's code, recursively, once per
    text. Raises ``OSError``/``TypeError`` when the class source cannot be read
    (DSPy then drops program awareness, and so does the caller). Pure.
    """
    header: list[str] = []
    base = ""
    if type(program).__name__ not in ("Predict", "ChainOfThought"):
        base = inspect.getsource(type(program))
    done: set[Any] = set()
    for value in list(vars(program).values()):
        try:
            items = iter(value)
        except TypeError:
            items = iter([value])
        for item in items:
            try:
                hash(item)
            except TypeError:
                continue
            if isinstance(item, Predict):  # DSPy's Parameter
                key = _signature_key(item.signature) + "_sig"
                if key not in done:
                    try:
                        header.append(inspect.getsource(item.signature))
                    except (TypeError, OSError):
                        header.append(dspy_signature_repr(item.signature))
                    done.add(key)
            if isinstance(item, Module):
                code = program_code(item).strip()
                if code not in done:
                    header.append(code)
                    done.add(code)
            done.add(item)
    return "\n\n".join(header) + "\n\n" + base


def _signature_key(signature: type[Signature]) -> str:
    """DSPy's ``__pydantic_parent_namespace__["signature_name"]`` of a signature.

    A ``class X(Signature)`` statement gives ``"X"``; every signature DSPy builds
    (from a string, ``with_instructions``, ``ChainOfThought``'s extension: all named
    ``StringSignature``) gives ``"Signature"``.
    """
    name = signature.__name__
    return "Signature" if name == "StringSignature" else name


def dspy_signature_repr(signature: type[Signature]) -> str:
    """DSPy's ``repr`` of a signature class (pydantic ``FieldInfo`` text per field)."""
    items = signature.fields.items()
    fields = "\n    ".join(f"{name} = Field({spec.info})" for name, spec in items)
    return (
        f"{signature.__name__}({signature.signature}\n"
        f"    instructions={signature.instructions!r}\n    {fields}\n)"
    )


def module_code(predictor: Predict) -> str:
    """DSPy's ``module`` text: ``Predict(inputs) -> outputs``."""
    signature = predictor.signature
    inputs = ", ".join(signature.input_fields)
    outputs = ", ".join(signature.output_fields)
    return f"{type(predictor).__name__}({inputs}) -> {outputs}"


class DataSummaryRun(Module):
    """One request: DSPy's ``create_dataset_summary`` over ``batches`` (example reprs).

    ``forward`` (a program actor) answers ``Prediction(summary=...)``; an LM error
    of a later observation call ends the observations there, as in DSPy.
    """

    def __init__(self, batches: Sequence[str], lm: str | None) -> None:
        self.batches = list(batches)
        self.describe = Predict(DatasetDescriptor, lm=lm, n=1, temperature=1.0)
        self.more = Predict(DatasetDescriptorWithPriorObservations, lm=lm, n=1, temperature=1.0)
        self.summarize = Predict(ObservationSummarizer, lm=lm, n=1, temperature=1.0)

    def forward(self, **_inputs: Any) -> Prediction:
        observations: str = self.describe(examples=self.batches[0]).observations
        skips = 0
        try:
            for batch in self.batches[1:MAX_SUMMARY_CALLS]:
                output: str = self.more(
                    prior_observations=observations, examples=batch
                ).observations
                if len(output) >= 8 and output[:8].upper() == "COMPLETE":
                    skips += 1
                    if skips >= 5:
                        break
                    continue
                observations += output
        except LMError:
            pass  # DSPy: "using observations from past round for a summary"
        summary: str = self.summarize(observations=observations).summary
        return Prediction(summary=strip_prefix(summary))


class ProposalRun(Module):
    """One request: one instruction proposal (DSPy's ``GenerateModuleInstruction.forward``).

    ``inputs`` holds the generation's input values; with ``program_aware`` the
    program and module are described first (an LM error there drops program
    awareness for this proposal, as in DSPy). Answers ``Prediction(proposed_instruction=...)``.
    """

    def __init__(
        self,
        inputs: dict[str, str],
        *,
        use_dataset_summary: bool,
        program_aware: bool,
        use_tip: bool,
        lm: str | None,
        temperature: float,
    ) -> None:
        self.inputs = dict(inputs)
        self.use_dataset_summary = use_dataset_summary
        self.program_aware = program_aware
        self.use_tip = use_tip
        self.lm = lm
        self.temperature = temperature
        self.describe_program = Predict(DescribeProgram, lm=lm, temperature=temperature)
        self.describe_module = Predict(DescribeModule, lm=lm, temperature=temperature)

    def forward(self, **_inputs: Any) -> Prediction:
        values = dict(self.inputs)
        values.update(program_description="Not available", module_description="Not provided")
        if self.program_aware:
            try:
                description = strip_prefix(
                    self.describe_program(
                        program_code=values["program_code"], program_example=values["task_demos"]
                    ).program_description
                )
                values["program_description"] = description
                values["module_description"] = self.describe_module(
                    program_code=values["program_code"],
                    program_description=description,
                    program_example=values["task_demos"],
                    module=values["module"],
                ).module_description
            except LMError:
                pass  # DSPy: run without the program-aware descriptions
        signature = instruction_signature(  # built before a failure, as DSPy's
            use_dataset_summary=self.use_dataset_summary,
            program_aware=self.program_aware,
            use_tip=self.use_tip,
        )
        generate = Predict(signature, lm=self.lm, temperature=self.temperature)
        wanted = {name: values.get(name, "") for name in signature.input_fields}
        proposed: str = generate(**wanted).proposed_instruction
        return Prediction(proposed_instruction=strip_prefix(proposed))
