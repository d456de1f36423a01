"""Scoring a program on one example: the metric's value as a score, and :class:`ScoredRun`.

A :class:`ScoredRun` is the request that ``Evaluate`` and the random search's
candidate evaluations send: one program actor runs the program on the example's
inputs and then the metric on its prediction. So the metric runs concurrently
with the other examples' requests, and an LM the metric calls (a judge module)
is called from inside that program actor, under the same request deadline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dspex_actors.modules import Module
from dspex_actors.primitives import Example

__all__ = ["Metric", "Scored", "ScoredRun", "as_score", "module_label"]

Metric = Callable[..., Any]
"""``metric(example, prediction)`` (or with a ``trace``): a bool or a number."""


def as_score(value: Any) -> float:
    """A metric's result as a number (bools count 0/1). ``TypeError``/``ValueError`` if not."""
    score = float(value)
    if math.isnan(score):
        raise ValueError("the metric returned NaN")
    return score


@dataclass(frozen=True)
class Scored:
    """What a :class:`ScoredRun` answers: the prediction, and the score or the metric's error."""

    prediction: Any
    score: float | None
    error: BaseException | None = None


class ScoredRun(Module):
    """Runs ``program`` on an example's inputs, then ``metric(example, prediction)``.

    ``forward`` runs in the request's program actor (both steps). An error of the
    program ends the request as usual (an ``LMError``, or the crash of a bug); an
    exception of the metric, or a value that is not a number, is answered as
    ``Scored(prediction, None, error)``: the request itself succeeded.
    """

    def __init__(self, program: Any, metric: Metric, example: Example) -> None:
        self.program = program
        self.metric = metric
        self.example = example

    @property
    def __wrapped__(self) -> Any:
        """The user's program: the runtime names the request after it (logs, the tree)."""
        return self.program

    @property
    def signature(self) -> Any:
        """The program's signature, if it has one."""
        return getattr(self.program, "signature", None)

    def forward(self, **inputs: Any) -> Scored:
        prediction = self.program.forward(**inputs)
        try:
            score = as_score(self.metric(self.example, prediction))
        except Exception as exc:
            return Scored(prediction, None, exc)
        return Scored(prediction, score)


def module_label(program: Any) -> str:
    """How logs and notices name a user's program: its class, and its signature if any.

    ``Predict(question -> answer)``, ``RAG``; a wrapper (``__wrapped__``) names what it wraps.
    """
    program = getattr(program, "__wrapped__", program)
    name = type(program).__name__
    signature = getattr(program, "signature", None)
    text = getattr(signature, "signature", None)
    return f"{name}({text})" if isinstance(text, str) else name
