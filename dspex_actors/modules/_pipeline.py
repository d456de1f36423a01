"""``dx.Pipeline``: modules chained declaratively, outputs feeding inputs by field name.

A pipeline is a module, so a whole run is one request in one program actor, with
one deadline; each step's LM calls and tool calls are that actor's I/O workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dspex_actors.modules._module import Module
from dspex_actors.primitives import Prediction

__all__ = ["Pipeline", "PipelineError"]


class PipelineError(ValueError):
    """A pipeline step cannot get the inputs it needs (raised at construction when the
    signatures say so, else when the step is reached, before it runs)."""


def _fields(module: Any, kind: str) -> list[str] | None:
    signature = getattr(module, "signature", None)
    fields = getattr(signature, kind, None)
    return list(fields) if fields is not None else None


class Pipeline(Module):
    """``Pipeline([step, step, ...], name="rag")``: run the steps in order.

    The pipeline's inputs go to the first step; every step gets the inputs and all
    earlier steps' outputs, merged by field name (a later output of the same name
    wins), and takes those its signature names (a step without a signature, e.g. a
    plain :class:`Module`, gets all of them). The result is the last step's
    prediction, with every earlier output field not overwritten added to it.

    Raises:
        PipelineError: at construction, when a step needs a field no earlier step
            outputs and that is not an input of the first step; at call time, when a
            step after a signature-less step lacks an input (the error names the step).
        Exception: a step's own error, re-raised with a note naming the step.
    """

    def __init__(self, steps: Sequence[Module], name: str | None = None) -> None:
        if not steps:
            raise PipelineError("a Pipeline needs at least one step")
        for index, step in enumerate(steps):
            if not isinstance(step, Module):
                raise TypeError(f"pipeline step {index} is not a module: {step!r}")
        self.steps = list(steps)
        self.name = name or "pipeline"
        self._check_fields()

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={[_label(s) for s in self.steps]})"

    @property
    def input_fields(self) -> list[str] | None:
        """The first step's input field names (``None`` if it has no signature)."""
        return _fields(self.steps[0], "input_fields")

    def _check_fields(self) -> None:
        available = self.input_fields
        if available is None:
            return
        known = set(available)
        for index, step in enumerate(self.steps):
            needs = _fields(step, "input_fields")
            if index and needs is not None:
                missing = [n for n in needs if n not in known]
                if missing:
                    raise PipelineError(
                        f"pipeline {self.name!r} step {index} ({_label(step)}) needs "
                        f"{missing}, which neither the pipeline's inputs nor earlier "
                        f"steps give (available: {sorted(known)})"
                    )
            outputs = _fields(step, "output_fields")
            if outputs is None:
                return  # what a signature-less step outputs is known only when it runs
            known.update(outputs)

    def _check_inputs(self, inputs: Mapping[str, Any]) -> None:
        self.steps[0]._check_inputs({k: v for k, v in inputs.items()})

    def forward(self, **inputs: Any) -> Prediction:
        values: dict[str, Any] = dict(inputs)
        result: Any = None
        for index, step in enumerate(self.steps):
            needs = _fields(step, "input_fields")
            if needs is None:
                kwargs = dict(values)
            else:
                missing = [n for n in needs if n not in values]
                if missing:
                    raise PipelineError(
                        f"pipeline {self.name!r} step {index} ({_label(step)}) needs "
                        f"{missing}; available: {sorted(values)}"
                    )
                kwargs = {n: values[n] for n in needs}
            try:
                result = step(**kwargs)
            except Exception as exc:
                exc.add_note(f"in pipeline {self.name!r} step {index} ({_label(step)})")
                raise
            if isinstance(result, Mapping | Prediction):
                values.update(dict(result.items()))
        assert result is not None
        if not isinstance(result, Prediction):
            return Prediction(**{k: v for k, v in values.items() if k not in inputs})
        merged = {k: v for k, v in values.items() if k not in inputs}
        merged.update(dict(result.items()))
        prediction = Prediction(**merged)
        return prediction


def _label(step: Any) -> str:
    signature = getattr(step, "signature", None)
    text = getattr(signature, "signature", None)
    return f"{type(step).__name__}({text!r})" if text else type(step).__name__
